// Retry policies: backoff bounds, connection recovery (P1), deadlines, whole-transaction
// replay, and real contention between threads and processes.
#include "support.hpp"

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include <array>
#include <atomic>
#include <csignal>
#include <fstream>
#include <future>
#include <optional>
#include <set>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace resilite {
// For RapidCheck's counterexample reports.
inline std::ostream& operator<<(std::ostream& os, const retry_settings& r) {
    return os << fmt::format("{{{} jitter={} base={}ms cap={}ms x{} attempts={} deadline={}ms}}",
                             r.kind == retry_settings::strategy::constant ? "constant" : "exponential",
                             to_string(r.jitter), r.base.count(), r.cap.count(), r.multiplier, r.max_attempts,
                             r.deadline.count());
}
}  // namespace resilite

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace policy_retry_tests {

using namespace std::chrono_literals;
using resilite::error_class;
using resilite::retry_settings;

namespace {
using manual_db =
    resilite::Database<resilite::callback_observer, resilite::manual_clock, test::manual_durability>;

rc::Gen<retry_settings> gen_retry_settings() {
    return rc::gen::apply(
        [](int kind, int jitter, int base, int cap_extra, int multiplier, int attempts) {
            retry_settings s;
            s.kind = kind == 0 ? retry_settings::strategy::constant : retry_settings::strategy::exponential;
            s.jitter = static_cast<resilite::jitter>(jitter);
            s.base = std::chrono::milliseconds{base};
            s.cap = std::chrono::milliseconds{base + cap_extra};
            s.multiplier = static_cast<unsigned>(multiplier);
            s.max_attempts = attempts;
            s.deadline = std::chrono::milliseconds{10'000'000};  // P1 is about attempts, not time
            return s;
        },
        rc::gen::inRange(0, 4), rc::gen::inRange(0, 4), rc::gen::inRange(0, 50), rc::gen::inRange(0, 2000),
        rc::gen::inRange(1, 5), rc::gen::inRange(1, 12));
}

// A forked child that runs `body` and exits with its result; never returns in the child.
template <class F>
pid_t spawn(F&& body) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        int code = 1;
        try {
            code = body();
        } catch (...) {
            code = 3;
        }
        ::_exit(code);
    }
    REQUIRE(pid > 0);
    return pid;
}

int wait_exit(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
}  // namespace

TEST_CASE("retry policies seed the settings, the default policy is the default settings", "[retry]") {
    STATIC_REQUIRE(resilite::exponential_backoff<>::defaults == retry_settings{});
    REQUIRE(resilite::Database<>::default_settings().retry == retry_settings{});
    using Custom = resilite::Database<resilite::constant_backoff<25, 7, 900>>;
    REQUIRE(Custom::default_settings().retry.kind == retry_settings::strategy::constant);
    REQUIRE(Custom::default_settings().retry.base == 25ms);
    REQUIRE(Custom::default_settings().retry.max_attempts == 7);
    REQUIRE(Custom::default_settings().retry.deadline == 900ms);
    REQUIRE(resilite::Database<resilite::no_retry>::default_settings().retry.max_attempts == 1);
}

TEST_CASE("backoff delays follow the policy", "[retry][backoff]") {
    retry_settings s;
    s.jitter = resilite::jitter::none;
    s.base = 2ms;
    s.cap = 20ms;
    std::vector<std::chrono::nanoseconds> seen;
    for (int n = 1; n <= 6; ++n)
        seen.push_back(resilite::detail::backoff_bounds(s, n, {}).high);
    CHECK(seen == std::vector<std::chrono::nanoseconds>{2ms, 4ms, 8ms, 16ms, 20ms, 20ms});
    s.multiplier = 3;
    CHECK(resilite::detail::backoff_bounds(s, 3, {}).high == 18ms);
    s.jitter = resilite::jitter::full;
    CHECK(resilite::detail::backoff_bounds(s, 2, {}).low == 0ms);
    s.jitter = resilite::jitter::equal;
    CHECK(resilite::detail::backoff_bounds(s, 2, {}).low == 3ms);
    s.jitter = resilite::jitter::decorrelated;
    CHECK(resilite::detail::backoff_bounds(s, 2, 5ms).high == 15ms);
    CHECK(resilite::detail::backoff_bounds(s, 2, 50ms).high == 20ms);
    s.kind = retry_settings::strategy::constant;
    CHECK(resilite::detail::backoff_bounds(s, 7, {}).low == 2ms);
    CHECK(resilite::detail::backoff_bounds(s, 7, {}).high == 2ms);
    // Huge exponents saturate at the cap instead of overflowing.
    s.kind = retry_settings::strategy::exponential;
    s.jitter = resilite::jitter::none;
    s.multiplier = 1000;
    CHECK(resilite::detail::backoff_bounds(s, 60, {}).high == 20ms);
}

