// Database transactions: atomicity (P6), automatic rollback (P7), savepoints, modes.
#include "archive_support.hpp"
#include "support.hpp"

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace core_transaction_tests {

namespace {
using model = std::map<int, std::string>;

struct op {
    bool erase;
    int key;
    std::string value;
};

rc::Gen<op> gen_op() {
    return rc::gen::build<op>(rc::gen::set(&op::erase, rc::gen::arbitrary<bool>()),
                              rc::gen::set(&op::key, rc::gen::inRange(0, 20)),
                              rc::gen::set(&op::value, rc::gen::arbitrary<std::string>()));
}

template <class Tx>
void apply(Tx& tx, const op& o) {
    if (o.erase) {
        tx.exec("DELETE FROM kv WHERE k = ?", o.key);
    } else {
        tx.exec("INSERT INTO kv(k, v) VALUES(?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v", o.key,
                o.value);
    }
}

void apply(model& m, const op& o) {
    if (o.erase) {
        m.erase(o.key);
    } else {
        m[o.key] = o.value;
    }
}

template <class Db>
model read_all(Db& db) {
    model m;
    for (auto& [k, v] : db.template query<int, std::string>("SELECT k, v FROM kv"))
        m[k] = v;
    return m;
}

model read_all(resilite::sqlite::connection& c) {
    model m;
    for (const auto& [k, v] : c.query<int, std::string>("SELECT k, v FROM kv"))
        m[k] = v;
    return m;
}

struct boom : std::runtime_error {
    boom() : std::runtime_error("boom") {}
};

using db_t = resilite::Database<resilite::null_observer, test::manual_durability>;

// A database whose events are recorded, with one table of keys (the tests of what health() counts).
struct recorded_kv {
    test::temp_dir dir;
    test::event_log log;
    test::recording_db db{dir / "t.db", test::recording(log)};
    recorded_kv() { db.exec_script("CREATE TABLE kv(k INTEGER PRIMARY KEY)"); }
};
}  // namespace

TEST_CASE("P6 transaction atomicity", "[transaction][property][P6]") {
    test::temp_dir dir;
    db_t db{dir / "p6.db"};
    db.exec_script("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    resilite::sqlite::connection observer{dir / "p6.db"};  // sees only committed state

    rc::prop("all effects of a transaction are visible after commit, or none", [&] {
        const auto before = read_all(db);
        const auto ops = *rc::gen::container<std::vector<op>>(gen_op());
        // Where it fails: never (-1), by an exception in the user's code, or by a constraint.
        const int fail_at = *rc::gen::inRange(-1, static_cast<int>(ops.size()));
        const bool by_constraint = *rc::gen::arbitrary<bool>();
        model expected = before;
        bool committed = true;
        try {
            db.transaction([&](auto& tx) {
                for (int i = 0; i < static_cast<int>(ops.size()); ++i) {
                    if (i == fail_at) {
                        if (by_constraint) tx.exec("INSERT INTO kv(k, v) VALUES(?, NULL)", 1000 + i);
                        throw boom{};
                    }
                    apply(tx, ops[static_cast<std::size_t>(i)]);
                    // Inside the transaction nothing is visible to another connection.
                    RC_ASSERT(read_all(observer) == before);
                }
                if (fail_at == static_cast<int>(ops.size())) throw boom{};
            });
        } catch (const boom&) {
            committed = false;
        } catch (const resilite::error& e) {
            RC_ASSERT(e.klass() == resilite::error_class::constraint);
            committed = false;
        }
        if (committed) {
            for (const auto& o : ops)
                apply(expected, o);
        }
        RC_ASSERT(committed == (fail_at < 0));
        RC_ASSERT(read_all(db) == expected);
        RC_ASSERT(read_all(observer) == expected);
    });
}

TEST_CASE("P7 automatic transaction rollback", "[transaction][property][P7]") {
    test::temp_dir dir;
    db_t db{dir / "p7.db"};
    db.exec_script("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT NOT NULL)");

    rc::prop("leaving by exception or early return restores the state; the connection stays usable", [&] {
        const auto before = read_all(db);
        const auto ops = *rc::gen::nonEmpty(rc::gen::container<std::vector<op>>(gen_op()));
        const int how = *rc::gen::inRange(0, 4);
        switch (how) {
            case 0:  // exception out of Database::transaction
                try {
                    db.transaction([&](auto& tx) {
                        for (const auto& o : ops)
                            apply(tx, o);
                        throw boom{};
                    });
                    RC_FAIL("no exception");
                } catch (const boom&) {
                }
                break;
            case 1: {  // early return: an explicit transaction left without commit()
                auto leave_early = [&] {
                    auto tx = db.begin();
                    for (const auto& o : ops) {
                        apply(tx, o);
                        if (o.erase) return;
                    }
                };
                leave_early();
                break;
            }
            case 2: {  // explicit rollback()
                auto tx = db.begin(resilite::transaction_mode::deferred);
                for (const auto& o : ops)
                    apply(tx, o);
                tx.rollback();
                break;
            }
            default:  // an exception inside a savepoint inside a transaction that then throws too
                try {
                    db.transaction([&](auto& tx) {
                        try {
                            tx.savepoint([&](auto& inner) {
                                for (const auto& o : ops)
                                    apply(inner, o);
                                throw boom{};
                            });
                        } catch (const boom&) {
                        }
                        for (const auto& o : ops)
                            apply(tx, o);
                        throw std::runtime_error("outer");
                    });
                } catch (const std::runtime_error&) {
                }
                break;
        }
        RC_ASSERT(read_all(db) == before);
        RC_ASSERT(!db.with_connection([](auto& c) { return c.in_transaction(); }));
        // Usable: a new transaction commits.
        const op marker{false, 99, "usable"};
        db.transaction([&](auto& tx) { apply(tx, marker); });
        auto after = before;
        apply(after, marker);
        RC_ASSERT(read_all(db) == after);
        db.exec("DELETE FROM kv WHERE k = 99");
    });
}

TEST_CASE("transaction returns what the function returns and commits", "[transaction]") {
    test::temp_dir dir;
    db_t db{dir / "t.db"};
    db.exec_script("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    const auto id = db.transaction([](auto& tx) {
        tx.exec("INSERT INTO kv(v) VALUES(?)", "x");
        return tx.database().with_connection([](auto& c) { return c.last_insert_rowid(); });
    });
    CHECK(id == 1);
    CHECK(db.query_one<std::string>("SELECT v FROM kv WHERE k = ?", id) == "x");
    const auto n = db.transaction([](auto& tx) { return tx.template query<int>("SELECT k FROM kv").size(); },
                                  resilite::transaction_mode::deferred);
    CHECK(n == 1);
}

TEST_CASE("nested savepoints keep and undo the right parts", "[transaction][savepoint]") {
    test::temp_dir dir;
    db_t db{dir / "t.db"};
    db.exec_script("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    db.transaction([](auto& tx) {
        tx.exec("INSERT INTO kv VALUES(1, 'outer')");
        tx.savepoint([](auto& a) {
            a.exec("INSERT INTO kv VALUES(2, 'a')");
            try {
                a.savepoint([](auto& b) {
                    b.exec("INSERT INTO kv VALUES(3, 'b')");
                    throw boom{};
                });
            } catch (const boom&) {
            }
            a.savepoint([](auto& c) { c.exec("INSERT INTO kv VALUES(4, 'c')"); });
        });
        {
            auto sp = tx.begin_savepoint();
            tx.exec("INSERT INTO kv VALUES(5, 'undone')");
            sp.rollback();
        }
        {
            auto sp = tx.begin_savepoint();
            tx.exec("INSERT INTO kv VALUES(6, 'left open')");
        }
        {
            auto sp = tx.begin_savepoint();
            tx.exec("INSERT INTO kv VALUES(7, 'kept')");
            sp.release();
        }
    });
    CHECK(db.query<int>("SELECT k FROM kv ORDER BY k") == std::vector<int>{1, 2, 4, 7});
}

