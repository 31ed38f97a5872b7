// Testing your own application with resilite's toolkit: cut the power in the middle of your
// writes and check that every commit you acknowledged survived; damage a file on purpose and
// check that it is noticed.
#include <resilite/resilite.hpp>
#include <resilite/testing/corruption.hpp>
#include <resilite/testing/fault_vfs.hpp>
#include <resilite/testing/kill_harness.hpp>

#include <cstdio>
#include <filesystem>
#include <random>
#include <set>
#include <string>

namespace {
// The application code under test: records an order.
template <class Db>
void record_order(Db& db, int id) {
    db.transaction([&](auto& tx) {
        tx.exec("INSERT INTO orders(id, item) VALUES(?, ?)", id, "widget");
        tx.exec("UPDATE stats SET orders = orders + 1");
    });
}

using AppDb = resilite::Database<resilite::null_observer, resilite::no_retry>;
}  // namespace

int main() {
    const auto dir = std::filesystem::temp_directory_path() / "resilite-testing-example";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);

    // 1. Power loss at every possible sync of the workload.
    resilite::testing::fault_vfs vfs{"my-app-tests"};
    std::mt19937_64 rng{42};
    int failures = 0;
    for (int crash_at = 1; crash_at <= 30; ++crash_at) {
        const auto path = dir / ("orders-" + std::to_string(crash_at) + ".db");
        std::set<int> acknowledged;
        // snippet-begin: power_loss
        vfs.crash_at_sync(crash_at);
        try {
            AppDb::options options;
            options.vfs = vfs.name();
            AppDb db{path, options};
            db.exec_script(
                "CREATE TABLE IF NOT EXISTS orders(id INTEGER PRIMARY KEY, item TEXT NOT NULL);"
                "CREATE TABLE IF NOT EXISTS stats(orders INTEGER NOT NULL);"
                "INSERT INTO stats SELECT 0 WHERE NOT EXISTS(SELECT 1 FROM stats);");
            for (int id = 1; id <= 20; ++id) {
                record_order(db, id);
                acknowledged.insert(id);
            }
        } catch (const resilite::error&) {  // the power went out
        }
        if (!vfs.crashed()) vfs.cut_power();
        vfs.power_loss(rng);  // the files as a rebooted machine finds them
        // snippet-end: power_loss

        resilite::sqlite::connection check{path};
        const bool has_orders =
            check.query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = 'orders'") == 1;
        for (int id : acknowledged) {
            if (!has_orders || check.query_one<int>("SELECT count(*) FROM orders WHERE id = ?", id) != 1)
                ++failures;
        }
    }
    std::printf("power loss: %d acknowledged orders lost\n", failures);

    // 2. Damage detection: zero a page, and ask the health check.
    const auto path = dir / "damaged.db";
    {
        resilite::Database<resilite::null_observer> db{path};
        db.exec_script("CREATE TABLE t(x TEXT); CREATE INDEX t_x ON t(x);");
        db.transaction([](auto& tx) {
            for (int i = 0; i < 500; ++i)
                tx.exec("INSERT INTO t VALUES(?)", std::string(100, 'a' + i % 26));
        });
    }  // closed with a TRUNCATE checkpoint: everything is in the main file
    resilite::testing::zero_page(path, 3);
    const auto health = resilite::check_health(path, resilite::check_level::quick);
    std::printf("after zeroing page 3: %s (%s)\n", std::string{resilite::to_string(health.result)}.c_str(),
                health.detail.substr(0, 60).c_str());

    // 2b. Damage under an open database: the call that meets it must fail, never answer wrong.
    bool refused = false;
    {
        resilite::Database<resilite::null_observer> db{path.parent_path() / "open.db"};
        db.exec_script("CREATE TABLE readings(id INTEGER PRIMARY KEY, value REAL NOT NULL)");
        db.transaction([](auto& tx) {
            for (int i = 1; i <= 500; ++i)
                tx.exec("INSERT INTO readings(value) VALUES(?)", i * 0.5);
        });
        // snippet-begin: open_damage
        // The page must be in the file (not only in the WAL) and not in SQLite's page cache.
        static_cast<void>(db.checkpoint(resilite::checkpoint_mode::truncate));
        db.with_connection([](auto& c) { sqlite3_db_release_memory(c.native_handle()); });
        std::uint32_t root = 0;
        {
            resilite::sqlite::connection reader{db.path(), SQLITE_OPEN_READONLY};
            root = static_cast<std::uint32_t>(
                reader.query_one<std::int64_t>("SELECT rootpage FROM sqlite_master WHERE name = 'readings'").value_or(0));
        }
        resilite::testing::zero_page(db.path(), root);  // the table's root page, under the open database
        try {
            static_cast<void>(db.query_one<double>("SELECT sum(value) FROM readings"));
        } catch (const resilite::error& e) {
            refused = e.klass() == resilite::error_class::corrupt;  // never a wrong sum
        }
        // snippet-end: open_damage
    }
    std::printf("a page zeroed under the open database: %s\n", refused ? "the read was refused" : "NOT REFUSED");

    // 3. A real SIGKILL in the middle of the writes.
    const auto killed = dir / "killed.db";
    {
        resilite::Database<resilite::null_observer> setup{killed};
        setup.exec_script("CREATE TABLE t(seq INTEGER NOT NULL)");
    }
    // snippet-begin: kill
    const auto r = resilite::testing::run_and_kill(
        [&](const auto& report) {
            resilite::Database<resilite::null_observer> db{killed};
            for (std::int64_t seq = 1;; ++seq) {
                db.exec("INSERT INTO t VALUES(?)", seq);
                report(seq);  // acknowledged: must survive the kill
            }
        },
        resilite::testing::after_acknowledged{2 + rng() % 9});
    // every number in r.acknowledged is in the database
    // snippet-end: kill
    int lost = 0;
    resilite::sqlite::connection after{killed};
    for (const auto seq : r.acknowledged) {
        if (after.query_one<int>("SELECT count(*) FROM t WHERE seq = ?", seq) != 1) ++lost;
    }
    std::printf("killed after %zu acknowledged commits: %d lost\n", r.acknowledged.size(), lost);
    return failures == 0 && !health.ok() && refused && r.killed && lost == 0 ? 0 : 1;
}
