// settings().read_connections: reads outside transactions on read-only connections, beside the
// writer and beside each other; what must stay on the writer connection; heals and replaced files.
#include "archive_support.hpp"
#include "support.hpp"

#include <catch2/catch.hpp>

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace flow_read_connections_tests {

using namespace test::archive;
using test::manual_durability;
using resilite::detail::reads_only;

namespace {

using Db = resilite::Database<resilite::null_observer, manual_durability, test::fast_retry>;
using backups_on_demand = resilite::backup<resilite::online_backup<>, resilite::on_demand>;
using HealDb = resilite::Database<resilite::schema<items, logs>, resilite::archive<>, backups_on_demand,
                                  resilite::healing<>, common, manual_durability>;

template <class D>
typename D::options pooled(std::size_t n = 2) {
    typename D::options o;
    auto s = D::default_settings();
    s.read_connections = n;
    o.settings = s;
    return o;
}

// Counts the connections opened read-only (the read connections) through on_connect.
template <class D>
typename D::options counting(std::atomic<int>& readers, std::size_t n = 2) {
    auto o = pooled<D>(n);
    o.on_connect = [&readers](resilite::sqlite::connection& c) {
        if (sqlite3_db_readonly(c.native_handle(), "main") == 1) ++readers;
    };
    return o;
}

// Rows 1..20 and a backup of them, then a read, which opens the first read connection.
void rows_and_a_backup(HealDb& db, const std::atomic<int>& readers) {
    for (int i = 1; i <= 20; ++i)
        db.insert(Item{i, "before", i * 1.0, "t"});
    static_cast<void>(db.backup_now());
    CHECK(db.select<Item>().size() == 20);
    REQUIRE(readers.load() == 1);
}

}  // namespace

TEST_CASE("read connections: which statements a read connection may run", "[database][read_connections]") {
    CHECK(reads_only("SELECT 1"));
    CHECK(reads_only("  select * from t"));
    CHECK(reads_only("\n-- a comment\n/* another */ WITH x AS (SELECT 1) SELECT * FROM x"));
    CHECK(reads_only("VALUES (1), (2)"));
    CHECK(reads_only("Select(1)"));
    CHECK_FALSE(reads_only("PRAGMA user_version"));
    CHECK_FALSE(reads_only("pragma foreign_keys"));
    CHECK_FALSE(reads_only("INSERT INTO t VALUES (1) RETURNING *"));
    CHECK_FALSE(reads_only("EXPLAIN SELECT 1"));
    CHECK_FALSE(reads_only("SELECTED"));
    CHECK_FALSE(reads_only("-- only a comment"));
    CHECK_FALSE(reads_only("/* unclosed SELECT"));
    CHECK_FALSE(reads_only(""));
    // What answers per connection without an error stays on the writer connection.
    CHECK_FALSE(reads_only("SELECT last_insert_rowid()"));
    CHECK_FALSE(reads_only("SELECT Changes(), total_changes()"));
    CHECK_FALSE(reads_only("SELECT * FROM pragma_table_info('t')"));
    CHECK_FALSE(reads_only("SELECT name FROM TEMP.sqlite_master"));
    CHECK_FALSE(reads_only("SELECT name FROM \"temp\".sqlite_master"));
    CHECK_FALSE(reads_only("SELECT count(*) FROM sqlite_temp_master"));
    CHECK(reads_only("SELECT temperature FROM readings"));
}

TEST_CASE("read connections: a read runs while another thread holds a write transaction open, and sees only what "
          "was committed",
          "[database][read_connections][threads]") {
    test::temp_dir dir;
    std::atomic<int> readers{0};
    Db db{dir / "r.db", counting<Db>(readers)};
    db.exec_script("CREATE TABLE t(x INTEGER)");
    db.exec("INSERT INTO t VALUES (1)");
    CHECK(readers.load() == 0);  // opened at the first read, not before

    std::promise<void> written;
    std::promise<void> read_done;
    auto done = read_done.get_future();
    std::thread writer([&] {
        db.transaction([&](auto& tx) {
            tx.exec("INSERT INTO t VALUES (2)");
            written.set_value();
            // The transaction (and the writer lock) stays open until the other thread's read
            // finished: without read connections that read would wait for this commit.
            if (done.wait_for(std::chrono::seconds{120}) != std::future_status::ready) throw std::runtime_error("read");
        });
    });
    written.get_future().wait();
    const auto during = db.query_one<int>("SELECT count(*) FROM t");
    read_done.set_value();
    writer.join();
    CHECK(during == 1);  // the uncommitted row is not seen
    CHECK(readers.load() == 1);
    CHECK(db.query_one<int>("SELECT count(*) FROM t") == 2);  // and the commit is, at once
}

TEST_CASE("read connections: inside its own transaction a thread reads on the writer connection and sees its writes",
          "[database][read_connections]") {
    test::temp_dir dir;
    std::atomic<int> readers{0};
    Db db{dir / "r.db", counting<Db>(readers)};
    db.exec_script("CREATE TABLE t(x INTEGER)");
    db.transaction([&](auto& tx) {
        tx.exec("INSERT INTO t VALUES (1)");
        CHECK(tx.template query_one<int>("SELECT count(*) FROM t") == 1);
        CHECK(db.query_one<int>("SELECT count(*) FROM t") == 1);  // the Database's call, same thread
    });
    auto tx = db.begin();
    tx.exec("INSERT INTO t VALUES (2)");
    CHECK(db.query_one<int>("SELECT count(*) FROM t") == 2);
    tx.rollback();
    CHECK(db.query_one<int>("SELECT count(*) FROM t") == 1);
    CHECK(readers.load() == 1);
}

TEST_CASE("read connections: what only the writer connection has is read there (TEMP tables, its pragmas, "
          "functions registered on it), and a write sent through query is committed",
          "[database][read_connections]") {
    test::temp_dir dir;
    std::atomic<int> readers{0};
    Db db{dir / "r.db", counting<Db>(readers)};
    db.exec_script("CREATE TABLE t(x INTEGER)");
    db.exec("INSERT INTO t VALUES (7)");
    CHECK(db.query_one<int>("SELECT x FROM t") == 7);
    REQUIRE(readers.load() == 1);

    db.exec_script("CREATE TEMP TABLE scratch(y INTEGER); INSERT INTO scratch VALUES (42)");
    CHECK(db.query_one<int>("SELECT y FROM scratch") == 42);
    CHECK(db.query_one<int>("SELECT count(*) FROM temp.sqlite_master WHERE name = 'scratch'") == 1);
    CHECK(db.query_one<int>("SELECT count(*) FROM sqlite_temp_master") == 1);
    db.exec_script("PRAGMA cache_size = -1234");
    CHECK(db.query_one<int>("PRAGMA cache_size") == -1234);
    db.with_connection([](auto& c) {
        sqlite3_create_function(
            c.native_handle(), "twice", 1, SQLITE_UTF8, nullptr,
            [](sqlite3_context* ctx, int, sqlite3_value** v) { sqlite3_result_int(ctx, 2 * sqlite3_value_int(v[0])); },
            nullptr, nullptr);
    });
    CHECK(db.query_one<int>("SELECT twice(x) FROM t") == 14);
    // Per-connection answers that come without an error: routed by name.
    db.exec("INSERT INTO t VALUES (9)");
    const auto rowid = db.query_one<std::int64_t>("SELECT last_insert_rowid()");
    CHECK(rowid == db.query_one<std::int64_t>("SELECT max(rowid) FROM t"));
    CHECK(db.query_one<int>("SELECT changes()") == 1);
    db.exec_script("PRAGMA foreign_keys = ON");
    CHECK(db.query_one<int>("SELECT * FROM pragma_foreign_keys") == 1);
    db.exec("DELETE FROM t WHERE x = 9");
    // A write that reads like a read: the read connection refuses it, the writer runs it once.
    const auto ids = db.query<int>("WITH v(n) AS (VALUES (8)) INSERT INTO t SELECT n FROM v RETURNING x");
    CHECK(ids == std::vector<int>{8});
    CHECK(db.query_one<int>("SELECT count(*) FROM t") == 2);
    CHECK(db.health().healthy);
    // A real error is the writer's own: reported once, as without read connections.
    CHECK_THROWS_AS(static_cast<void>(db.query<int>("SELECT nope FROM t")), resilite::error);
}

TEST_CASE("read connections: threads reading at once use at most the configured number, every answer right",
          "[database][read_connections][threads]") {
    test::temp_dir dir;
    std::atomic<int> readers{0};
    Db db{dir / "r.db", counting<Db>(readers, 2)};
    db.exec_script("CREATE TABLE t(x INTEGER PRIMARY KEY)");
    db.transaction([](auto& tx) {
        for (int i = 1; i <= 100; ++i)
            tx.exec("INSERT INTO t VALUES (?)", i);
    });
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 200; ++i) {
                const int key = 1 + (t * 200 + i) % 100;
                if (db.query_one<int>("SELECT x FROM t WHERE x = ?", key) != key) ++wrong;
            }
        });
    }
    // A writer beside them: every read sees a whole number of its commits.
    for (int i = 101; i <= 150; ++i)
        db.exec("INSERT INTO t VALUES (?)", i);
    for (auto& t : threads)
        t.join();
    CHECK(wrong.load() == 0);
    CHECK(readers.load() >= 1);
    CHECK(readers.load() <= 2);
    CHECK(db.query_one<int>("SELECT count(*) FROM t") == 150);
}