TEST_CASE("P1 connection recovery", "[retry][property][P1]") {
    test::temp_dir dir;
    rc::prop("k transient failures: k+1 attempts below the limit, retry_exhausted at it", [&] {
        const auto limits = *gen_retry_settings();
        const int k = *rc::gen::inRange(0, limits.max_attempts + 3);
        const int code = *rc::gen::element(SQLITE_BUSY, SQLITE_LOCKED, SQLITE_BUSY_SNAPSHOT,
                                           SQLITE_IOERR_READ, SQLITE_CANTOPEN, SQLITE_PROTOCOL);
        const int which = *rc::gen::inRange(0, 4);  // exec, transaction, query, open
        const std::string op = std::array{"exec", "begin", "query", "open"}[static_cast<std::size_t>(which)];
        bool armed = false;  // failures are injected into the operation under test only

        test::event_log log;
        resilite::manual_clock clock;
        manual_db::options o;
        o.observer = log.observer();
        o.clock = clock;
        o.inject_failure = [&](std::string_view operation, int attempt) {
            return armed && operation == op && attempt <= k ? code : SQLITE_OK;
        };
        o.settings = manual_db::default_settings();
        o.settings->retry = limits;
        static int case_number = 0;
        const auto path = dir / fmt::format("p1-{}.db", ++case_number);
        manual_db db{path, o};
        db.exec_script("CREATE TABLE t(x)");
        log.clear();
        std::optional<manual_db> reopened;

        int bodies = 0;
        const auto run = [&] {
            switch (which) {
                case 0:
                    db.exec("INSERT INTO t VALUES(1)");
                    break;
                case 1:
                    db.transaction([&](auto& tx) {
                        ++bodies;
                        tx.exec("INSERT INTO t VALUES(1)");
                    });
                    break;
                case 2:
                    static_cast<void>(db.query<int>("SELECT x FROM t"));
                    break;
                default:
                    reopened.emplace(path, o);
                    break;
            }
        };
        const auto sleeps_before = clock.sleeps().size();
        armed = true;
        const bool expect_success = k < limits.max_attempts;
        try {
            run();
            RC_ASSERT(expect_success);
        } catch (const resilite::error& e) {
            RC_ASSERT(!expect_success);
            RC_ASSERT(e.klass() == error_class::retry_exhausted);
            RC_ASSERT(e.technical().attempt == limits.max_attempts);
            const auto cause = e.cause();
            RC_ASSERT(cause.has_value());
            RC_ASSERT(cause->technical().extended_code == code);
            RC_ASSERT(e.code().value() == code);
        }
        const int attempts = expect_success ? k + 1 : limits.max_attempts;
        const auto sleeps = clock.sleeps();
        RC_ASSERT(sleeps.size() - sleeps_before == static_cast<std::size_t>(attempts - 1));
        // Every delay within the policy's bounds.
        std::chrono::nanoseconds previous = limits.base;
        for (std::size_t i = sleeps_before; i < sleeps.size(); ++i) {
            const int retry = static_cast<int>(i - sleeps_before) + 1;
            const auto b = resilite::detail::backoff_bounds(limits, retry, previous);
            RC_ASSERT(sleeps[i] >= b.low);
            RC_ASSERT(sleeps[i] <= b.high);
            previous = sleeps[i];
        }
        // Every attempt is visible: one retry event per retried attempt, then the operation's.
        // (Statements run inside the transaction's body have events of their own: left out.)
        const std::string op_event =
            std::array{"exec", "transaction", "query", "open"}[static_cast<std::size_t>(which)];
        std::vector<test::recorded_event> events;
        for (const auto& e : log.events()) {
            if (e.name == "retry" || e.name == op_event) events.push_back(e);
        }
        RC_ASSERT(events.size() == static_cast<std::size_t>(attempts));
        for (int i = 0; i + 1 < attempts; ++i) {
            RC_ASSERT(events[static_cast<std::size_t>(i)].name == "retry");
            RC_ASSERT(events[static_cast<std::size_t>(i)].attempts == i + 1);
        }
        RC_ASSERT(events.back().attempts == attempts);
        RC_ASSERT(events.back().result ==
                  (expect_success ? resilite::outcome::ok : resilite::outcome::failed));
        if (which != 3) RC_ASSERT(db.retries() == static_cast<std::uint64_t>(attempts - 1));
        if (which == 3 && expect_success) {
            RC_ASSERT(reopened->retries() == static_cast<std::uint64_t>(attempts - 1));
            RC_ASSERT(reopened->query_one<std::string>("PRAGMA journal_mode") == "wal");
        }
        // The write happened exactly once, or not at all.
        if (which == 0 || which == 1) {
            RC_ASSERT(db.query_one<int>("SELECT count(*) FROM t") == (expect_success ? 1 : 0));
        }
        if (which == 1) RC_ASSERT(bodies == (expect_success ? 1 : 0));  // failures came at BEGIN
    });
}

