// Real SIGKILLs at random moments: every commit a writer saw acknowledged is in the database.
// No test here depends on the machine's speed: kills are triggered by acknowledgements.
#include "archive_support.hpp"

#include <resilite/testing/kill_harness.hpp>
#include <resilite/testing/trials.hpp>

#include <catch2/catch.hpp>

#include <random>
#include <set>

#include <unistd.h>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace testing_kill_harness_tests {

TEST_CASE("sigkill at random moments loses no acknowledged commit", "[fault][sigkill]") {
    test::temp_dir dir;
    const auto path = dir / "kill.db";
    using Db = resilite::Database<resilite::null_observer, test::manual_durability>;
    {
        Db setup{path};
        setup.exec_script("CREATE TABLE t(seq INTEGER PRIMARY KEY, payload TEXT NOT NULL)");
    }
    std::mt19937_64 rng{20261122};
    const int n = resilite::testing::trials(200);
    std::int64_t next = 1;
    int killed = 0;
    std::set<std::int64_t> all_acknowledged;
    for (int trial = 0; trial < n; ++trial) {
        const std::int64_t first = next;
        const auto result = resilite::testing::run_and_kill(
            [&](const auto& report) {
                Db db{path};
                for (std::int64_t seq = first;; ++seq) {
                    db.exec("INSERT INTO t VALUES(?, ?)", seq, std::string(200, 'k'));
                    report(seq);
                }
            },
            // After a random number of acknowledged commits, not after a delay: how many commits
            // a child gets through in some milliseconds depends on how loaded the machine is.
            resilite::testing::after_acknowledged{2 + rng() % 9});
        killed += result.killed ? 1 : 0;
        for (auto seq : result.acknowledged)
            all_acknowledged.insert(seq);
        // Check after every kill: all acknowledged so far are present, the file is sound.
        resilite::sqlite::connection c{path};
        std::set<std::int64_t> present;
        for (auto s : c.query_all<std::int64_t>("SELECT seq FROM t"))
            present.insert(s);
        for (auto seq : all_acknowledged)
            REQUIRE(present.count(seq) == 1);
        REQUIRE(c.query_one<std::string>("PRAGMA quick_check") == "ok");
        next = (present.empty() ? 0 : *present.rbegin()) + 1;
    }
    INFO(killed << " of " << n << " children were killed mid-write; " << all_acknowledged.size()
                << " commits acknowledged");
    CHECK(killed == n);
    CHECK(all_acknowledged.size() >= 2 * static_cast<std::size_t>(n));  // at least 2 per child
    resilite::sqlite::connection c{path};
    CHECK(c.query_one<std::string>("PRAGMA integrity_check") == "ok");
}

TEST_CASE("kill harness: a kill after N acknowledged commits sees at least N", "[fault][sigkill]") {
    for (std::size_t wanted : {std::size_t{1}, std::size_t{5}, std::size_t{50}}) {
        const auto r = resilite::testing::run_and_kill(
            [](const auto& report) {
                for (std::int64_t i = 1;; ++i)
                    report(i);
            },
            resilite::testing::after_acknowledged{wanted});
        CHECK(r.killed);
        REQUIRE(r.acknowledged.size() >= wanted);
        for (std::size_t i = 0; i < r.acknowledged.size(); ++i)
            CHECK(r.acknowledged[i] == static_cast<std::int64_t>(i + 1));
    }
    // A child that finishes before acknowledging enough is reported as not killed, not waited for.
    const auto done = resilite::testing::run_and_kill([](const auto& report) { report(7); },
                                                      resilite::testing::after_acknowledged{3});
    CHECK_FALSE(done.killed);
    CHECK(done.acknowledged == std::vector<std::int64_t>{7});
    // The wall-clock mode still works.
    const auto timed = resilite::testing::run_and_kill([](const auto& report) { report(1); },
                                                       std::chrono::microseconds{0});
    CHECK(timed.acknowledged.size() <= 1);
}