TEST_CASE("read connections: a read connection that cannot be opened sends reads to the writer connection, and "
          "an event says why, once",
          "[database][read_connections]") {
    for (const bool standard : {true, false}) {
        DYNAMIC_SECTION((standard ? "a std::exception" : "something else")) {
            test::temp_dir dir;
            test::event_log log;
            auto o = test::recording(log);
            auto s = test::recording_db::default_settings();
            s.read_connections = 2;
            o.settings = s;
            int refused = 0;
            o.on_connect = [&](resilite::sqlite::connection& c) {
                if (sqlite3_db_readonly(c.native_handle(), "main") == 1) {
                    ++refused;
                    if (standard) throw std::runtime_error("no read connections here");
                    throw 42;  // on_connect is the user's: anything may come out of it
                }
            };
            test::recording_db db{dir / "r.db", o};
            db.exec_script("CREATE TABLE t(x INTEGER)");
            db.exec("INSERT INTO t VALUES (3)");
            CHECK(db.query_one<int>("SELECT x FROM t") == 3);
            CHECK(db.query_one<int>("SELECT x FROM t") == 3);
            CHECK(refused == 1);  // tried once, not at every read
            REQUIRE(log.count("read_connection") == 1);
            for (const auto& e : log.events()) {
                if (e.name != "read_connection") continue;
                CHECK(e.result == resilite::outcome::warning);
                CHECK_THAT(e.detail, Catch::Contains(standard ? "no read connections here" : "not a std::exception"));
            }
            CHECK(db.health().healthy);
        }
    }
}