TEST_CASE("non-retryable failures are never retried", "[retry]") {
    test::temp_dir dir;
    test::event_log log;
    resilite::manual_clock clock;
    for (const int code :
         {SQLITE_CONSTRAINT_UNIQUE, SQLITE_CORRUPT, SQLITE_MISUSE, SQLITE_NOTADB, SQLITE_FULL}) {
        manual_db::options o;
        o.observer = log.observer();
        o.clock = clock;
        o.inject_failure = [code](std::string_view operation, int) {
            return operation == "exec" ? code : SQLITE_OK;
        };
        manual_db db{dir / fmt::format("n{}.db", code), o};
        try {
            db.exec("SELECT 1");
            FAIL("no error");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == resilite::classify(code));
            CHECK(e.technical().attempt == 1);
        }
        CHECK(clock.sleeps().empty());
        CHECK(db.retries() == 0);
    }
}

TEST_CASE("the deadline bounds all attempts and delays together (manual clock)", "[retry][deadline]") {
    test::temp_dir dir;
    resilite::manual_clock clock;
    manual_db::options o;
    o.clock = clock;
    o.inject_failure = [](std::string_view operation, int) {
        return operation == "exec" ? SQLITE_BUSY : SQLITE_OK;
    };
    manual_db db{dir / "d.db", o};
    auto s = db.current_settings();
    s.retry.max_attempts = 1'000'000;
    s.retry.base = 10ms;
    s.retry.cap = 70ms;
    s.retry.deadline = 1000ms;
    db.reconfigure(s);
    const auto start = clock.now();
    try {
        db.exec("SELECT 1");
        FAIL("no error");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == error_class::retry_exhausted);
        CHECK(e.technical().elapsed == 1000ms);
        CHECK_THAT(e.technical().note, Catch::Contains("gave up after"));
    }
    CHECK(clock.now() - start == 1000ms);  // the last delay is cut to the deadline exactly
}

TEST_CASE("deadline: a writer blocked by another process gets retry_exhausted on time", "[retry][deadline]") {
    test::temp_dir dir;
    const auto path = dir / "deadline.db";
    {
        resilite::Database<resilite::null_observer, test::manual_durability> setup{path};
        setup.exec_script("CREATE TABLE t(who TEXT)");
    }
    int ready[2];
    int release[2];
    REQUIRE(::pipe(ready) == 0);
    REQUIRE(::pipe(release) == 0);
    const pid_t holder = spawn([&] {
        resilite::sqlite::connection c{path};
        c.exec("BEGIN IMMEDIATE");
        c.exec("INSERT INTO t VALUES('holder')");
        char byte = 'r';
        if (::write(ready[1], &byte, 1) != 1) return 2;
        // Hold the write lock until the parent says so (or 30 s pass).
        ::alarm(30);
        if (::read(release[0], &byte, 1) != 1) return 2;
        c.exec("ROLLBACK");
        return 0;
    });
    char byte = 0;
    REQUIRE(::read(ready[0], &byte, 1) == 1);

    using Db = resilite::Database<resilite::null_observer, test::manual_durability,
                                  resilite::exponential_backoff<2, 200, 1000, resilite::jitter::full, 1500>>;
    Db db{path};
    const auto start = std::chrono::steady_clock::now();
    try {
        db.exec("INSERT INTO t VALUES('blocked')");
        FAIL("wrote through another process's write lock");
    } catch (const resilite::error& e) {
        const auto took = std::chrono::steady_clock::now() - start;
        CHECK(e.klass() == error_class::retry_exhausted);
        CHECK(e.cause()->klass() == error_class::busy);
        CHECK(took >= 1350ms);
        // (An idle machine: 1.35-1.65 s. The bound is loose so that a loaded one, which can
        // deschedule the process past it, does not fail the test; the lower bound is the check.)
        CHECK(took <= 4000ms);
        INFO("gave up after " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                              << " ms, " << e.technical().attempt << " attempts");
        CHECK(e.technical().attempt > 1);
    }
    REQUIRE(::write(release[1], "x", 1) == 1);
    CHECK(wait_exit(holder) == 0);
    CHECK(db.query_one<int>("SELECT count(*) FROM t") == 0);  // nothing written, by either
}

