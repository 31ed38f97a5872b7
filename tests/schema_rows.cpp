// Typed rows on declared tables, and a trigger-maintained summary table.
#include "support.hpp"

#include <catch2/catch.hpp>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace schema_rows_tests {

namespace rows_test {
struct user {
    BOOST_HANA_DEFINE_STRUCT(user, (std::int64_t, id), (std::string, name),
                             (std::optional<std::string>, email), (double, score), (bool, active),
                             (resilite::blob, avatar));
};
struct membership {
    BOOST_HANA_DEFINE_STRUCT(membership, (std::int64_t, group_id), (std::int64_t, user_id),
                             (std::optional<std::int64_t>, since), (std::string, role));
};
struct order {
    BOOST_HANA_DEFINE_STRUCT(order, (std::int64_t, id), (std::string, customer), (std::int64_t, cents));
};
struct order_total {
    BOOST_HANA_DEFINE_STRUCT(order_total, (std::string, customer), (std::int64_t, orders),
                             (std::int64_t, cents));
};

using users = resilite::table<"users", user, resilite::primary_key<"id">, resilite::unique<"email">,
                              resilite::secret<"avatar">, resilite::default_value<"score", "0">,
                              resilite::index<"users_by_name", "name">>;
using memberships = resilite::table<"memberships", membership, resilite::primary_key<"group_id", "user_id">,
                                    resilite::default_value<"role", "'member'">>;
using orders = resilite::table<"orders", order, resilite::primary_key<"id">,
                               resilite::partial_index<"big_orders", "cents > 10000", "customer">>;
// The materialized summary of seed 003: kept by triggers instead of a slow view.
using order_totals = resilite::table<"order_totals", order_total, resilite::primary_key<"customer">>;
using add_total =
    resilite::trigger<"orders_add_total",
                      "AFTER INSERT ON orders BEGIN "
                      "INSERT INTO order_totals(customer, orders, cents) VALUES(NEW.customer, 1, NEW.cents) "
                      "ON CONFLICT(customer) DO UPDATE SET orders = orders + 1, cents = cents + NEW.cents; "
                      "END">;
using remove_total =
    resilite::trigger<"orders_remove_total",
                      "AFTER DELETE ON orders BEGIN "
                      "UPDATE order_totals SET orders = orders - 1, cents = cents - OLD.cents "
                      "WHERE customer = OLD.customer; END">;

// A table whose database copy lacks a declared column (report_only leaves drift alone).
struct reading {
    BOOST_HANA_DEFINE_STRUCT(reading, (std::int64_t, id), (std::string, city), (std::string, region));
};
using readings = resilite::table<"readings", reading, resilite::primary_key<"id">>;
using report_db = resilite::Database<resilite::basic_schema<resilite::schema_mode::report_only, readings>,
                                     resilite::null_observer, test::manual_durability>;

using schema = resilite::schema<users, memberships, orders, order_totals, add_total, remove_total>;
using db_t = resilite::Database<schema, resilite::null_observer, test::manual_durability>;
}  // namespace rows_test

using namespace rows_test;

TEST_CASE("a declared table maps members to typed columns", "[schema][rows]") {
    const auto def = users::definition();
    REQUIRE(def.columns.size() == 6);
    CHECK(def.columns[0].type == "INTEGER");
    CHECK(def.columns[1].type == "TEXT");
    CHECK(def.columns[1].not_null);
    CHECK_FALSE(def.columns[2].not_null);  // optional
    CHECK(def.columns[2].unique);
    CHECK(def.columns[3].type == "REAL");
    CHECK(def.columns[3].default_sql == "0");
    CHECK(def.columns[4].type == "INTEGER");  // bool
    CHECK(def.columns[5].type == "BLOB");
    CHECK(def.columns[5].secret);
    CHECK(def.primary_key == std::vector<std::string>{"id"});
    CHECK(resilite::detail::create_table_sql(def) ==
          "CREATE TABLE \"users\"(\"id\" INTEGER PRIMARY KEY, \"name\" TEXT NOT NULL, \"email\" TEXT UNIQUE, "
          "\"score\" REAL NOT NULL DEFAULT (0), \"active\" INTEGER NOT NULL, \"avatar\" BLOB NOT NULL)");
    STATIC_REQUIRE(memberships::primary_key_size == 2);
}

