// Real SIGKILLs at random moments: every commit a writer saw acknowledged is in the database.
// No test here depends on the machine's speed: kills are triggered by acknowledgements.
#include "support.hpp"

#include <resilite/testing/kill_harness.hpp>
#include <resilite/testing/trials.hpp>

#include <catch2/catch.hpp>

#include <random>
#include <set>

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