// Another thread's transaction holds the writer lock: a call waits for it within its retry
// deadline, as it waits out another process's lock, and then gives up (was: it waited as long as
// the transaction lasted, whatever the deadline). The manual clock moves while the call waits;
// the test counts clock steps, never wall time.
TEST_CASE("deadline: a call waiting behind another thread's transaction gives up on time",
          "[retry][deadline][threads]") {
    test::temp_dir dir;
    resilite::manual_clock clock;
    manual_db::options o;
    o.clock = clock;
    manual_db db{dir / "held.db", o};
    db.exec_script("CREATE TABLE t(who TEXT)");
    auto s = db.current_settings();
    s.retry.deadline = 300ms;
    db.reconfigure(s);

    std::promise<void> holding, release;
    auto released = release.get_future();
    std::thread holder([&] {
        auto tx = db.begin();
        tx.exec("INSERT INTO t VALUES('holder')");
        holding.set_value();
        released.wait();
        tx.commit();
    });
    holding.get_future().wait();
    // Accepted while the holder has the lock: pending until a holder applies them, which must not
    // make the calls below wait for the lock before their deadline applies (they did).
    auto pending = db.current_settings();
    pending.busy_timeout = 40ms;
    db.reconfigure(pending);

    // Each call in turn, on its own thread, while the clock moves 25 ms per step.
    auto outcome_of = [&](auto call) {
        auto done = std::async(std::launch::async, [&]() -> std::string {
            try {
                call();
                return "returned";
            } catch (const resilite::error& e) {
                if (e.klass() != error_class::retry_exhausted || !e.cause()) return e.what();
                return std::string{to_string(e.cause()->klass())} + ": " + e.cause()->what();
            }
        });
        const auto before = clock.now();
        int steps = 0;
        while (done.wait_for(1ms) != std::future_status::ready && steps < 4000) {
            clock.advance(25ms);
            ++steps;
        }
        if (steps == 4000) {  // (never given up: release the holder so that the test ends)
            release.set_value();
            holder.join();
            FAIL("still waiting after 4000 steps of 25 ms (deadline 300 ms): " << done.get());
        }
        auto what = done.get();
        // Given up at the deadline (300 ms of the manual clock, plus the steps this loop took
        // meanwhile), not at the default one (10 s, retrying meanwhile). The margin is wide: a
        // loaded machine lets this loop take many steps before the waiting thread runs.
        const auto waited = clock.now() - before;
        INFO(what << " after " << std::chrono::duration_cast<std::chrono::milliseconds>(waited).count() << " ms");
        CHECK(waited < 3s);
        return what;
    };
    const auto write = outcome_of([&] { db.exec("INSERT INTO t VALUES('writer')"); });
    CHECK_THAT(write, Catch::StartsWith("busy: ") && Catch::Contains("another thread of this process"));
    const auto read = outcome_of([&] { static_cast<void>(db.query_one<int>("SELECT count(*) FROM t")); });
    CHECK_THAT(read, Catch::StartsWith("busy: "));
    const auto tx = outcome_of([&] { db.transaction([](auto& t) { t.exec("INSERT INTO t VALUES('tx')"); }); });
    CHECK_THAT(tx, Catch::StartsWith("busy: "));
    resilite::audit_result audited;
    CHECK(outcome_of([&] { audited = db.audit("a", "b", "c"); }) == "returned");
    CHECK_FALSE(audited.in_database);  // in the fallback file, as when another process holds the lock
    CHECK(audited.fallback_seq == 1);
    CHECK(db.retries() == 0);  // each gave up at once when the deadline had passed, without retrying

    release.set_value();
    holder.join();
    CHECK(db.query<std::string>("SELECT who FROM t") == std::vector<std::string>{"holder"});
}