namespace {
// The rows each savepoint and transaction event reported, in order.
std::vector<std::int64_t> rows_of(const test::event_log& log, const std::string& name) {
    std::vector<std::int64_t> out;
    for (const auto& e : log.events())
        if (e.name == name) out.push_back(e.rows);
    return out;
}

// One transaction: rows kept, rows undone by savepoints (nested both ways), a failed statement.
template <class Tx, class Insert>
void kept_and_undone(Tx& tx, Insert insert) {
    insert(tx, 1);  // kept
    try {
        insert(tx, 1);  // a duplicate: fails, changes nothing
    } catch (const resilite::error&) {
    }
    {
        auto sp = tx.begin_savepoint();
        insert(tx, 2);
        insert(tx, 3);
        {
            auto inner = tx.begin_savepoint();
            insert(tx, 4);
            inner.release();  // kept inside sp, undone with it
        }
        sp.rollback();
    }
    {
        auto sp = tx.begin_savepoint();
        insert(tx, 5);  // kept
        {
            auto inner = tx.begin_savepoint();
            insert(tx, 6);
            inner.rollback();
        }
        sp.release();
    }
    {
        auto sp = tx.begin_savepoint();  // left open: undone
        insert(tx, 7);
    }
}
}  // namespace

TEST_CASE("savepoints: rows a rollback undid are not counted, in rows_kept() or any event", "[transaction][savepoint]") {
    test::temp_dir dir;
    const auto check = [](const test::event_log& log, std::int64_t kept) {
        // inner released 1, sp rolled back 0, inner rolled back 0, sp released 1, left open 0
        CHECK(rows_of(log, "savepoint") == std::vector<std::int64_t>{1, 0, 0, 1, 0});
        CHECK(rows_of(log, "transaction") == std::vector<std::int64_t>{kept});
    };
    SECTION("plain") {
        test::event_log log;
        test::recording_db db{dir / "t.db", test::recording(log)};
        db.exec_script("CREATE TABLE kv(k INTEGER PRIMARY KEY)");
        log.clear();
        auto tx = db.begin();
        kept_and_undone(tx, [](auto& t, int k) { t.exec("INSERT INTO kv VALUES(?)", k); });
        tx.commit();
        CHECK(tx.rows_kept() == 2);
        check(log, 2);
        CHECK(db.query<int>("SELECT k FROM kv ORDER BY k") == std::vector<int>{1, 5});
    }
    SECTION("archived (the capture triggers' outbox rows are undone too)") {
        test::event_log log;
        auto o = test::archive::items_options();
        o.observer = log.observer();
        test::archive::ItemsDb db{dir / "a.db", o};
        log.clear();
        db.transaction([](auto& tx) {
            kept_and_undone(tx, [](auto& t, int k) { t.insert(test::archive::Item{k, "x", 0, "t"}); });
        });
        check(log, 2);
        CHECK(db.query<int>("SELECT id FROM items ORDER BY id") == std::vector<int>{1, 5});
    }
}

