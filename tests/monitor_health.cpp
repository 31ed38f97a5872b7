// Health monitoring: metrics equal the true counts (P10), scheduled checks, the JSON snapshot.
#include "support.hpp"

#include <resilite/testing/corruption.hpp>

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
using resilite::error_class;

namespace {
using monitored_db = resilite::Database<resilite::null_observer, resilite::manual_clock,
                                        test::manual_durability, resilite::exponential_backoff<1, 4, 4>>;
}  // namespace

TEST_CASE("P10 health monitoring data collection", "[health][property][P10]") {
    test::temp_dir dir;
    int case_number = 0;
    rc::prop("for any sequence of operations with injected outcomes the metrics equal the true counts", [&] {
        // Each operation: 0 ok, 1 constraint failure, 2 k busy attempts then ok, 3 busy until exhausted.
        const auto plan = *rc::gen::container<std::vector<int>>(rc::gen::inRange(0, 4));
        std::vector<int> busy_count;
        for (std::size_t i = 0; i < plan.size(); ++i)
            busy_count.push_back(*rc::gen::inRange(1, 4));
        std::size_t current = 0;
        resilite::manual_clock clock;
        monitored_db::options o;
        o.clock = clock;
        bool armed = false;
        o.inject_failure = [&](std::string_view operation, int attempt) {
            if (!armed || operation != "exec") return SQLITE_OK;
            switch (plan[current]) {
                case 1:
                    return SQLITE_CONSTRAINT_UNIQUE;
                case 2:
                    return attempt <= busy_count[current] ? SQLITE_BUSY : SQLITE_OK;
                case 3:
                    return SQLITE_BUSY;
                default:
                    return SQLITE_OK;
            }
        };
        monitored_db db{dir / fmt::format("p10-{}.db", ++case_number), o};
        db.exec_script("CREATE TABLE t(x)");
        const auto before = db.health();
        armed = true;
        std::uint64_t failures = 0, retries = 0, constraint = 0, exhausted = 0;
        for (current = 0; current < plan.size(); ++current) {
            try {
                db.exec("INSERT INTO t VALUES(1)");
            } catch (const resilite::error& e) {
                ++failures;
                constraint += e.klass() == error_class::constraint ? 1 : 0;
                exhausted += e.klass() == error_class::retry_exhausted ? 1 : 0;
            }
            retries += plan[current] == 2   ? static_cast<std::uint64_t>(busy_count[current])
                       : plan[current] == 3 ? 3u
                                            : 0u;
        }
        armed = false;
        const auto h = db.health();
        RC_ASSERT(h.operations - before.operations == plan.size());
        RC_ASSERT(h.failures - before.failures == failures);
        RC_ASSERT(h.failures_by_class[static_cast<std::size_t>(error_class::constraint)] == constraint);
        RC_ASSERT(h.failures_by_class[static_cast<std::size_t>(error_class::retry_exhausted)] == exhausted);
        RC_ASSERT(constraint == static_cast<std::uint64_t>(std::count(plan.begin(), plan.end(), 1)));
        RC_ASSERT(exhausted == static_cast<std::uint64_t>(std::count(plan.begin(), plan.end(), 3)));
        RC_ASSERT(h.retries - before.retries == retries);
        RC_ASSERT(h.latency_samples - before.latency_samples == plan.size());
        RC_ASSERT(h.p50 <= h.p95);
        RC_ASSERT(h.p95 <= h.p99);
    });
}

TEST_CASE("health: scheduled checks run by the clock and a damaged database shows in the snapshot",
          "[health]") {
    test::temp_dir dir;
    const auto path = dir / "m.db";
    test::database_with_swapped_index(path, 50);  // only integrity_check sees it
    resilite::manual_clock clock;
    monitored_db::options o;
    o.clock = clock;
    o.settings = monitored_db::default_settings();
    o.settings->quick_check_interval = 10min;
    o.settings->integrity_check_interval = 1h;
    monitored_db db{path, o};
    CHECK_FALSE(db.health().last_check.has_value());
    clock.advance(10min);
    CHECK(db.maintain());
    auto h = db.health();
    REQUIRE(h.last_check.has_value());
    CHECK(h.last_check->level == resilite::check_level::quick);
    CHECK(h.last_check->ok());  // quick_check does not see the swapped index
    clock.advance(50min);
    CHECK(db.maintain());
    h = db.health();
    CHECK(h.last_check->level == resilite::check_level::full);
    CHECK(h.last_check->result == resilite::health_report::finding::corrupt);
    CHECK(h.failures_by_class[static_cast<std::size_t>(error_class::corrupt)] == 1);
    const auto json = h.to_json();
    CHECK_THAT(json, Catch::Contains("\"last_check\":{\"result\":\"corrupt\",\"level\":\"full\"}"));
    CHECK_THAT(json, Catch::Contains("\"failures_by_class\":{\"corrupt\":1}"));
    CHECK_THAT(json, Catch::Contains("\"page_count\":"));
}

