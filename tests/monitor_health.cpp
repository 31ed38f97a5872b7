// Health monitoring: metrics equal the true counts (P10), scheduled checks, the JSON snapshot.
#include "support.hpp"

#include <resilite/testing/corruption.hpp>
#include <resilite/testing/trials.hpp>

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <future>
#include <random>
#include <set>
#include <thread>
#include <vector>

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

TEST_CASE("health: damage met by any operation marks the database unhealthy with one corrupt event",
          "[health][corrupt]") {
    test::temp_dir dir;
    const auto path = dir / "damaged.db";
    test::event_log log;
    using Db = resilite::Database<resilite::callback_observer, test::manual_durability, resilite::no_retry>;
    Db::options o;
    o.observer = log.observer();
    Db db{path, o};
    // t's root is page 2, side's page 3, t's leaves from page 4 on.
    db.exec_script("CREATE TABLE t(id INTEGER PRIMARY KEY, pad TEXT); CREATE TABLE side(x)");
    db.transaction([](auto& tx) {
        for (int i = 0; i < 400; ++i)
            tx.exec("INSERT INTO t VALUES(?, ?)", i, std::string(300, 'x'));
    });
    static_cast<void>(db.checkpoint(resilite::checkpoint_mode::truncate));
    REQUIRE(db.health().healthy);
    resilite::testing::zero_page(path, 6);  // a leaf of t
    {  // another connection's commit makes ours drop its page cache and read the file again
        resilite::sqlite::connection other{path};
        other.exec("INSERT INTO side VALUES(1)");
    }
    int failures = 0;
    for (int i = 0; i < 3; ++i) {
        try {
            static_cast<void>(db.query<std::int64_t>("SELECT id FROM t ORDER BY pad, id"));
        } catch (const resilite::error& e) {
            ++failures;
            CHECK(e.klass() == resilite::error_class::corrupt);
        }
    }
    CHECK(failures == 3);
    const auto h = db.health();
    CHECK_FALSE(h.healthy);
    CHECK_FALSE(h.damage.empty());
    CHECK(h.to_json().find("\"healthy\":false") != std::string::npos);
    CHECK(log.count("corrupt") == 1);  // once, not per failing operation
}

TEST_CASE("health: a failed transaction counts as one failure", "[health]") {
    test::temp_dir dir;
    using Db = resilite::Database<resilite::null_observer, test::manual_durability, resilite::no_retry>;
    Db db{dir / "once.db"};
    db.exec_script("CREATE TABLE t(id INTEGER PRIMARY KEY)");
    const auto before = db.health().failures;
    try {
        db.transaction([](auto& tx) {
            tx.exec("INSERT INTO t VALUES(1)");
            tx.exec("INSERT INTO t VALUES(1)");  // constraint
        });
        FAIL("a duplicate key was accepted");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == resilite::error_class::constraint);
    }
    CHECK(db.health().failures == before + 1);
}

TEST_CASE("errors stay one line: a long integrity_check is summarised, the whole text in technical().report",
          "[health][error]") {
    resilite::technical_detail d;
    d.operation = "backup";
    d.note = "the database failed its full check\nrow 1 missing from index a\nrow 2 missing from index a";
    const resilite::error e{resilite::error_class::corrupt, d};
    CHECK(std::string{e.what()}.find('\n') == std::string::npos);
    CHECK_THAT(std::string{e.what()}, Catch::Contains("the database failed its full check (+2 more lines"));
    CHECK(e.technical().report == d.note);
}

namespace {
struct Entry {
    BOOST_HANA_DEFINE_STRUCT(Entry, (std::int64_t, id), (std::string, who));
};
using entries = resilite::table<"entries", Entry, resilite::primary_key<"id">>;
using stress_db =
    resilite::Database<resilite::schema<entries>, resilite::archive<>, resilite::null_observer,
                       test::manual_durability,
                       resilite::backup<resilite::vacuum_into, resilite::on_demand, resilite::keep_last<2>>,
                       resilite::exponential_backoff<1, 50, 100000, resilite::jitter::full, 600000>>;

// A writer process: two Database objects (one per thread) on the same file, each committing
// rows and reporting every acknowledged id through the pipe, with header and quick checks and
// backups in between. Runs until killed.
[[noreturn]] void stress_child(const std::filesystem::path& path, int slot, int out) {
    ::alarm(300);
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
        threads.emplace_back([&, t] {
            try {
                stress_db db{path};
                const std::int64_t base = (static_cast<std::int64_t>(slot) * 2 + t) * 1'000'000'000;
                for (std::int64_t i = 1;; ++i) {
                    db.insert(Entry{base + i, "w"});
                    const std::int64_t id = base + i;
                    if (::write(out, &id, sizeof id) != sizeof id) ::_exit(3);
                    if (i % 7 == 0) static_cast<void>(db.check(resilite::check_level::header));
                    if (i % 29 == 0) static_cast<void>(db.check(resilite::check_level::quick));
                    if (i % 53 == 0) static_cast<void>(db.backup_now());
                }
            } catch (const std::exception& e) {
                std::fprintf(stderr, "stress writer failed: %s\n", e.what());
                ::_exit(2);
            }
        });
    }
    for (auto& th : threads)
        th.join();
    ::_exit(0);
}
}  // namespace