TEST_CASE("savepoints end in the reverse order they began: an outer one ended first is refused, a released one "
          "does not hold up commit()",
          "[transaction][savepoint]") {
    test::temp_dir dir;
    db_t db{dir / "t.db"};
    db.exec_script("CREATE TABLE kv(k INTEGER PRIMARY KEY)");
    auto tx = db.begin();
    auto a = tx.begin_savepoint();
    tx.exec("INSERT INTO kv VALUES(30)");
    auto b = tx.begin_savepoint();
    tx.exec("INSERT INTO kv VALUES(31)");
    for (int i = 0; i < 2; ++i) {
        try {
            if (i == 0) a.release();
            else a.rollback();
            FAIL("an outer savepoint ended while an inner one is open");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == resilite::error_class::misuse);
            CHECK_THAT(e.what(), Catch::Contains("begun after this one is still open"));
        }
    }
    b.rollback();
    a.release();
    tx.commit();  // a and b are still in scope, both ended
    CHECK(db.query<int>("SELECT k FROM kv") == std::vector<int>{30});
}

TEST_CASE("checkpoint() inside the caller's transaction is refused at once (class misuse), not retried until the "
          "deadline",
          "[transaction][checkpoint]") {
    test::temp_dir dir;
    db_t db{dir / "t.db"};
    int runs = 0;
    db.transaction([&](auto&) {
        ++runs;
        try {
            static_cast<void>(db.checkpoint());
            FAIL("a checkpoint ran inside a transaction");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == resilite::error_class::misuse);
        }
    });
    CHECK(runs == 1);
    CHECK(db.checkpoint().complete);  // after it, as usual
}