TEST_CASE("a stale snapshot (BUSY_SNAPSHOT) restarts the whole transaction, which then succeeds",
          "[retry][snapshot]") {
    test::temp_dir dir;
    const auto path = dir / "snapshot.db";
    test::event_log log;
    test::recording_db db{path, test::recording(log)};
    db.exec_script("CREATE TABLE t(x INTEGER)");
    db.exec("INSERT INTO t VALUES(1)");
    resilite::sqlite::connection other{path};

    std::vector<int> counts_seen;
    std::vector<int> attempts_seen;
    db.transaction(
        [&](auto& tx) {
            attempts_seen.push_back(tx.attempt());
            counts_seen.push_back(*tx.template query_one<int>("SELECT count(*) FROM t"));  // snapshot taken
            if (tx.attempt() == 1) other.exec("INSERT INTO t VALUES(2)");  // another writer commits
            tx.exec("INSERT INTO t VALUES(?)", 100 + tx.attempt());        // upgrade: stale on attempt 1
        },
        resilite::transaction_mode::deferred);
    const auto events = log.events();
    CHECK(attempts_seen == std::vector<int>{1, 2});
    CHECK(counts_seen == std::vector<int>{1, 2});  // the replay saw the other writer's row
    CHECK(db.query<int>("SELECT x FROM t ORDER BY x") == std::vector<int>{1, 2, 102});
    bool saw_snapshot_retry = false;
    for (const auto& e : events) {
        if (e.name == "retry" && e.detail.find("SQLITE_BUSY_SNAPSHOT") != std::string::npos)
            saw_snapshot_retry = true;
    }
    CHECK(saw_snapshot_retry);
    const auto last = events.back();
    CHECK(last.name == "transaction");
    CHECK(last.attempts == 2);
    CHECK(last.rows == 1);
}

TEST_CASE("a busy COMMIT is retried without replaying the transaction", "[retry]") {
    test::temp_dir dir;
    resilite::manual_clock clock;
    manual_db::options o;
    o.clock = clock;
    o.inject_failure = [](std::string_view operation, int attempt) {
        return operation == "commit" && attempt <= 2 ? SQLITE_BUSY : SQLITE_OK;
    };
    manual_db db{dir / "c.db", o};
    db.exec_script("CREATE TABLE t(x)");
    int bodies = 0;
    db.transaction([&](auto& tx) {
        ++bodies;
        tx.exec("INSERT INTO t VALUES(1)");
    });
    CHECK(bodies == 1);
    CHECK(clock.sleeps().size() == 2);
    CHECK(db.query_one<int>("SELECT count(*) FROM t") == 1);
}

TEST_CASE("an unusable connection is closed and reopened before the next attempt", "[retry]") {
    test::temp_dir dir;
    resilite::manual_clock clock;
    manual_db::options o;
    o.clock = clock;
    o.inject_failure = [](std::string_view operation, int attempt) {
        return operation == "exec" && attempt == 1 ? SQLITE_IOERR_READ : SQLITE_OK;
    };
    manual_db db{dir / "r.db", o};
    db.exec_script("CREATE TABLE t(x); CREATE TEMP TABLE marker(x);");  // TEMP: this connection only
    const auto marked = [&] {
        return db.query_one<int>("SELECT count(*) FROM temp.sqlite_master WHERE name = 'marker'");
    };
    CHECK(marked() == 1);
    db.exec("INSERT INTO t VALUES(1)");
    CHECK(marked() == 0);  // a new connection
    CHECK(db.query_one<int>("SELECT count(*) FROM t") == 1);
    CHECK(db.query_one<std::string>("PRAGMA journal_mode") == "wal");  // durability re-applied
}

TEST_CASE("invalid retry settings are refused", "[retry][settings]") {
    test::temp_dir dir;
    manual_db db{dir / "s.db"};
    for (auto change : std::vector<void (*)(retry_settings&)>{
             [](retry_settings& r) { r.max_attempts = 0; }, [](retry_settings& r) { r.cap = r.base - 1ms; },
             [](retry_settings& r) { r.multiplier = 0; }, [](retry_settings& r) { r.deadline = 0ms; },
             // "for ever" as the largest number: counted in nanoseconds, it overflowed (undefined)
             [](retry_settings& r) { r.deadline = std::chrono::milliseconds::max(); },
             [](retry_settings& r) { r.cap = std::chrono::hours{24 * 366}; }}) {
        auto s = db.current_settings();
        change(s.retry);
        CHECK_THROWS_AS(db.reconfigure(s), resilite::error);
    }
    CHECK(db.current_settings() == manual_db::default_settings());
}

