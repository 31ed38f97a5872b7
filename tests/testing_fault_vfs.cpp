// The fault VFS at work: power loss at random syncs (and the control that must lose data),
// I/O errors at every k-th write and sync, disk full.
#include "archive_support.hpp"

#include <resilite/testing/fault_vfs.hpp>
#include <resilite/testing/trials.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <set>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace testing_fault_vfs_tests {

using resilite::testing::fault_vfs;
using resilite::testing::io_op;

namespace {
// No retries: a fault must surface at once (retrying I/O errors would reopen the connection).
using faulty_db = resilite::Database<resilite::null_observer, resilite::no_retry, test::manual_durability>;

faulty_db::options on(const fault_vfs& vfs) {
    faulty_db::options o;
    o.vfs = vfs.name();
    return o;
}

const char* const schema_sql =
    "CREATE TABLE IF NOT EXISTS t(seq INTEGER PRIMARY KEY, payload TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS counter(n INTEGER NOT NULL);"
    "INSERT INTO counter SELECT 0 WHERE NOT EXISTS(SELECT 1 FROM counter);";

// One numbered transaction: a row plus the counter, so a half-applied one is visible.
template <class Exec>
void numbered(Exec& tx, int seq, std::mt19937_64& rng) {
    tx.exec("INSERT INTO t(seq, payload) VALUES(?, ?)", seq, std::string(100 + rng() % 3000, 'p'));
    tx.exec("UPDATE counter SET n = n + 1");
}

struct after_crash {
    std::set<int> present;
    int counter = -1;
    std::string integrity;
};

after_crash inspect(const std::filesystem::path& path) {
    after_crash a;
    resilite::sqlite::connection c{path};
    // The schema script runs statement by statement: a crash may leave part of it.
    if (c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = 't'") == 1) {
        for (int s : c.query_all<int>("SELECT seq FROM t"))
            a.present.insert(s);
    }
    a.counter = c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = 'counter'") == 1
                    ? c.query_one<int>("SELECT n FROM counter").value_or(0)
                    : 0;
    a.integrity = c.query_one<std::string>("PRAGMA integrity_check").value_or("?");
    return a;
}
}  // namespace

TEST_CASE("power-loss at a random sync loses no acknowledged commit (WAL + FULL)", "[fault][power-loss]") {
    test::temp_dir dir;
    fault_vfs vfs{"resilite-power-loss"};
    std::mt19937_64 rng{20261122};
    const int n = resilite::testing::trials(1000);
    int crashes = 0;
    int in_flight_kept = 0;
    for (int trial = 0; trial < n; ++trial) {
        const auto path = dir / fmt::format("p{}.db", trial);
        vfs.crash_at_sync(1 + static_cast<int>(rng() % 40));
        std::vector<int> acked;
        try {
            faulty_db db{path, on(vfs)};
            db.exec_script(schema_sql);
            for (int seq = 1; seq <= 30; ++seq) {
                db.transaction([&](auto& tx) { numbered(tx, seq, rng); });
                acked.push_back(seq);
                if (seq % 10 == 0) static_cast<void>(db.checkpoint());
            }
        } catch (const resilite::error&) {  // the power went out
        }
        if (!vfs.crashed()) vfs.cut_power();
        ++crashes;
        vfs.power_loss(rng);
        // No false alarm: what SQLite's recovery accepts with every acknowledged row, the health
        // check accepts too (a torn tail of unsynced frames is normal). Checked first: SQLite's
        // recovery rewrites the files.
        const auto health = resilite::check_health(path, resilite::check_level::header);
        INFO("trial " << trial << ": " << acked.size() << " acknowledged; health: " << health.detail);
        if (acked.empty() && !health.ok()) continue;  // the crash came while creating the file
        REQUIRE(health.ok());
        const auto a = inspect(path);
        for (int seq : acked)
            REQUIRE(a.present.count(seq) == 1);
        // The in-flight transaction is all or nothing: its row and its counter step together.
        REQUIRE(a.counter == static_cast<int>(a.present.size()));
        REQUIRE(a.present.size() <= acked.size() + 1);
        if (a.present.size() == acked.size() + 1) ++in_flight_kept;
        REQUIRE(a.integrity == "ok");
    }
    INFO("in-flight transactions that survived: " << in_flight_kept << " of " << n);
    CHECK(crashes == n);
}