TEST_CASE("read connections: fixed while open, and a number past 64 refused", "[database][read_connections]") {
    test::temp_dir dir;
    auto o = pooled<Db>(65);
    CHECK_THROWS_AS(Db(dir / "r.db", o), resilite::error);
    Db db{dir / "r.db", pooled<Db>(2)};
    auto s = db.current_settings();
    s.read_connections = 3;
    try {
        db.reconfigure(s);
        FAIL("reconfigure accepted a new read_connections");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == resilite::error_class::invalid_setting);
        CHECK_THAT(e.technical().note, Catch::Contains("read_connections"));
    }
}

TEST_CASE("read connections with a heal: reads after the heal are on the healed file, never on the quarantined one",
          "[database][read_connections][heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    std::atomic<int> readers{0};
    HealDb db{path, counting<HealDb>(readers)};
    rows_and_a_backup(db, readers);
    for (int i = 21; i <= 30; ++i)
        db.insert(Item{i, "after the backup", i * 1.0, "t"});
    CHECK(db.select<Item>().size() == 30);  // the read connection, on the file as it is now

    const auto report = db.heal();
    INFO(report.to_text());
    REQUIRE(report.healed);
    db.insert(Item{31, "after the heal", 0, "t"});
    // Read on a read connection opened on the healed file: the new row is there.
    CHECK(db.select<Item>().size() == 31);
    CHECK(db.get<Item>(31).has_value());
    CHECK(readers.load() == 2);
}

TEST_CASE("read connections with a file another Database healed: the reads follow it to the healed file",
          "[database][read_connections][heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    std::atomic<int> readers{0};
    HealDb a{path, counting<HealDb>(readers)};
    rows_and_a_backup(a, readers);
    {
        HealDb b{path};
        const auto report = b.heal();  // the file at the path is another one now
        INFO(report.to_text());
        REQUIRE(report.healed);
        b.insert(Item{21, "written by the other after its heal", 0, "t"});
    }
    CHECK(a.select<Item>().size() == 21);  // not the 20 of the quarantined file
    CHECK(a.get<Item>(21).has_value());
    CHECK(readers.load() == 2);
}

}  // namespace flow_read_connections_tests