TEST_CASE("a statement that failed inside a transaction that commits anyway is a failure in health(), counted once",
          "[transaction][health]") {
    recorded_kv kv;
    auto& db = kv.db;
    const auto constraint = static_cast<std::size_t>(resilite::error_class::constraint);
    const auto before = db.health();
    db.transaction([](auto& tx) {
        tx.exec("INSERT INTO kv VALUES(1)");
        try {
            tx.exec("INSERT INTO kv VALUES(1)");  // caught: the transaction goes on and commits
        } catch (const resilite::error&) {
        }
    });
    const auto after = db.health();
    CHECK(after.failures - before.failures == 1);
    CHECK(after.failures_by_class[constraint] - before.failures_by_class[constraint] == 1);
    // A transaction that fails because of its statement: one failure, the transaction's.
    try {
        db.transaction([](auto& tx) { tx.exec("INSERT INTO kv VALUES(1)"); });
        FAIL("a duplicate key was accepted");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == resilite::error_class::constraint);
    }
    const auto failed = db.health();
    CHECK(failed.failures - after.failures == 1);
    // Nor is it counted again by the next transaction that commits.
    db.transaction([](auto& tx) { tx.exec("INSERT INTO kv VALUES(2)"); });
    CHECK(db.health().failures == failed.failures);
}

TEST_CASE("a transaction or savepoint ended by the application's own exception fails with class aborted, never "
          "none",
          "[transaction][health]") {
    recorded_kv kv;
    auto& db = kv.db;
    auto& log = kv.log;
    const auto aborted = static_cast<std::size_t>(resilite::error_class::aborted);
    const auto none = static_cast<std::size_t>(resilite::error_class::none);
    const auto before = db.health();
    CHECK_THROWS_AS(db.transaction([](auto& tx) {
        tx.exec("INSERT INTO kv VALUES(1)");
        tx.savepoint([](auto& sp) {
            sp.exec("INSERT INTO kv VALUES(2)");
            throw boom{};
        });
    }),
                    boom);
    const auto after = db.health();
    CHECK(after.failures_by_class[none] == before.failures_by_class[none]);
    CHECK(after.failures_by_class[aborted] > before.failures_by_class[aborted]);
    for (const auto& e : log.events()) {
        if (e.name != "transaction" && e.name != "savepoint") continue;
        INFO(e.name << ": " << e.detail);
        CHECK(e.result == resilite::outcome::failed);
        CHECK(e.error == resilite::error_class::aborted);
        CHECK_THAT(e.detail, Catch::Contains("boom"));
    }
    CHECK(db.query<int>("SELECT count(*) FROM kv") == std::vector<int>{0});
}

TEST_CASE("transaction inside a transaction is refused with a pointer to savepoints", "[transaction]") {
    test::temp_dir dir;
    db_t db{dir / "t.db"};
    db.transaction([&](auto&) {
        try {
            db.transaction([](auto&) {});
            FAIL("nested transaction accepted");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == resilite::error_class::misuse);
        }
    });
}

