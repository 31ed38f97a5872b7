// resilite::sqlite::transaction and savepoint: the SQLite-level RAII building blocks.
#include "support.hpp"

#include <catch2/catch.hpp>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace sqlite_transaction_tests {

using resilite::sqlite::connection;
using resilite::sqlite::savepoint;
using resilite::sqlite::transaction;

namespace {
int count(connection& c) {
    return *c.query_one<int>("SELECT count(*) FROM t");
}
}  // namespace

TEST_CASE("sqlite transaction commits, rolls back, and rolls back when destroyed", "[sqlite][transaction]") {
    test::temp_dir dir;
    connection c{dir / "t.db"};
    c.exec("CREATE TABLE t(x)");
    {
        transaction tx{c};
        c.exec("INSERT INTO t VALUES(1)");
        tx.commit();
    }
    CHECK(count(c) == 1);
    {
        transaction tx{c, resilite::transaction_mode::deferred};
        c.exec("INSERT INTO t VALUES(2)");
        tx.rollback();
    }
    CHECK(count(c) == 1);
    {
        transaction tx{c, resilite::transaction_mode::exclusive};
        c.exec("INSERT INTO t VALUES(3)");
    }
    CHECK(count(c) == 1);
    CHECK_FALSE(c.in_transaction());
}

TEST_CASE("sqlite transaction refuses to nest", "[sqlite][transaction]") {
    test::temp_dir dir;
    connection c{dir / "t.db"};
    transaction outer{c};
    try {
        transaction inner{c};
        FAIL("nested");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == resilite::error_class::misuse);
        CHECK_THAT(e.technical().note, Catch::Contains("savepoint"));
    }
    CHECK(outer.active());
}

TEST_CASE("savepoints: release keeps, rollback undoes only the inner part", "[sqlite][savepoint]") {
    test::temp_dir dir;
    connection c{dir / "t.db"};
    c.exec("CREATE TABLE t(x)");
    {
        transaction tx{c};
        c.exec("INSERT INTO t VALUES(1)");
        {
            savepoint a{c, "a"};
            c.exec("INSERT INTO t VALUES(2)");
            {
                savepoint b{c, "b"};
                c.exec("INSERT INTO t VALUES(3)");
                b.rollback();  // ROLLBACK TO b; RELEASE b
            }
            CHECK(count(c) == 2);
            {
                savepoint b2{c, "b"};
                c.exec("INSERT INTO t VALUES(4)");
                b2.release();
            }
            a.release();
        }
        {
            savepoint gone{c, "gone"};
            c.exec("INSERT INTO t VALUES(5)");
        }                           // left without release: undone
        CHECK(c.in_transaction());  // the outer transaction is still open
        tx.commit();
    }
    CHECK(c.query_all<int>("SELECT x FROM t ORDER BY x") == std::vector<int>{1, 2, 4});
}

TEST_CASE("savepoint names are quoted", "[sqlite][savepoint]") {
    test::temp_dir dir;
    connection c{dir / "t.db"};
    c.exec("CREATE TABLE t(x)");
    savepoint odd{c, "odd \"name\"; DROP TABLE t"};
    c.exec("INSERT INTO t VALUES(1)");
    odd.release();
    CHECK(count(c) == 1);
}

}  // namespace sqlite_transaction_tests
