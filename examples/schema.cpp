// Declared schema: tables from structs, synced at open; typed rows; versioned migrations.
#include <resilite/resilite.hpp>

#include <cstdio>
#include <filesystem>
#include <string>

// snippet-begin: tables
struct User {
    BOOST_HANA_DEFINE_STRUCT(User, (std::int64_t, id), (std::string, name),
                             (std::optional<std::string>, email), (std::int64_t, logins));
};
struct Order {
    BOOST_HANA_DEFINE_STRUCT(Order, (std::int64_t, id), (std::int64_t, user_id), (std::int64_t, cents));
};
struct UserTotal {
    BOOST_HANA_DEFINE_STRUCT(UserTotal, (std::int64_t, user_id), (std::int64_t, orders),
                             (std::int64_t, cents));
};

using users =
    resilite::table<"users", User, resilite::primary_key<"id">, resilite::unique<"email">,
                    resilite::default_value<"logins", "0">, resilite::index<"users_by_name", "name">>;
using orders = resilite::table<"orders", Order, resilite::primary_key<"id">,
                               resilite::foreign_key<"user_id", "users", "id", resilite::referential_action::cascade>,
                               resilite::index<"orders_by_user", "user_id">,
                               resilite::partial_index<"big_orders", "WHERE cents >= 100000", "user_id">>;
// A summary kept exact by a trigger, instead of a slow aggregate view.
using user_totals = resilite::table<"user_totals", UserTotal, resilite::primary_key<"user_id">>;
using count_orders =
    resilite::trigger<"orders_count",
                      "AFTER INSERT ON orders BEGIN "
                      "INSERT INTO user_totals VALUES(NEW.user_id, 1, NEW.cents) "
                      "ON CONFLICT(user_id) DO UPDATE SET orders = orders + 1, cents = cents + NEW.cents; "
                      "END">;
// snippet-end: tables

// snippet-begin: assigned_key
// An integer primary key SQLite assigns: leave it std::nullopt and insert() returns the new key.
struct Note {
    BOOST_HANA_DEFINE_STRUCT(Note, (std::optional<std::int64_t>, id), (std::string, text));
};
using notes = resilite::table<"notes", Note, resilite::primary_key<"id">>;  // "id" INTEGER PRIMARY KEY
// snippet-end: assigned_key

// Version 1 adds the column `logins` to databases from before it, counting from 1; version 2
// tidies data. A new database is created at the latest version directly.
// snippet-begin: migrations
struct add_logins {
    static constexpr int version = 1;
    static constexpr std::string_view name = "add logins, counting from 1";  // optional, for messages
    // Migrations run before schema sync adds declared columns: a migration that fills a new
    // column adds it itself, as declared (unless an earlier sync already did); sync then finds
    // it in place.
    static void up(auto& tx) {
        if (tx.template query_one<int>("SELECT count(*) FROM pragma_table_info('users') WHERE name = 'logins'") == 0)
            tx.exec("ALTER TABLE users ADD COLUMN logins INTEGER NOT NULL DEFAULT 0");
        tx.exec("UPDATE users SET logins = 1");
    }
};
struct normalize_names {
    static constexpr int version = 2;
    static constexpr std::string_view sql = "UPDATE users SET name = trim(name)";
};

using Db = resilite::Database<resilite::schema<users, orders, user_totals, count_orders, notes>,
                              resilite::migrations<add_logins, normalize_names>>;
// snippet-end: migrations

int main() {
    const auto path = std::filesystem::temp_directory_path() / "resilite-schema.db";
    for (const char* suffix : {"", "-wal", "-shm", "-resilite"})
        std::filesystem::remove(path.string() + suffix);

    {
        // A database from before version 1: users without `logins`.
        resilite::Database<> old{path};
        old.exec_script("CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE);"
                        "INSERT INTO users(id, name) VALUES(7, '  Old Timer ')");
    }
    Db db{path};  // migrations 1 and 2, then every other table, index and trigger is added
    std::printf("%s", db.sync_report().to_text().c_str());
    std::printf("version %d, exit code %d\n", db.version(), db.sync_report().exit_code());
    const auto old_timer = db.get<User>(7);
    std::printf("%s: %lld login\n", old_timer->name.c_str(), static_cast<long long>(old_timer->logins));

    db.insert(User{1, "Ann", std::nullopt, 0});
    db.upsert(User{1, "Ann", std::string{"ann@example.org"}, 3});
    db.transaction([](auto& tx) {
        tx.insert(Order{1, 1, 1200});
        tx.insert(Order{2, 1, 800});
    });
    const auto ann = db.get<User>(1);
    const auto total = db.get<UserTotal>(1);
    std::printf("%s <%s>: %lld orders, %lld cents\n", ann->name.c_str(), ann->email.value_or("-").c_str(),
                static_cast<long long>(total->orders), static_cast<long long>(total->cents));
    for (const auto& o : db.select<Order>("WHERE cents > ? ORDER BY id", 1000)) {
        std::printf("big order %lld\n", static_cast<long long>(o.id));
    }

    // snippet-begin: assigned_key_use
    const std::int64_t first = db.insert(Note{std::nullopt, "call Ann"});       // 1
    const std::int64_t second = db.insert(Note{std::nullopt, "ship order 2"});  // 2
    const auto note = db.get<Note>(second);                                     // note->id == second
    // snippet-end: assigned_key_use
    std::printf("notes %lld and %lld: %s\n", static_cast<long long>(first), static_cast<long long>(second),
                note->text.c_str());
    return total->cents == 2000 && first == 1 && second == 2 && note->id == second && old_timer->name == "Old Timer" &&
                   old_timer->logins == 1 && db.sync_report().exit_code() == 0
               ? 0
               : 1;
}