TEST_CASE("an explicit transaction that has ended refuses statements, savepoints and a second commit with class "
          "misuse, and its rollback is a no-op",
          "[transaction]") {
    test::temp_dir dir;
    db_t db{dir / "t.db"};
    db.exec_script("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT)");
    const auto refused = [](auto&& f) {
        try {
            f();
            FAIL("accepted on an ended transaction");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == resilite::error_class::misuse);
        }
    };
    for (const bool commit : {true, false}) {
        auto tx = db.begin();
        tx.exec("INSERT INTO kv VALUES(?, 'in')", commit ? 1 : 2);
        if (commit) tx.commit(); else tx.rollback();
        CHECK_FALSE(tx.active());
        // It would run outside any transaction: in autocommit, past what the transaction promised.
        refused([&] { static_cast<void>(tx.exec("INSERT INTO kv VALUES(10, 'after')")); });
        refused([&] { static_cast<void>(tx.query_one<int>("SELECT count(*) FROM kv")); });
        refused([&] { tx.savepoint([](auto& t) { t.exec("INSERT INTO kv VALUES(11, 'after')"); }); });
        refused([&] { tx.commit(); });
        tx.rollback();  // (a rollback after the end, as in a catch block, does nothing)
    }
    CHECK(db.query_one<int>("SELECT count(*) FROM kv") == 1);  // the committed row only
}

TEST_CASE("a transaction SQLite rolled back by itself commits nothing after it, and says so", "[transaction]") {
    // A trigger's RAISE(ROLLBACK) or INSERT OR ROLLBACK ends the whole transaction inside SQLite;
    // statements after it would run in autocommit and survive the caller's rollback.
    test::temp_dir dir;
    db_t db{dir / "t.db"};
    db.exec_script(
        "CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT NOT NULL);"
        "CREATE TRIGGER no_boom BEFORE INSERT ON kv WHEN new.v = 'boom' BEGIN SELECT RAISE(ROLLBACK, 'no boom'); END;");
    const auto expect_aborted = [](auto&& call) {
        try {
            call();
            FAIL("a statement through the Database after SQLite's rollback ran");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == resilite::error_class::aborted);
            CHECK_THAT(e.technical().note, Catch::Contains("outside it"));
        }
    };
    const auto rolled_back_by_sqlite = [&](auto&& failing_statement) {
        INFO("the function caught the failure and went on: the transaction still fails");
        try {
            db.transaction([&](auto& tx) {
                tx.exec("INSERT INTO kv VALUES(1, 'before')");
                try {
                    failing_statement(tx);
                    FAIL("the statement did not fail");
                } catch (const resilite::error& e) {
                    CHECK(e.klass() == resilite::error_class::constraint);
                }
                try {
                    tx.exec("INSERT INTO kv VALUES(3, 'after')");
                    FAIL("a statement after SQLite's rollback ran");
                } catch (const resilite::error& e) {
                    CHECK(e.klass() == resilite::error_class::aborted);
                    CHECK_THAT(e.technical().note, Catch::Contains("rolled back by SQLite"));
                }
                // Through the Database on this thread (it joins the thread's transaction): it
                // would run on its own, outside the transaction, and commit.
                expect_aborted([&] { db.exec("INSERT INTO kv VALUES(5, 'through db')"); });
                expect_aborted([&] { db.exec_script("INSERT INTO kv VALUES(7, 'script')"); });
                expect_aborted([&] { static_cast<void>(db.query<int>("INSERT INTO kv VALUES(8, 'q') RETURNING k")); });
                // Reads too (a statement that reads can write: WITH ... INSERT ... RETURNING).
                expect_aborted([&] { static_cast<void>(db.query_one<int>("SELECT count(*) FROM kv")); });
                expect_aborted([&] {
                    static_cast<void>(db.query<int>("WITH n(k) AS (VALUES(10)) INSERT INTO kv SELECT k, 'w' FROM n "
                                                    "RETURNING k"));
                });
            });
            FAIL("the transaction reported success");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == resilite::error_class::aborted);
        }
        CHECK(db.query_one<int>("SELECT count(*) FROM kv WHERE k <> 9") == 0);  // (9: committed before)
        CHECK_FALSE(db.with_connection([](auto& c) { return c.in_transaction(); }));

        auto tx = db.begin();
        tx.exec("INSERT INTO kv VALUES(1, 'before')");
        CHECK_THROWS(failing_statement(tx));
        CHECK_FALSE(tx.active());
        CHECK_THROWS_AS(tx.exec("INSERT INTO kv VALUES(4, 'after')"), resilite::error);
        expect_aborted([&] { db.exec("INSERT INTO kv VALUES(6, 'through db')"); });
        try {
            tx.commit();
            FAIL("commit() reported success");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == resilite::error_class::aborted);
        }
        tx.rollback();
        CHECK(db.query_one<int>("SELECT count(*) FROM kv WHERE k <> 9") == 0);  // (9: committed before)
    };
    rolled_back_by_sqlite([](auto& tx) { tx.exec("INSERT INTO kv VALUES(2, 'boom')"); });
    db.exec("INSERT INTO kv VALUES(9, 'there')");
    rolled_back_by_sqlite([](auto& tx) { tx.exec("INSERT OR ROLLBACK INTO kv VALUES(9, 'twice')"); });
    CHECK(db.query<int>("SELECT k FROM kv") == std::vector<int>{9});
}