namespace {
using archive_faulty_db =
    resilite::Database<resilite::schema<test::archive::items, test::archive::logs>, resilite::archive<>,
                       resilite::null_observer, resilite::no_retry, test::manual_durability>;

// `to` becomes a copy of `from` (nothing, when `from` does not exist).
void copy_over(const std::filesystem::path& from, const std::filesystem::path& to) {
    std::filesystem::remove_all(to);
    if (std::filesystem::exists(from))
        std::filesystem::copy(from, to, std::filesystem::copy_options::recursive);
}
}  // namespace

TEST_CASE(
    "archive after power loss at a random sync: every acknowledged commit is in the archive, no failed "
    "transaction is, a rebuild from it equals the database",
    "[fault][power-loss][archive]") {
    // The fault VFS cuts the power for SQLite's files. The archive (and the high-water mark) are
    // written with POSIX calls the VFS does not see: each archive write is synced before the code
    // returns to SQLite, so at any xSync the archive holds only synced bytes, except the
    // high-water mark, which is never synced. At the cut, on_power_cut copies them; after the
    // power loss, half the trials put that copy back (as a real cut leaves them), the others keep
    // what the process went on to do after the failed sync: it takes back the record of the
    // COMMIT that failed, as when a sync fails with an I/O error and the process dies afterwards.
    // The mark is dropped in a third of the trials (unsynced: after a cut it may be behind, never
    // ahead).
    using namespace test::archive;
    test::temp_dir dir;
    fault_vfs vfs{"resilite-power-loss-archive"};
    std::mt19937_64 rng{20261202};
    const int n = resilite::testing::trials(80);
    int crashes = 0, frozen_trials = 0, in_flight_kept = 0, trials_with_cancel = 0, trials_with_baseline = 0;
    std::size_t acknowledged = 0, failed = 0;
    for (int trial = 0; trial < n; ++trial) {
        const auto path = dir / fmt::format("a{}.db", trial);
        const auto archive = dir / fmt::format("a{}.db.archive", trial);
        const auto mark = resilite::detail::archive::high_water_path(path);
        const auto cut_archive = dir / fmt::format("a{}.at-cut", trial);
        const auto cut_mark = dir / fmt::format("a{}.hwm-at-cut", trial);
        vfs.on_power_cut([&] {
            copy_over(archive, cut_archive);
            copy_over(mark, cut_mark);
        });
        vfs.crash_at_sync(1 + static_cast<int>(rng() % 32));
        trial_outcomes seen;
        std::optional<std::int64_t> in_flight;
        try {
            auto o = archive_options<archive_faulty_db>();
            o.vfs = vfs.name();
            archive_faulty_db db{path, o};
            for (std::int64_t k = 1; k <= 20; ++k) {
                in_flight = k;
                (trial_transaction(db, k, trial_kind_of(k)) ? seen.acknowledged : seen.failed).insert(k);
                in_flight.reset();
                if (k % 8 == 0) static_cast<void>(db.checkpoint());
            }
        } catch (const resilite::error&) {  // the power went out
        }
        if (!vfs.crashed()) vfs.cut_power();
        ++crashes;
        const bool frozen = rng() % 2 == 0;
        if (frozen) {
            ++frozen_trials;
            copy_over(cut_archive, archive);
            copy_over(cut_mark, mark);
        }
        if (rng() % 3 == 0) std::filesystem::remove(mark);
        // In a third of the trials the disk had written everything before the cut: the COMMIT
        // that failed at its sync is in the database after all (each of its writes survives on
        // its own only one time in three, so a random fate hardly ever keeps a whole one).
        const bool all_written = rng() % 3 == 0;
        if (all_written) {
            vfs.power_loss([](std::mt19937_64&) { return resilite::testing::write_fate::applied; }, rng);
        } else {
            vfs.power_loss(rng);
        }
        const auto health = resilite::check_health(path, resilite::check_level::header);
        INFO("trial " << trial
                      << (frozen ? " (archive as the cut left it)" : " (archive as the process left it)")
                      << (all_written ? ", every write kept" : "") << ": " << seen.acknowledged.size()
                      << " acknowledged, in flight: " << in_flight.value_or(0)
                      << "; health: " << health.detail);
        if (seen.acknowledged.empty() && seen.failed.empty() && !health.ok())
            continue;  // cut while creating it
        REQUIRE(health.ok());
        const auto cancelled_before = set_aside_files(archive, ".cancelled-").size();
        { archive_faulty_db db{path, archive_options<archive_faulty_db>()}; }  // resolves the archive's tail
        trials_with_cancel += set_aside_files(archive, ".cancelled-").size() > cancelled_before ? 1 : 0;
        const auto violation = archive_trial_violation(path, archive, seen);
        INFO(violation);
        REQUIRE(violation.empty());
        {
            resilite::sqlite::connection c{path, SQLITE_OPEN_READONLY};
            if (in_flight &&
                c.query_one<std::int64_t>("SELECT count(*) FROM items WHERE id / 4 = ?", *in_flight) > 0)
                ++in_flight_kept;
        }
        trials_with_baseline += count_of(segments_text(archive), " baseline outbox ") > 0 ? 1 : 0;
        acknowledged += seen.acknowledged.size();
        failed += seen.failed.size();
        for (const auto& p : {cut_archive, cut_mark, archive})
            std::filesystem::remove_all(p);
    }
    INFO(crashes << " power cuts, " << frozen_trials << " with the archive as the cut left it; "
                 << acknowledged << " commits acknowledged, " << failed
                 << " transactions failed on purpose; in-flight "
                 << "transactions kept by the database: " << in_flight_kept
                 << "; records cancelled at the next "
                 << "open in " << trials_with_cancel << " trials; a baseline written in "
                 << trials_with_baseline);
    CHECK(crashes == n);
    CHECK(acknowledged > 0);
    CHECK(failed > 0);
    // The cases that matter were reached: a record written ahead of a COMMIT that did not last
    // (cancelled at the next open), and a COMMIT that failed at its sync but lasted.
    CHECK(trials_with_cancel > 0);
    CHECK(in_flight_kept > 0);
}