TEST_CASE("typed rows: insert, get, upsert, select, erase", "[schema][rows]") {
    test::temp_dir dir;
    db_t db{dir / "rows.db"};
    CHECK(db.sync_report().status() == resilite::schema_status::ok);
    CHECK(db.sync_report().changed);

    const resilite::blob avatar{std::byte{0}, std::byte{255}, std::byte{7}};
    CHECK(db.insert(user{1, "Ann", std::nullopt, 1.5, true, avatar}) == 1);
    CHECK(db.insert(user{2, "Bo", std::string{"bo@example.org"}, 0, false, {}}) == 2);
    auto ann = db.get<user>(1);
    REQUIRE(ann.has_value());
    CHECK(ann->name == "Ann");
    CHECK_FALSE(ann->email.has_value());
    CHECK(ann->score == 1.5);
    CHECK(ann->active);
    CHECK(ann->avatar == avatar);
    CHECK_FALSE(db.get<user>(99).has_value());

    CHECK(db.upsert(user{1, "Ann Smith", std::string{"ann@example.org"}, 2.0, false, {}}) == 1);
    CHECK(db.get<user>(1)->name == "Ann Smith");
    CHECK(db.upsert(user{3, "Cy", std::nullopt, 0, true, {}}) == 1);
    CHECK(db.query_one<int>("SELECT count(*) FROM users") == 3);

    const auto active = db.select<user>("WHERE active = ? ORDER BY id", true);
    REQUIRE(active.size() == 1);
    CHECK(active[0].name == "Cy");
    CHECK(db.select<user>().size() == 3);

    // UNIQUE is enforced.
    CHECK_THROWS_AS(db.insert(user{4, "Dup", std::string{"bo@example.org"}, 0, false, {}}), resilite::error);

    CHECK(db.erase<user>(2) == 1);
    CHECK(db.erase<user>(2) == 0);
    CHECK(db.select<user>().size() == 2);
}

TEST_CASE("typed rows: composite keys, defaults and use inside a transaction", "[schema][rows]") {
    test::temp_dir dir;
    db_t db{dir / "rows.db"};
    db.transaction([](auto& tx) {
        tx.insert(membership{10, 1, std::nullopt, "owner"});
        tx.insert(membership{10, 2, 1700000000, "member"});
        tx.upsert(membership{10, 2, 1700000001, "admin"});
        CHECK(tx.template get<membership>(10, 2)->role == "admin");
    });
    CHECK(db.get<membership>(10, 2)->since == 1700000001);
    CHECK(db.select<membership>("WHERE group_id = ?", 10).size() == 2);
    CHECK(db.erase<membership>(10, 1) == 1);
    db.exec("INSERT INTO memberships(group_id, user_id) VALUES(11, 1)");
    CHECK(db.get<membership>(11, 1)->role == "member");  // the declared default
}

TEST_CASE("a trigger-maintained summary table stays exact", "[schema][rows]") {
    test::temp_dir dir;
    db_t db{dir / "orders.db"};
    db.transaction([](auto& tx) {
        tx.insert(order{1, "acme", 500});
        tx.insert(order{2, "acme", 20000});
        tx.insert(order{3, "zeta", 100});
    });
    db.erase<order>(1);
    const auto totals = db.select<order_total>("ORDER BY customer");
    REQUIRE(totals.size() == 2);
    CHECK(totals[0].customer == "acme");
    CHECK(totals[0].orders == 1);
    CHECK(totals[0].cents == 20000);
    CHECK(totals[1].cents == 100);
    CHECK(db.query_one<std::string>("SELECT sql FROM sqlite_master WHERE name = 'big_orders'") ==
          "CREATE INDEX \"big_orders\" ON \"orders\"(\"customer\") WHERE cents > 10000");
}

TEST_CASE("reopening a database in sync changes nothing and reports ok", "[schema][rows]") {
    test::temp_dir dir;
    { db_t db{dir / "again.db"}; }
    db_t db{dir / "again.db"};
    CHECK(db.sync_report().status() == resilite::schema_status::ok);
    CHECK(db.sync_report().actions.empty());
    CHECK_FALSE(db.sync_report().changed);
}