TEST_CASE("COMMIT or ROLLBACK run as statements inside a transaction are refused and commit nothing",
          "[transaction]") {
    test::temp_dir dir;
    db_t db{dir / "t.db"};
    db.exec_script("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    for (const std::string statement : {"COMMIT", "END", "ROLLBACK", "COMMIT TRANSACTION"}) {
        INFO(statement);
        for (const bool script : {false, true}) {
            auto tx = db.begin();
            tx.exec("INSERT INTO kv VALUES(1, 'in')");
            try {
                if (script) tx.exec_script("INSERT INTO kv VALUES(2, 'in'); " + statement + "; INSERT INTO kv VALUES(3, 'out')");
                else static_cast<void>(tx.exec(statement));
                FAIL("accepted");
            } catch (const resilite::error& e) {
                CHECK(e.klass() == resilite::error_class::misuse);
                CHECK_THAT(e.technical().note, Catch::Contains("commit()"));
            }
            CHECK_FALSE(tx.active());
            CHECK_THROWS_AS(tx.commit(), resilite::error);
            tx.rollback();
            CHECK(db.query_one<int>("SELECT count(*) FROM kv") == 0);
        }
        CHECK_THROWS_AS(db.transaction([&](auto& tx) {
                            tx.exec("INSERT INTO kv VALUES(1, 'in')");
                            try {
                                static_cast<void>(tx.exec(statement));
                            } catch (const resilite::error&) {
                            }
                        }),
                        resilite::error);
        CHECK(db.query_one<int>("SELECT count(*) FROM kv") == 0);
        // Through the Database, on the thread that holds the transaction (it runs inside it).
        auto tx = db.begin();
        tx.exec("INSERT INTO kv VALUES(1, 'in')");
        CHECK_THROWS_AS(db.exec(statement), resilite::error);
        CHECK_THROWS_AS(tx.commit(), resilite::error);
        tx.rollback();  // (until then the thread's statements through the Database are refused)
        CHECK(db.query_one<int>("SELECT count(*) FROM kv") == 0);
    }
}