namespace {
// 4 threads sharing one Database and 2 child processes with a Database each write numbered rows
// to one file at once. Returns the retries all of them made; fails the test if any error
// reached a writer or an acknowledged write is missing.
std::uint64_t run_contention(std::chrono::milliseconds busy_timeout) {
    test::temp_dir dir;
    const auto path = dir / "contention.db";
    using Db = resilite::Database<resilite::null_observer, test::manual_durability>;  // default retry policy
    Db::options options;
    options.settings = Db::default_settings();
    options.settings->busy_timeout = busy_timeout;
    {
        Db setup{path, options};
        setup.exec_script("CREATE TABLE w(writer INTEGER, seq INTEGER, PRIMARY KEY(writer, seq))");
    }
    constexpr int per_writer = 150;
    constexpr std::int32_t end_of_acks = -1;

    // The children report each acknowledged commit through a pipe (4 bytes each), then
    // end_of_acks and their retry count; they exit non-zero if any error reached them.
    std::vector<std::pair<pid_t, int>> children;
    int go[2];
    REQUIRE(::pipe(go) == 0);
    for (int child = 0; child < 2; ++child) {
        int acks[2];
        REQUIRE(::pipe(acks) == 0);
        const int writer = 100 + child;
        const pid_t pid = spawn([&, writer] {
            ::close(acks[0]);
            char byte = 0;
            if (::read(go[0], &byte, 1) != 1) return 2;
            Db db{path, options};
            for (std::int32_t seq = 0; seq < per_writer; ++seq) {
                try {
                    db.transaction([&](auto& tx) { tx.exec("INSERT INTO w VALUES(?, ?)", writer, seq); });
                } catch (const std::exception& e) {
                    std::fprintf(stderr, "child %d: %s\n", writer, e.what());
                    return 4;
                }
                if (::write(acks[1], &seq, sizeof seq) != sizeof seq) return 2;
            }
            const auto retries = static_cast<std::int32_t>(db.retries());
            if (::write(acks[1], &end_of_acks, sizeof end_of_acks) != sizeof end_of_acks) return 2;
            if (::write(acks[1], &retries, sizeof retries) != sizeof retries) return 2;
            return 0;
        });
        ::close(acks[1]);
        children.emplace_back(pid, acks[0]);
    }

    Db db{path, options};
    std::atomic<int> surfaced{0};
    std::vector<std::set<int>> acknowledged(4);
    std::vector<std::thread> threads;
    REQUIRE(::write(go[1], "gg", 2) == 2);  // start everyone at once
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int seq = 0; seq < per_writer; ++seq) {
                try {
                    if (seq % 3 == 0) {
                        db.exec("INSERT INTO w VALUES(?, ?)", t, seq);
                    } else {
                        db.transaction([&](auto& tx) { tx.exec("INSERT INTO w VALUES(?, ?)", t, seq); });
                    }
                    acknowledged[static_cast<std::size_t>(t)].insert(seq);
                } catch (const resilite::error& e) {
                    ++surfaced;
                    UNSCOPED_INFO("thread " << t << ": " << e.what());
                }
            }
        });
    }
    for (auto& th : threads)
        th.join();

    std::uint64_t retries = db.retries();
    std::vector<std::set<int>> child_acks(2);
    for (std::size_t c = 0; c < children.size(); ++c) {
        std::int32_t seq = 0;
        while (::read(children[c].second, &seq, sizeof seq) == sizeof seq) {
            if (seq == end_of_acks) {
                std::int32_t n = 0;
                if (::read(children[c].second, &n, sizeof n) == sizeof n)
                    retries += static_cast<std::uint64_t>(n);
                break;
            }
            child_acks[c].insert(seq);
        }
        ::close(children[c].second);
        CHECK(wait_exit(children[c].first) == 0);
    }
    CHECK(surfaced == 0);
    for (int t = 0; t < 4; ++t)
        CHECK(acknowledged[static_cast<std::size_t>(t)].size() == per_writer);
    for (auto& a : child_acks)
        CHECK(a.size() == per_writer);
    // Every acknowledged write is present.
    std::set<std::pair<int, int>> present;
    for (const auto& [w, s] : db.query<int, int>("SELECT writer, seq FROM w"))
        present.emplace(w, s);
    for (int t = 0; t < 4; ++t) {
        for (int seq : acknowledged[static_cast<std::size_t>(t)])
            CHECK(present.count({t, seq}) == 1);
    }
    for (int c = 0; c < 2; ++c) {
        for (int seq : child_acks[static_cast<std::size_t>(c)])
            CHECK(present.count({100 + c, seq}) == 1);
    }
    CHECK(present.size() == 6u * per_writer);
    CHECK(db.query_one<std::string>("PRAGMA integrity_check") == "ok");
    return retries;
}
}  // namespace