TEST_CASE("health: backup age, WAL size and latency percentiles", "[health]") {
    test::temp_dir dir;
    using Db = resilite::Database<
        resilite::null_observer, resilite::manual_clock, test::manual_durability,
        resilite::backup<resilite::vacuum_into, resilite::on_demand, resilite::keep_last<2>>>;
    resilite::manual_clock clock;
    Db::options o;
    o.clock = clock;
    Db db{dir / "b.db", o};
    db.exec_script("CREATE TABLE t(x)");
    CHECK_FALSE(db.health().last_backup_age.has_value());
    static_cast<void>(db.backup_now());
    clock.advance(90s);
    const auto h = db.health();
    REQUIRE(h.last_backup_age.has_value());
    CHECK(*h.last_backup_age == 90s);
    CHECK(h.wal_bytes > 0);
    CHECK(h.page_count >= 2);
    CHECK(h.operations >= 3);  // open, exec_script, check, backup
    CHECK_THAT(h.to_json(), Catch::Contains("\"last_backup_age_s\":90"));
}

TEST_CASE("health: check and backup schedules changed at run time take effect", "[health][settings]") {
    test::temp_dir dir;
    using Db = resilite::Database<
        resilite::null_observer, resilite::manual_clock, test::manual_durability,
        resilite::backup<resilite::vacuum_into, resilite::on_demand, resilite::keep_last<5>>>;
    resilite::manual_clock clock;
    Db::options o;
    o.clock = clock;
    Db db{dir / "r.db", o};
    clock.advance(2h);
    static_cast<void>(db.maintain());  // a checkpoint, but no check or backup is scheduled
    CHECK_FALSE(db.health().last_check.has_value());
    auto s = db.current_settings();
    s.quick_check_interval = 5min;
    s.backup.interval = 30min;
    db.reconfigure(s);
    clock.advance(5min);
    CHECK(db.maintain());
    CHECK(db.health().last_check.has_value());
    CHECK_FALSE(db.health().last_backup_time.has_value());
    clock.advance(25min);
    CHECK(db.maintain());
    CHECK(db.health().last_backup_time.has_value());
}

namespace {
// Another process opens the database, reads and closes. Closing the last connection to a WAL
// database checkpoints it and deletes the -wal: SQLite decides it is the last by taking an
// EXCLUSIVE lock, which succeeds only if no other process holds a SHARED lock.
void another_process_opens_and_closes(const std::filesystem::path& path) {
    // A fresh program (the sqlite3 shell), not a fork: a forked child would inherit SQLite's
    // in-process record of this process's locks and never ask the kernel.
    const pid_t child = ::fork();
    if (child == 0) {
        const int null = ::open("/dev/null", O_WRONLY);
        ::dup2(null, 1);
        ::execlp("sqlite3", "sqlite3", path.c_str(), "SELECT count(*) FROM sqlite_master;", nullptr);
        ::_exit(127);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
}
}  // namespace

TEST_CASE("lock: checks, backups and a second Database never drop this process's SQLite locks",
          "[health][lock]") {
    test::temp_dir dir;
    const auto path = dir / "locks.db";
    monitored_db db{path};
    db.exec_script("CREATE TABLE t(x)");
    db.exec("INSERT INTO t VALUES(1)");  // frames in the WAL; this connection holds its SHARED lock
    const auto wal = std::filesystem::path{path.string() + "-wal"};
    REQUIRE(std::filesystem::exists(wal));
    SECTION("header check") { static_cast<void>(db.check(resilite::check_level::header)); }
    SECTION("quick check") { static_cast<void>(db.check(resilite::check_level::quick)); }
    SECTION("check_health") { static_cast<void>(resilite::check_health(path, resilite::check_level::full)); }
    SECTION("backup") { static_cast<void>(db.backup_now()); }
    SECTION("a second Database on the same file") { monitored_db second{path}; }
    another_process_opens_and_closes(path);
    // Had our locks been dropped, the other process would have deleted the WAL we commit into.
    REQUIRE(std::filesystem::exists(wal));
    db.exec("INSERT INTO t VALUES(2)");
    REQUIRE(db.query_one<std::int64_t>("SELECT count(*) FROM t") == 2);
}
