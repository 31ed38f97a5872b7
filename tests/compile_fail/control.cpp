// The same shapes as the failing files, written correctly: must compile, or the compile-fail
// tests could be passing for the wrong reason.
#include <resilite/resilite.hpp>
using Extra =
    resilite::Database<resilite::wal_durability<resilite::synchronous::extra>, resilite::null_observer>;
using Relaxed = resilite::Database<resilite::relaxed_durability<>, resilite::manual_clock>;
int main() {
    Extra db{"unused.db"};
    db.exec("INSERT INTO t VALUES(?)", 42);
    return sizeof(Relaxed) > 0 ? 0 : 1;
}

// The schema shapes of the failing files, written correctly.
struct item {
    BOOST_HANA_DEFINE_STRUCT(item, (std::int64_t, id), (std::string, name));
};
using items = resilite::table<"items", item, resilite::primary_key<"id">, resilite::index<"by_name", "name">>;
struct first {
    static constexpr int version = 1;
    static constexpr std::string_view sql = "SELECT 1";
};
struct second {
    static constexpr int version = 2;
    static constexpr std::string_view sql = "SELECT 2";
};
using WithSchema = resilite::Database<resilite::schema<items>, resilite::migrations<first, second>>;
[[maybe_unused]] static std::int64_t use(WithSchema& db) {
    return db.insert(item{1, "x"});
}

// The archive's shape, with the schema it needs.
using Archived = resilite::Database<resilite::schema<items>, resilite::archive<>>;
[[maybe_unused]] static std::int64_t archived(Archived& db) {
    return db.insert(item{1, "x"}) + db.drain_archive();
}

// Foreign keys: the parent declared in the same schema, referenced by its key (primary key,
// unique column, or a unique index), or the table itself.
struct user {
    BOOST_HANA_DEFINE_STRUCT(user, (std::int64_t, id), (std::string, email), (std::optional<std::int64_t>, boss));
};
struct order {
    BOOST_HANA_DEFINE_STRUCT(order, (std::int64_t, id), (std::int64_t, user_id), (std::string, email));
};
using users = resilite::table<"users", user, resilite::primary_key<"id">, resilite::unique<"email">,
                              resilite::foreign_key<"boss", "users", "id", resilite::referential_action::set_null>>;
using orders = resilite::table<"orders", order, resilite::primary_key<"id">,
                               resilite::foreign_key<"user_id", "users", "id", resilite::referential_action::cascade>,
                               resilite::foreign_key<"email", "users", "email">>;
using WithKeys = resilite::Database<resilite::schema<users, orders>>;
[[maybe_unused]] static std::int64_t keyed(WithKeys& db) {
    return db.insert(order{1, 1, "a@example.com"});
}