TEST_CASE("contention: 4 threads and 2 processes write at once, no busy error surfaces, nothing is lost",
          "[retry][contention]") {
    run_contention(resilite::settings{}.busy_timeout);
}

TEST_CASE("contention with the library's backoff alone: the writers really collided and all recovered",
          "[retry][contention]") {
    // With SQLite's busy wait off, every collision becomes a library retry: counting them shows
    // the test produces contention at all.
    const auto retries = run_contention(std::chrono::milliseconds{0});
    INFO("retries: " << retries);
    CHECK(retries > 0);
}

TEST_CASE("reconnect never creates a database: files removed while open, then one I/O error",
          "[retry][reconnect][identity]") {
    test::temp_dir dir;
    const auto path = dir / "gone.db";
    resilite::manual_clock clock;
    bool armed = false;
    manual_db::options o;
    o.clock = clock;
    o.inject_failure = [&](std::string_view operation, int attempt) {
        return armed && operation == "exec" && attempt == 1 ? SQLITE_IOERR_READ : SQLITE_OK;
    };
    manual_db db{path, o};
    db.exec_script("CREATE TABLE t(x)");
    db.exec("INSERT INTO t VALUES(1)");
    for (const char* suffix : {"", "-wal", "-shm"})
        std::filesystem::remove(path.string() + suffix);
    armed = true;
    try {
        db.exec("INSERT INTO t VALUES(2)");
        FAIL("wrote after its database file was removed");
    } catch (const resilite::error& e) {
        INFO(e.what());
        CHECK(e.klass() == error_class::corrupt);
        CHECK(std::string{e.what()}.find("missing") != std::string::npos);
    }
    CHECK_FALSE(std::filesystem::exists(path));  // no new, empty database in its place
}

TEST_CASE("reconnect to a database replaced while open is refused (identity)", "[retry][reconnect][identity]") {
    test::temp_dir dir;
    const auto path = dir / "mine.db";
    const auto other = dir / "other.db";
    { manual_db o{other}; o.exec_script("CREATE TABLE t(x); INSERT INTO t VALUES('foreign')"); }
    resilite::manual_clock clock;
    bool armed = false;
    manual_db::options o;
    o.clock = clock;
    o.inject_failure = [&](std::string_view operation, int attempt) {
        return armed && operation == "exec" && attempt == 1 ? SQLITE_IOERR_READ : SQLITE_OK;
    };
    manual_db db{path, o};
    db.exec_script("CREATE TABLE t(x)");
    db.exec("INSERT INTO t VALUES('mine')");
    std::filesystem::rename(other, path);  // another database takes the path
    for (const char* suffix : {"-wal", "-shm"})
        std::filesystem::remove(path.string() + suffix);
    armed = true;
    try {
        db.exec("INSERT INTO t VALUES('lost?')");
        FAIL("wrote into another database");
    } catch (const resilite::error& e) {
        INFO(e.what());
        CHECK(e.klass() == error_class::corrupt);
        CHECK(std::string{e.what()}.find("different database") != std::string::npos);
    }
    resilite::sqlite::connection check{path};
    CHECK(check.query_all<std::string>("SELECT x FROM t") == std::vector<std::string>{"foreign"});
}

