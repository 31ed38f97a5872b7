// resilite::sqlite::connection: open, exec, queries, errors, close.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <fstream>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace sqlite_connection_tests {

using resilite::error_class;
using resilite::sqlite::connection;

TEST_CASE("connection exec returns rows changed, queries read typed rows", "[sqlite][connection]") {
    test::temp_dir dir;
    connection c{dir / "c.db"};
    c.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT)");
    CHECK(c.exec("INSERT INTO t(name) VALUES(?), (?), (?)", "a", "b", "c") == 3);
    CHECK(c.last_insert_rowid() == 3);
    CHECK(c.exec("UPDATE t SET name = upper(name) WHERE id >= ?", 2) == 2);
    CHECK(c.exec("SELECT * FROM t") == 0);
    CHECK(c.exec("CREATE INDEX t_name ON t(name)") == 0);  // DDL after DML: not the last DML's count
    CHECK(c.exec("DELETE FROM t WHERE id = ?", 99) == 0);
    std::vector<std::pair<std::int64_t, std::string>> seen;
    for (const auto& [id, name] : c.query<std::int64_t, std::string>("SELECT id, name FROM t ORDER BY id")) {
        seen.emplace_back(id, name);
    }
    CHECK(seen == std::vector<std::pair<std::int64_t, std::string>>{{1, "a"}, {2, "B"}, {3, "C"}});
    auto all = c.query_all<std::string>("SELECT name FROM t WHERE id > ?", 1);
    CHECK(all == std::vector<std::string>{"B", "C"});
    CHECK_FALSE(c.query_one<std::string>("SELECT name FROM t WHERE id = ?", 99).has_value());
}

TEST_CASE("connection open failures are classified", "[sqlite][connection]") {
    test::temp_dir dir;
    try {
        connection c{dir.path()};  // a directory
        FAIL("opened a directory");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == error_class::cant_open);
        CHECK(e.technical().operation == "open");
    }
    try {
        connection c{dir / "missing" / "x.db"};
        FAIL("opened in a missing directory");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == error_class::cant_open);
    }
    {
        std::ofstream junk(dir / "junk.db");
        junk << std::string(4096, 'x');
    }
    connection c{dir / "junk.db"};  // SQLite reads the header lazily
    try {
        c.exec("SELECT * FROM sqlite_master");
        FAIL("read a non-database");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == error_class::not_a_database);
        CHECK(e.code().value() == SQLITE_NOTADB);
    }
}

TEST_CASE("connection errors carry the extended code and SQLite's message", "[sqlite][connection]") {
    test::temp_dir dir;
    connection c{dir / "c.db"};
    c.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)");
    c.exec("INSERT INTO t(v) VALUES('x')");
    try {
        c.exec("INSERT INTO t(v) VALUES(?)", "x");
        FAIL("no error");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == error_class::constraint);
        CHECK(e.technical().extended_code == SQLITE_CONSTRAINT_UNIQUE);
        CHECK(e.technical().code_name == "SQLITE_CONSTRAINT_UNIQUE");
        CHECK_THAT(e.technical().sqlite_message, Catch::Contains("UNIQUE constraint failed"));
        CHECK(e.technical().sql == "INSERT INTO t(v) VALUES(?)");
        CHECK(e.code().category() == resilite::sqlite_category());
    }
    // The connection is fine afterwards.
    CHECK(c.exec("INSERT INTO t(v) VALUES(?)", "y") == 1);
}

TEST_CASE("connection closes cleanly with statements cached and after failures", "[sqlite][connection]") {
    test::temp_dir dir;
    {
        connection c{dir / "c.db"};
        c.exec("CREATE TABLE t(x)");
        for (int i = 0; i < 5; ++i)
            c.exec(fmt::format("INSERT INTO t VALUES({})", i));
        CHECK(c.cache().size() > 0);
        CHECK_THROWS(c.exec("INSERT INTO nowhere VALUES(1)"));
        c.close();
        c.close();  // twice is harmless
    }
    connection again{dir / "c.db"};
    CHECK(again.query_one<int>("SELECT count(*) FROM t") == 5);
}

TEST_CASE("double-quoted names that are not columns are errors, never strings", "[sqlite][connection]") {
    test::temp_dir dir;
    connection c{dir / "dqs.db"};
    c.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, city TEXT)");
    c.exec("INSERT INTO t(city) VALUES('Oslo')");
    CHECK(c.query_one<std::string>("SELECT \"city\" FROM t") == "Oslo");  // a real column still works
    try {
        const auto v = c.query_one<std::string>("SELECT \"region\" FROM t");
        FAIL("read '" << v.value_or("<no row>") << "'");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == error_class::sql);
        CHECK_THAT(e.technical().sqlite_message, Catch::Contains("no such column: region"));
    }
    // DML and DDL alike: a CHECK comparing with "Oslo" would compare with a string.
    CHECK_THROWS_AS(c.exec("UPDATE t SET city = \"Bergen\""), resilite::error);
    CHECK_THROWS_AS(c.exec_script("CREATE TABLE u(city TEXT CHECK(city <> \"Oslo\"))"), resilite::error);
    CHECK(c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = 'u'") == 0);
}

}  // namespace sqlite_connection_tests