TEST_CASE("power-loss with synchronous=NORMAL: resilite opens what SQLite recovers, no false alarm",
          "[fault][power-loss]") {
    // NORMAL may lose the last commits (the documented trade-off), but a torn log is no damage:
    // the database must open as plain SQLite opens it.
    using normal_db = resilite::Database<resilite::null_observer, resilite::no_retry,
                                         resilite::relaxed_durability<60, 64, false>>;
    test::temp_dir dir;
    fault_vfs vfs{"resilite-power-loss-normal"};
    std::mt19937_64 rng{20261130};
    const int n = resilite::testing::trials(200);
    for (int trial = 0; trial < n; ++trial) {
        const auto path = dir / fmt::format("n{}.db", trial);
        vfs.crash_at_sync(1 + static_cast<int>(rng() % 12));
        try {
            normal_db::options o;
            o.vfs = vfs.name();
            normal_db db{path, o};
            db.exec_script(schema_sql);
            for (int seq = 1; seq <= 30; ++seq) {
                db.transaction([&](auto& tx) { numbered(tx, seq, rng); });
                if (seq % 10 == 0) static_cast<void>(db.checkpoint());
            }
        } catch (const resilite::error&) {  // the power went out
        }
        if (!vfs.crashed()) vfs.cut_power();
        vfs.power_loss(rng);
        const auto health = resilite::check_health(path, resilite::check_level::header);
        INFO("trial " << trial << ": " << health.detail);
        if (!health.ok()) {
            // Only a file SQLite cannot use either (the crash came while it was being created).
            CHECK_THROWS_AS(inspect(path), resilite::error);
            continue;
        }
        normal_db db{path};
        const auto a = inspect(path);
        REQUIRE(a.integrity == "ok");
        REQUIRE(a.counter == static_cast<int>(a.present.size()));
    }
}

TEST_CASE("power-loss control: synchronous=OFF must lose acknowledged commits",
          "[fault][power-loss][control]") {
    // The same harness with the syncs switched off: if it never saw a loss here, the test
    // above would prove nothing.
    test::temp_dir dir;
    fault_vfs vfs{"resilite-control"};
    std::mt19937_64 rng{7};
    const int n = resilite::testing::trials(50);
    int trials_with_loss = 0;
    int lost_commits = 0;
    for (int trial = 0; trial < n; ++trial) {
        const auto path = dir / fmt::format("c{}.db", trial);
        std::vector<int> acked;
        {
            resilite::sqlite::connection c{path, resilite::sqlite::connection::default_flags, vfs.name()};
            c.exec_script("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;");
            c.exec_script(schema_sql);
            for (int seq = 1; seq <= 30; ++seq) {
                resilite::sqlite::transaction tx{c};
                numbered(c, seq, rng);
                tx.commit();
                acked.push_back(seq);
            }
            vfs.cut_power();
        }
        vfs.power_loss(rng);
        std::set<int> present;
        try {
            present = inspect(path).present;
        } catch (const resilite::error&) {  // so damaged it does not open: everything lost
        }
        int lost = 0;
        for (int seq : acked)
            lost += present.count(seq) == 0 ? 1 : 0;
        lost_commits += lost;
        trials_with_loss += lost > 0 ? 1 : 0;
    }
    INFO("control lost " << lost_commits << " acknowledged commits in " << trials_with_loss << " of " << n
                         << " trials");
    CHECK(trials_with_loss > n / 2);
}