TEST_CASE("commit() inside transaction(f) or inside a savepoint is refused before anything is committed",
          "[transaction][savepoint]") {
    test::temp_dir dir;
    db_t db{dir / "t.db"};
    db.exec_script("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    try {
        db.transaction([](auto& tx) {
            tx.exec("INSERT INTO kv VALUES(1, 'in')");
            tx.commit();
        });
        FAIL("accepted");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == resilite::error_class::misuse);
        CHECK_THAT(e.technical().note, Catch::Contains("when the function returns"));
    }
    CHECK(db.query_one<int>("SELECT count(*) FROM kv") == 0);

    auto tx = db.begin();
    tx.exec("INSERT INTO kv VALUES(1, 'in')");
    try {
        tx.savepoint([&](auto& t) {
            t.exec("INSERT INTO kv VALUES(2, 'in')");
            tx.commit();
        });
        FAIL("accepted");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == resilite::error_class::misuse);
        CHECK_THAT(e.technical().note, Catch::Contains("savepoint"));
    }
    CHECK(tx.active());
    tx.rollback();
    CHECK(db.query_one<int>("SELECT count(*) FROM kv") == 0);
}

TEST_CASE("a failed commit reports a failure and leaves no transaction open", "[transaction]") {
    test::temp_dir dir;
    test::event_log log;
    test::recording_db db{dir / "t.db", test::recording(log)};
    db.exec_script(
        "CREATE TABLE parent(id INTEGER PRIMARY KEY);"
        "CREATE TABLE child(p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);"
        "PRAGMA foreign_keys = ON;");
    log.clear();
    CHECK_THROWS_AS(db.transaction([](auto& tx) { tx.exec("INSERT INTO child VALUES(42)"); }),
                    resilite::error);
    const auto events = log.events();
    // Deferred FK failure at COMMIT leaves the transaction open in SQLite; resilite rolls it back.
    CHECK_FALSE(db.with_connection([](auto& c) { return c.in_transaction(); }));
    CHECK(db.query_one<int>("SELECT count(*) FROM child") == 0);
    REQUIRE(events.size() >= 2);
    CHECK(events[events.size() - 2].name == "exec");
    CHECK(events.back().name == "transaction");
    CHECK(events.back().result == resilite::outcome::failed);
    CHECK(events.back().error == resilite::error_class::constraint);
    CHECK(events.back().rows == 0);
    CHECK(log.count("transaction") == 1);
}

TEST_CASE("begin(): a transaction used from another thread is refused (class misuse) and stays the beginning "
          "thread's, the Database usable after",
          "[transaction]") {
    test::temp_dir dir;
    db_t db{dir / "t.db"};
    db.exec_script("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT)");
    {
        auto tx = db.begin();
        tx.exec("INSERT INTO kv VALUES(1, 'in')");
        std::optional<db_t::savepoint_type> sp{tx.begin_savepoint()};
        std::vector<std::string> refused;
        std::thread other{[&] {
            const auto attempt = [&](const char* what, auto&& f) {
                try {
                    f();
                } catch (const resilite::error& e) {
                    if (e.klass() == resilite::error_class::misuse) refused.emplace_back(what);
                }
            };
            attempt("exec", [&] { tx.exec("INSERT INTO kv VALUES(2, 'other')"); });
            attempt("release", [&] { sp->release(); });
            attempt("savepoint", [&] { tx.savepoint([](auto&) {}); });
            attempt("commit", [&] { tx.commit(); });
            attempt("rollback", [&] { tx.rollback(); });
        }};
        other.join();
        CHECK(refused == std::vector<std::string>{"exec", "release", "savepoint", "commit", "rollback"});
        REQUIRE(tx.active());  // still this thread's, with its row
        sp->release();
        sp.reset();
        tx.exec("INSERT INTO kv VALUES(3, 'in')");
        tx.commit();
    }
    // The writer lock was released by the thread that took it: another thread writes at once.
    std::thread writer{[&] { db.exec("INSERT INTO kv VALUES(4, 'after')"); }};
    writer.join();
    CHECK(db.query<int>("SELECT k FROM kv ORDER BY k") == std::vector<int>{1, 3, 4});
}

}  // namespace core_transaction_tests