TEST_CASE("a declared column the database lacks is a schema error naming it, never its name as a value",
          "[schema][rows]") {
    test::temp_dir dir;
    {
        resilite::sqlite::connection c{dir / "drift.db"};
        c.exec_script("CREATE TABLE readings(id INTEGER PRIMARY KEY, city TEXT NOT NULL);"
                      "INSERT INTO readings VALUES(1, 'Oslo')");
    }
    report_db db{dir / "drift.db"};
    const auto check_missing_region = [](const resilite::error& e) {
        CHECK(e.klass() == resilite::error_class::schema);
        CHECK_THAT(e.technical().note, Catch::Contains("\"region\""));
        CHECK_THAT(e.technical().note, Catch::Contains("\"readings\""));
        CHECK_THAT(e.technical().sqlite_message, Catch::Contains("no such column: region"));
    };
    try {
        const auto r = db.get<reading>(1);
        FAIL("get returned a row; region = '" << (r ? r->region : std::string{"<none>"}) << "'");
    } catch (const resilite::error& e) {
        check_missing_region(e);
    }
    try {
        const auto all = db.select<reading>();
        FAIL("select returned " << all.size() << " rows; region = '"
                                << (all.empty() ? std::string{"<none>"} : all[0].region) << "'");
    } catch (const resilite::error& e) {
        check_missing_region(e);
    }
    try {
        static_cast<void>(db.insert(reading{2, "Bergen", "west"}));
        FAIL("insert succeeded");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == resilite::error_class::schema);
        CHECK_THAT(e.technical().note, Catch::Contains("\"region\""));
    }
}

TEST_CASE("report_only: a declared table or column the database lacks makes the report say warnings (exit code 2, "
          "not ok), and a typed row on the missing table is a schema error naming it",
          "[schema][rows]") {
    test::temp_dir dir;
    {
        resilite::sqlite::connection c{dir / "drift.db"};
        c.exec_script("CREATE TABLE readings(id INTEGER PRIMARY KEY, city TEXT NOT NULL)");
    }
    {
        report_db db{dir / "drift.db"};
        INFO(db.sync_report().to_text());
        CHECK(db.sync_report().status() == resilite::schema_status::warnings);
        CHECK(db.sync_report().exit_code() == 2);
    }
    report_db db{dir / "empty.db"};
    INFO(db.sync_report().to_text());
    CHECK(db.sync_report().status() == resilite::schema_status::warnings);
    for (int op = 0; op < 3; ++op) {
        try {
            if (op == 0) static_cast<void>(db.insert(reading{2, "Bergen", "west"}));
            if (op == 1) static_cast<void>(db.get<reading>(2));
            if (op == 2) static_cast<void>(db.select<reading>());
            FAIL("accepted");
        } catch (const resilite::error& e) {
            INFO(e.what());
            CHECK(e.klass() == resilite::error_class::schema);
            CHECK_THAT(e.technical().note, Catch::Contains("\"readings\"") && Catch::Contains("missing"));
        }
    }
}

TEST_CASE("a declared column dropped by hand after its statements were prepared is a schema error naming it",
          "[schema][rows]") {
    test::temp_dir dir;
    {
        resilite::sqlite::connection c{dir / "dropped.db"};
        c.exec_script("CREATE TABLE readings(id INTEGER PRIMARY KEY, city TEXT NOT NULL, region TEXT NOT NULL)");
    }
    report_db db{dir / "dropped.db"};
    db.insert(reading{1, "Oslo", "east"});
    db.upsert(reading{1, "Oslo", "east"});
    CHECK(db.get<reading>(1).has_value());
    CHECK(db.select<reading>().size() == 1);  // every statement of the row path is cached now
    db.exec("ALTER TABLE readings DROP COLUMN region");
    const auto refused = [](auto&& f) {
        try {
            f();
            FAIL("accepted");
        } catch (const resilite::error& e) {
            INFO(e.what());
            CHECK(e.klass() == resilite::error_class::schema);
            CHECK_THAT(e.technical().note, Catch::Contains("\"region\""));
            CHECK_THAT(e.technical().note, Catch::Contains("\"readings\""));
        }
    };
    refused([&] { static_cast<void>(db.get<reading>(1)); });
    refused([&] { static_cast<void>(db.select<reading>()); });
    refused([&] { static_cast<void>(db.insert(reading{2, "Bergen", "west"})); });
    refused([&] { static_cast<void>(db.upsert(reading{1, "Oslo", "west"})); });
}