TEST_CASE("lock: two Databases per process in three processes, checks, backups and kills lose nothing",
          "[health][lock][sigkill]") {
    test::temp_dir dir;
    const auto path = dir / "stress.db";
    { stress_db setup{path}; }  // closed before any fork: children inherit no open connection
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    std::mt19937_64 rng{20261130};
    std::set<std::int64_t> acknowledged;
    std::vector<pid_t> children(3, -1);
    int generation = 0;  // every writer its own id range
    const auto start_child = [&](int slot) {
        const int id_range = generation++;
        const pid_t pid = ::fork();
        if (pid == 0) {
            ::close(fds[0]);
            stress_child(path, id_range, fds[1]);
        }
        children[static_cast<std::size_t>(slot)] = pid;
    };
    for (int s = 0; s < 3; ++s)
        start_child(s);
    // Counted, not timed: each round reads a random number of acknowledgements, then kills one
    // writer and starts another in its place.
    const int rounds = resilite::testing::trials(8);
    for (int round = 0; round < rounds; ++round) {
        const auto wanted = 40 + rng() % 80;
        for (std::uint64_t n = 0; n < wanted; ++n) {
            std::int64_t id = 0;
            REQUIRE(::read(fds[0], &id, sizeof id) == static_cast<ssize_t>(sizeof id));
            acknowledged.insert(id);
        }
        const auto victim = static_cast<int>(rng() % 3);
        ::kill(children[static_cast<std::size_t>(victim)], SIGKILL);
        int status = 0;
        ::waitpid(children[static_cast<std::size_t>(victim)], &status, 0);
        REQUIRE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));  // not a writer that failed
        start_child(victim);
    }
    for (auto pid : children)
        ::kill(pid, SIGKILL);
    for (auto pid : children)
        ::waitpid(pid, nullptr, 0);
    ::close(fds[1]);
    for (std::int64_t id = 0; ::read(fds[0], &id, sizeof id) == static_cast<ssize_t>(sizeof id);)
        acknowledged.insert(id);  // what was acknowledged before the last kills
    ::close(fds[0]);

    stress_db db{path};
    REQUIRE(db.query_one<std::string>("PRAGMA integrity_check") == "ok");
    std::set<std::int64_t> present;
    for (auto id : db.query<std::int64_t>("SELECT id FROM entries"))
        present.insert(id);
    std::size_t lost = 0;
    for (auto id : acknowledged)
        lost += present.count(id) == 0 ? 1 : 0;
    INFO(acknowledged.size() << " acknowledged, " << present.size() << " present");
    CHECK(lost == 0);
    CHECK(acknowledged.size() >= static_cast<std::size_t>(rounds) * 40);
    const auto report = db.check_archive();
    for (const auto& p : report.problems) {
        INFO(p.message);
        CHECK(p.what != resilite::archive_problem::kind::gap);
        CHECK(p.what != resilite::archive_problem::kind::duplicate);
        CHECK(p.what != resilite::archive_problem::kind::conflicting_duplicate);
        CHECK_FALSE(p.fatal);
    }
    CHECK(report.reproduces_live == true);
}

TEST_CASE("continuity: health() and current_settings() answer while another thread holds a transaction",
          "[health][continuity]") {
    test::temp_dir dir;
    monitored_db db{dir / "app.db"};
    db.exec_script("CREATE TABLE t(n INTEGER)");
    db.exec("INSERT INTO t VALUES(1)");
    const auto before = db.health();  // read with the writer lock free: the figures to keep
    REQUIRE_FALSE(before.database_busy);
    std::promise<void> holding, release;
    auto released = release.get_future();
    std::thread writer([&] {
        db.transaction([&](auto& tx) {
            tx.exec("INSERT INTO t VALUES(2)");
            holding.set_value();
            released.wait();  // until the main thread has its answers
        });
    });
    holding.get_future().wait();
    // If either call waited for the writer lock, it would wait for ever: the writer waits for us.
    const auto during = db.health();
    const auto s = db.current_settings();
    release.set_value();
    writer.join();
    CHECK(during.database_busy);
    CHECK(during.page_count == before.page_count);  // the last figures read, not zeros
    CHECK(during.healthy);
    CHECK(s == db.current_settings());
    const auto after = db.health();
    CHECK_FALSE(after.database_busy);
    CHECK(db.query_one<int>("SELECT count(*) FROM t") == 2);
}