namespace {
// A clean database with 5 committed rows (no faults).
void seed(const std::filesystem::path& path) {
    faulty_db db{path};
    db.exec_script(schema_sql);
    std::mt19937_64 rng{1};
    for (int seq = 1; seq <= 5; ++seq)
        db.transaction([&](auto& tx) { numbered(tx, seq, rng); });
}

// Runs the workload (a transaction of 20 rows) with the n-th `op` failing; returns whether the
// fault was reached at all.
bool io_error_trial(const std::filesystem::path& path, fault_vfs& vfs, io_op op, int k, bool persistent) {
    seed(path);
    bool reported_success = false;
    bool reached = false;
    {
        faulty_db db{path, on(vfs)};
        const int before = vfs.count(op);
        vfs.fail(op, k, op == io_op::sync ? SQLITE_IOERR_FSYNC : SQLITE_IOERR_WRITE, persistent);
        std::mt19937_64 rng{static_cast<std::uint64_t>(k)};
        try {
            db.transaction([&](auto& tx) {
                for (int seq = 100; seq < 120; ++seq)
                    numbered(tx, seq, rng);
            });
            static_cast<void>(db.checkpoint(resilite::checkpoint_mode::truncate));
            reported_success = true;
        } catch (const resilite::error& e) {
            CHECK((e.klass() == resilite::error_class::io ||
                   e.klass() == resilite::error_class::retry_exhausted));
        }
        reached = vfs.count(op) - before >= k;
    }
    vfs.clear_failures();
    const auto a = inspect(path);
    CHECK(a.integrity == "ok");
    const bool old_state = a.present.size() == 5;
    const bool new_state = a.present.size() == 25;
    CHECK((old_state || new_state));  // the old or the new state, nothing between
    CHECK(a.counter == static_cast<int>(a.present.size()));
    if (reported_success) CHECK(new_state);  // never a false success
    std::filesystem::remove(path);
    for (const char* s : {"-wal", "-shm", "-resilite"})
        std::filesystem::remove(path.string() + s);
    return reached;
}
}  // namespace

TEST_CASE("ioerr at the k-th write and the k-th sync, for every k, transient and persistent",
          "[fault][ioerr]") {
    test::temp_dir dir;
    fault_vfs vfs{"resilite-ioerr"};
    for (const auto op : {io_op::write, io_op::sync}) {
        for (const bool persistent : {false, true}) {
            int k = 1;
            while (io_error_trial(dir / "io.db", vfs, op, k, persistent)) {
                ++k;
                REQUIRE(k < 500);
            }
            INFO((op == io_op::write ? "write" : "sync")
                 << (persistent ? " persistent" : " transient") << ": " << k - 1 << " fault points");
            CHECK(k > 2);  // the workload does reach several writes/syncs
        }
    }
}

TEST_CASE("ioerr at a COMMIT's sync: the error says the outcome is unknown, not that nothing was committed",
          "[fault]") {
    test::temp_dir dir;
    fault_vfs vfs{"fault-commit-sync"};
    const auto path = dir / "app.db";
    seed(path);
    faulty_db db{path, on(vfs)};
    vfs.fail(io_op::sync, 1, SQLITE_IOERR_FSYNC, false);
    try {
        db.transaction([](auto& tx) { tx.exec("INSERT INTO t(seq, payload) VALUES(999, 'x')"); });
        FAIL("the COMMIT whose sync failed was reported done");
    } catch (const resilite::error& e) {
        INFO(e.what());
        const auto cause = e.cause();
        const auto& failure = cause ? cause->technical() : e.technical();
        CHECK((failure.extended_code & 0xff) == SQLITE_IOERR);
        CHECK(failure.note.find("the COMMIT's outcome is unknown") != std::string::npos);
    }
    vfs.clear_failures();
}