TEST_CASE("a column only the caller's select tail names stays an sql error", "[schema][rows]") {
    test::temp_dir dir;
    db_t db{dir / "rows.db"};
    try {
        static_cast<void>(db.select<user>("WHERE \"nosuch\" = 1"));
        FAIL("select with a bad tail succeeded");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == resilite::error_class::sql);
        CHECK_THAT(e.technical().sqlite_message, Catch::Contains("no such column: nosuch"));
    }
}

TEST_CASE("typed rows read values exactly: a text in a REAL column is a mismatch", "[schema][rows]") {
    test::temp_dir dir;
    db_t db{dir / "rows.db"};
    db.exec("INSERT INTO users(id, name, score, active, avatar) VALUES(1, 'Ann', 'high', 1, x'')");
    const auto check_score = [](const resilite::error& e) {
        CHECK(e.klass() == resilite::error_class::mismatch);
        CHECK_THAT(e.technical().note, Catch::Contains("column 3 ('score') holds TEXT"));
        CHECK_THAT(e.technical().note, Catch::Contains("double"));
    };
    try {
        const auto u = db.get<user>(1);
        FAIL("get returned score " << (u ? u->score : -1.0));
    } catch (const resilite::error& e) {
        check_score(e);
    }
    try {
        static_cast<void>(db.select<user>());
        FAIL("select succeeded");
    } catch (const resilite::error& e) {
        check_score(e);
    }
}

namespace assigned_key_test {
// An integer primary key that may be std::nullopt: SQLite assigns the rowid.
struct note {
    BOOST_HANA_DEFINE_STRUCT(note, (std::optional<std::int64_t>, id), (std::string, text));
};
using notes = resilite::table<"notes", note, resilite::primary_key<"id">>;
using notes_db =
    resilite::Database<resilite::schema<notes>, resilite::null_observer, test::manual_durability>;
using archived_notes_db = resilite::Database<resilite::schema<notes>, resilite::archive<>,
                                             resilite::null_observer, test::manual_durability>;
}  // namespace assigned_key_test

TEST_CASE("typed rows: an optional integer primary key left empty is assigned, and insert returns it",
          "[schema][rows]") {
    using namespace assigned_key_test;
    CHECK(resilite::detail::create_table_sql(notes::definition()) ==
          "CREATE TABLE \"notes\"(\"id\" INTEGER PRIMARY KEY, \"text\" TEXT NOT NULL)");
    test::temp_dir dir;
    {
        notes_db db{dir / "notes.db"};
        CHECK(db.insert(note{std::nullopt, "first"}) == 1);
        CHECK(db.insert(note{std::nullopt, "second"}) == 2);
        CHECK(db.insert(note{10, "chosen"}) == 10);
        CHECK(db.insert(note{std::nullopt, "after"}) == 11);
        const auto second = db.get<note>(2);
        REQUIRE(second.has_value());
        CHECK(second->id == 2);
        CHECK(second->text == "second");
        db.transaction([](auto& tx) {
            CHECK(tx.insert(note{std::nullopt, "in a transaction"}) == 12);
            CHECK(tx.insert(note{std::nullopt, "and another"}) == 13);
        });
        CHECK(db.get<note>(13)->text == "and another");
    }
    {
        // Reopened: in sync, the key still assigned.
        notes_db db{dir / "notes.db"};
        CHECK(db.sync_report().actions.empty());
        CHECK(db.sync_report().status() == resilite::schema_status::ok);
        CHECK(db.insert(note{std::nullopt, "reopened"}) == 14);
    }
    // With an archive the capture triggers write the outbox in the same statement; insert still
    // returns the row's own rowid, and the archive records the assigned key.
    archived_notes_db db{dir / "archived.db"};
    CHECK(db.insert(note{std::nullopt, "a"}) == 1);
    CHECK(db.insert(note{std::nullopt, "b"}) == 2);
    db.transaction([](auto& tx) { CHECK(tx.insert(note{std::nullopt, "c"}) == 3); });
    CHECK(db.check_archive().exit_code() == 0);
}

}  // namespace schema_rows_tests
