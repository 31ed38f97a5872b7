// The bounded cache of prepared statements.
#include "support.hpp"

#include <catch2/catch.hpp>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace sqlite_statement_cache_tests {

using resilite::sqlite::connection;

TEST_CASE("statement cache reuses prepared statements", "[sqlite][cache]") {
    test::temp_dir dir;
    connection c{dir / "cache.db", connection::default_flags, nullptr, 4};
    c.exec("CREATE TABLE t(x)");
    const auto misses = c.cache().misses();
    for (int i = 0; i < 10; ++i)
        c.exec("INSERT INTO t VALUES(?)", i);
    CHECK(c.cache().misses() == misses + 1);
    CHECK(c.cache().hits() >= 9);
    CHECK(c.query_one<int>("SELECT count(*) FROM t") == 10);
}

TEST_CASE("statement cache stays within its capacity and evicts the least recently used", "[sqlite][cache]") {
    test::temp_dir dir;
    connection c{dir / "cache.db", connection::default_flags, nullptr, 3};
    for (int i = 0; i < 10; ++i)
        CHECK(c.query_one<int>(fmt::format("SELECT {}", i)) == i);
    CHECK(c.cache().size() == 3);
    const auto misses = c.cache().misses();
    static_cast<void>(c.query_one<int>("SELECT 9"));  // most recent: still cached
    CHECK(c.cache().misses() == misses);
    static_cast<void>(c.query_one<int>("SELECT 0"));  // evicted long ago
    CHECK(c.cache().misses() == misses + 1);
    c.cache().set_capacity(1);
    CHECK(c.cache().size() == 1);
}

TEST_CASE("statement cache handles the same SQL in use twice at once", "[sqlite][cache]") {
    test::temp_dir dir;
    connection c{dir / "cache.db"};
    c.exec("CREATE TABLE t(x)");
    for (int i = 1; i <= 3; ++i)
        c.exec("INSERT INTO t VALUES(?)", i);
    int pairs = 0;
    for (int a : c.query<int>("SELECT x FROM t ORDER BY x")) {
        for (int b : c.query<int>("SELECT x FROM t ORDER BY x")) {
            CHECK(b >= 1);
            pairs += a * 0 + 1;
        }
    }
    CHECK(pairs == 9);
}

TEST_CASE("statement cache: prepare_cached hands out a statement with no parameter bound", "[sqlite][cache]") {
    test::temp_dir dir;
    connection c{dir / "cache.db"};
    c.exec("CREATE TABLE t(x)");
    c.exec("INSERT INTO t VALUES(?)", 5);
    // Same SQL again, bound through the raw handle with nothing: must insert NULL, not 5.
    auto lease = c.prepare_cached("INSERT INTO t VALUES(?)");
    while (lease->step()) {
    }
    const auto second = c.query_one<std::optional<int>>("SELECT x FROM t WHERE rowid = 2");
    REQUIRE(second.has_value());       // the row exists...
    CHECK_FALSE(second->has_value());  // ...and holds NULL
}

TEST_CASE("statement cache: a value SQLite copied is not kept in an idle statement", "[sqlite][cache]") {
    test::temp_dir dir;
    connection c{dir / "cache.db"};
    c.exec("CREATE TABLE t(x)");
    const std::string token(64, 's');
    c.exec("INSERT INTO t VALUES(?)", token);
    for (auto row : c.query<int>("SELECT count(*) FROM t WHERE x = ?", token))  // copied into the statement
        CHECK(row == 1);
    // The idle statement, as SQLite holds it (never the INSERT's: its value was bound in place).
    std::string idle;
    for (sqlite3_stmt* s = sqlite3_next_stmt(c.native_handle(), nullptr); s != nullptr;
         s = sqlite3_next_stmt(c.native_handle(), s)) {
        if (std::string_view{sqlite3_sql(s)} != "SELECT count(*) FROM t WHERE x = ?") continue;
        char* text = sqlite3_expanded_sql(s);
        idle = text != nullptr ? text : "";
        sqlite3_free(text);
    }
    CHECK(idle == "SELECT count(*) FROM t WHERE x = NULL");
}

}  // namespace sqlite_statement_cache_tests