TEST_CASE("a write whose sync keeps failing is tried once: class io, its outcome unknown, never applied twice",
          "[fault][ioerr]") {
    test::temp_dir dir;
    fault_vfs vfs{"fault-sync-persistent"};
    const auto path = dir / "app.db";
    seed(path);
    const auto count = [&](const char* sql) {
        resilite::sqlite::connection c{path};
        return c.query_one<std::int64_t>(sql).value_or(-1);
    };
    const auto counter_before = count("SELECT n FROM counter");
    {
        // A policy that retries I/O errors, five times, without waiting.
        using retrying_db =
            resilite::Database<resilite::null_observer, resilite::constant_backoff<0, 5>, test::manual_durability>;
        retrying_db::options o;
        o.vfs = vfs.name();
        retrying_db db{path, o};
        vfs.fail(io_op::sync, 1, SQLITE_IOERR_FSYNC, true);  // a disk that stays broken
        const auto tried_once = [&](auto&& write) {
            try {
                write();
                FAIL("a write whose sync failed was reported done");
            } catch (const resilite::error& e) {
                INFO(e.what());
                CHECK(e.klass() == resilite::error_class::io);
                CHECK(e.technical().outcome_unknown);
                CHECK(e.technical().attempt == 1);
                CHECK_THAT(e.technical().note, Catch::Contains("outcome is unknown"));
            }
        };
        SECTION("a statement outside a transaction") {
            tried_once([&] { db.exec("INSERT INTO t(seq, payload) VALUES(999, 'x')"); });
            // The disk is suspect: unavailable until a probe finds it takes writes (the next
            // calls go to the degradation policy, here class degraded at once).
            CHECK_FALSE(db.health().available);
        }
        SECTION("a transaction") {
            tried_once([&] {
                db.transaction([](auto& tx) {
                    tx.exec("INSERT INTO t(seq, payload) VALUES(999, 'x')");
                    tx.exec("UPDATE counter SET n = n + 1");
                });
            });
        }
        vfs.clear_failures();
    }
    // Opened again (SQLite's recovery may bring the write back): there at most once.
    CHECK(count("SELECT count(*) FROM t WHERE seq = 999") <= 1);
    CHECK(count("SELECT n FROM counter") - counter_before <= 1);
}

TEST_CASE("disk-full: a clear error, the database intact, writes succeed once there is room",
          "[fault][disk-full]") {
    test::temp_dir dir;
    fault_vfs vfs{"resilite-disk-full"};
    const auto path = dir / "full.db";
    seed(path);
    faulty_db db{path, on(vfs)};
    vfs.set_space(16 * 1024);
    const auto big = [&] {
        db.transaction([&](auto& tx) {
            for (int seq = 200; seq < 260; ++seq) {
                tx.exec("INSERT INTO t(seq, payload) VALUES(?, ?)", seq, std::string(4000, 'f'));
                tx.exec("UPDATE counter SET n = n + 1");
            }
        });
    };
    try {
        big();
        FAIL("wrote past the end of the disk");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == resilite::error_class::full);
        CHECK(e.user_message() == resilite::user_message(resilite::error_class::full));
    }
    CHECK(db.query_one<int>("SELECT count(*) FROM t") == 5);
    CHECK(db.query_one<std::string>("PRAGMA integrity_check") == "ok");
    vfs.unlimited_space();
    big();
    CHECK(db.query_one<int>("SELECT count(*) FROM t") == 65);
    CHECK(db.query_one<int>("SELECT n FROM counter") == 65);
}

TEST_CASE("fault VFS counts and fails opens and reads", "[fault]") {
    test::temp_dir dir;
    fault_vfs vfs{"resilite-open-read"};
    seed(dir / "o.db");
    vfs.fail(io_op::open, 1, SQLITE_CANTOPEN);
    CHECK_THROWS_AS(faulty_db(dir / "o.db", on(vfs)), resilite::error);
    faulty_db db{dir / "o.db", on(vfs)};
    CHECK(vfs.count(io_op::open) >= 2);
    vfs.fail(io_op::read, 1, SQLITE_IOERR_READ, true);
    db.with_connection([](auto& c) { c.exec_script("PRAGMA cache_size = 0"); });  // force reads
    try {
        static_cast<void>(db.query<std::string>("SELECT payload FROM t"));
        FAIL("read through a failing disk");
    } catch (const resilite::error& e) {
        CHECK(
            (e.klass() == resilite::error_class::io || e.klass() == resilite::error_class::retry_exhausted));
    }
    vfs.clear_failures();
    CHECK(db.query<std::string>("SELECT payload FROM t").size() == 5);
}

}  // namespace testing_fault_vfs_tests