TEST_CASE("busy open: schema sync waits out another process's write lock", "[retry][busy open]") {
    struct Row {
        BOOST_HANA_DEFINE_STRUCT(Row, (std::int64_t, id));
    };
    using Db = resilite::Database<resilite::schema<resilite::table<"rows", Row, resilite::primary_key<"id">>>,
                                  resilite::callback_observer, test::manual_durability,
                                  resilite::exponential_backoff<1, 20, 100000, resilite::jitter::full, 600000>>;
    test::temp_dir dir;
    const auto path = dir / "busy.db";
    {
        resilite::sqlite::connection c{path};
        c.exec_script("PRAGMA journal_mode=WAL; CREATE TABLE other(x);");
    }
    int ready[2];
    int release[2];
    REQUIRE(::pipe(ready) == 0);
    REQUIRE(::pipe(release) == 0);
    const pid_t holder = spawn([&] {
        resilite::sqlite::connection c{path};
        c.exec("BEGIN IMMEDIATE");
        c.exec("INSERT INTO other VALUES(1)");
        char byte = 'r';
        if (::write(ready[1], &byte, 1) != 1) return 2;
        ::alarm(60);
        if (::read(release[0], &byte, 1) != 1) return 2;
        c.exec("COMMIT");
        return 0;
    });
    char byte = 0;
    REQUIRE(::read(ready[0], &byte, 1) == 1);
    test::event_log log;
    Db::options o;
    o.observer = log.observer();
    o.settings = Db::default_settings();
    o.settings->busy_timeout = 10ms;
    std::optional<std::string> failure;
    std::thread opener([&] {
        try {
            Db db{path, o};
            db.insert(Row{1});
        } catch (const std::exception& e) {
            failure = e.what();
        }
    });
    // Release the lock only once the opener has met it and retried: counted, not timed.
    REQUIRE(log.wait_for_any({"retry", "open"}, 1, std::chrono::seconds{300}));
    REQUIRE(::write(release[1], "x", 1) == 1);
    opener.join();
    CHECK(wait_exit(holder) == 0);
    INFO(failure.value_or(""));
    CHECK_FALSE(failure);
    CHECK(log.count("retry") > 0);
}

TEST_CASE("busy open: a missing directory is a clear error at once, not retries", "[retry][busy open]") {
    test::temp_dir dir;
    resilite::manual_clock clock;
    const auto t0 = clock.now();
    manual_db::options o;
    o.clock = clock;
    try {
        manual_db db{dir / "no" / "such" / "dir.db", o};
        FAIL("opened in a directory that does not exist");
    } catch (const resilite::error& e) {
        INFO(e.what());
        CHECK(e.klass() == error_class::cant_open);
        CHECK(e.technical().attempt == 1);
        CHECK(std::string{e.what()}.find("does not exist") != std::string::npos);
    }
    CHECK(clock.now() == t0);  // no backoff delay was slept
}

TEST_CASE("busy open: a full disk at open is a clear `full` error at once, not retries", "[retry][busy open]") {
    test::temp_dir dir;
    const test::small_volume volume{dir.path(), "256k"};
    if (!volume.mounted()) {
        WARN("cannot mount a small tmpfs here (needs root): the full-disk case is not exercised");
        return;
    }
    const auto& mnt = volume.path();
    const auto path = mnt / "full.db";
    {
        manual_db setup{path};
        setup.exec_script("CREATE TABLE t(x)");
    }
    {  // fill the volume
        std::ofstream fill(mnt / "fill", std::ios::binary);
        const std::string block(4096, 'f');
        while (fill.write(block.data(), static_cast<std::streamsize>(block.size())))
            ;
    }
    resilite::manual_clock clock;
    manual_db::options o;
    o.clock = clock;
    try {
        manual_db db{path, o};
        db.exec("INSERT INTO t VALUES(randomblob(100000))");
        FAIL("wrote onto a full disk");
    } catch (const resilite::error& e) {
        INFO(e.what());
        CHECK(e.klass() == error_class::full);
        CHECK(e.technical().attempt == 1);
    }
}

TEST_CASE("busy open: a read-only volume at open is a clear `read_only` error at once, not retries",
          "[retry][busy open]") {
    test::temp_dir dir;
    const test::small_volume volume{dir.path(), "1m"};
    if (!volume.mounted()) {
        WARN("cannot mount a small tmpfs here (needs root): the read-only volume is not exercised");
        return;
    }
    const auto path = volume.path() / "ro.db";
    {
        manual_db setup{path};
        setup.exec_script("CREATE TABLE t(x); INSERT INTO t VALUES(1)");
    }
    REQUIRE(volume.remount_read_only());
    resilite::manual_clock clock;
    const auto t0 = clock.now();
    manual_db::options o;
    o.clock = clock;
    try {
        manual_db db{path, o};
        FAIL("opened a database on a read-only volume for writing");
    } catch (const resilite::error& e) {
        INFO(e.what());
        CHECK(e.klass() == error_class::read_only);
        CHECK(e.technical().attempt == 1);
        CHECK(std::string{e.what()}.find("mounted read-only") != std::string::npos);
    }
    CHECK(clock.now() == t0);  // no backoff delay was slept
}

}  // namespace policy_retry_tests