TEST_CASE(
    "archive after sigkill at random moments: every acknowledged commit is in the archive, no failed "
    "transaction is, a rebuild from it equals the database",
    "[fault][sigkill][archive]") {
    using namespace test::archive;
    test::temp_dir dir;
    const auto path = dir / "kill.db";
    const auto archive = dir / "kill.db.archive";
    { ItemsDb setup{path, items_options()}; }
    std::mt19937_64 rng{20261202};
    const int n = resilite::testing::trials(60);
    trial_outcomes seen;  // over all trials
    int killed = 0, stopped_before_commit = 0, trials_with_cancel = 0, trials_with_torn_tail = 0;
    for (int trial = 0; trial < n; ++trial) {
        // Disjoint numbers per child: a commit it made but was killed before reporting never
        // collides with the next child's.
        const std::int64_t first = 1 + std::int64_t{trial} * 10000;
        const std::size_t kill_after = 2 + rng() % 9;
        // One trial in four stops its child exactly between the archive append and the COMMIT
        // (the record written ahead, synced; the transaction not committed), the others wherever
        // the child is in its next transaction when the kill lands.
        const bool pinned = trial % 4 == 3;
        // The child reports 4k (transaction k committed), 4k+1 (it failed on purpose, rolled back)
        // or 4k+2 (its record is in the archive, its COMMIT is next: the child waits there).
        const auto result = resilite::testing::run_and_kill(
            [&](const auto& report) {
                std::size_t sent = 0;
                std::int64_t current = 0;
                auto o = items_options();
                if (pinned) {
                    o.inject_failure = [&](std::string_view op, int) {
                        if (op == "commit" && sent + 1 == kill_after) {
                            report(4 * current + 2);
                            for (;;)
                                ::pause();  // until the SIGKILL
                        }
                        return SQLITE_OK;
                    };
                }
                ItemsDb db{path, o};
                for (std::int64_t k = first;; ++k) {
                    // The pinned stop needs a transaction that reaches "commit" (db.transaction).
                    while (pinned && sent + 1 == kill_after && trial_kind_of(k) != trial_kind::rows)
                        ++k;
                    current = k;
                    const bool committed = trial_transaction(db, k, trial_kind_of(k));
                    report(4 * k + (committed ? 0 : 1));
                    ++sent;
                }
            },
            resilite::testing::after_acknowledged{kill_after});
        killed += result.killed ? 1 : 0;
        bool stopped = false;
        for (const auto v : result.acknowledged) {
            if (v % 4 == 0) seen.acknowledged.insert(v / 4);
            if (v % 4 == 1) seen.failed.insert(v / 4);
            if (v % 4 == 2) {
                seen.never_committed.insert(v / 4);
                stopped = true;
            }
        }
        const auto cancelled_before = set_aside_files(archive, ".cancelled-").size();
        const auto torn_before = set_aside_files(archive, ".torn-").size();
        { ItemsDb db{path, items_options()}; }  // the open resolves what the kill left; the close drains
        const auto cancelled = set_aside_files(archive, ".cancelled-").size() - cancelled_before;
        trials_with_cancel += cancelled > 0 ? 1 : 0;
        trials_with_torn_tail += set_aside_files(archive, ".torn-").size() > torn_before ? 1 : 0;
        INFO("trial " << trial << (pinned ? " (stopped before a COMMIT)" : "") << ": killed after "
                      << result.acknowledged.size() << " reports");
        if (pinned) {
            REQUIRE(stopped);
            REQUIRE(cancelled == 1);  // the record written ahead was set aside, not replayed
            ++stopped_before_commit;
        }
        const auto violation = archive_trial_violation(path, archive, seen);
        INFO(violation);
        REQUIRE(violation.empty());
    }
    INFO(killed << " of " << n << " children killed; " << seen.acknowledged.size()
                << " commits acknowledged, " << seen.failed.size() << " transactions failed on purpose; "
                << stopped_before_commit
                << " stopped between the append and the COMMIT; records cancelled in " << trials_with_cancel
                << " trials, torn tails set aside in " << trials_with_torn_tail);
    CHECK(killed == n);
    CHECK(seen.acknowledged.size() >= static_cast<std::size_t>(n));
    CHECK(!seen.failed.empty());
    CHECK(stopped_before_commit == n / 4);
}

}  // namespace testing_kill_harness_tests
