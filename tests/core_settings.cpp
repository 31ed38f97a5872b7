// Run-time settings: seeded from the policies, validated, applied to the next operation.
#include "support.hpp"

#include <catch2/catch.hpp>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace core_settings_tests {

using resilite::error_class;

TEST_CASE("settings are seeded from the policies' parameters", "[settings]") {
    using Db = resilite::Database<resilite::null_observer,
                                  resilite::wal_durability<resilite::synchronous::extra, 30, 8, false>>;
    const auto s = Db::default_settings();
    CHECK(s.sync == resilite::synchronous::extra);
    CHECK(s.checkpoint_interval == std::chrono::seconds{30});
    CHECK(s.wal_alert_bytes == 8u << 20);
    test::temp_dir dir;
    Db db{dir / "s.db"};
    CHECK(db.current_settings() == s);
}

TEST_CASE("settings given at open replace the seeded ones, and invalid ones refuse to open", "[settings]") {
    test::temp_dir dir;
    test::recording_db::options o;
    o.settings = test::recording_db::default_settings();
    o.settings->sync = resilite::synchronous::extra;
    test::recording_db db{dir / "s.db", o};
    CHECK(db.query_one<int>("PRAGMA synchronous") == 3);

    o.settings->statement_cache_capacity = 0;
    try {
        test::recording_db bad{dir / "bad.db", o};
        FAIL("opened with invalid settings");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == error_class::invalid_setting);
        CHECK_THAT(e.technical().note, Catch::Contains("statement_cache_capacity"));
    }
}

TEST_CASE("valid setting changes take effect on the next operation without a reopen", "[settings]") {
    test::temp_dir dir;
    test::event_log log;
    test::recording_db db{dir / "s.db", test::recording(log)};
    auto s = db.current_settings();
    s.sync = resilite::synchronous::extra;
    s.busy_timeout = std::chrono::milliseconds{1234};
    s.statement_cache_capacity = 2;
    db.reconfigure(s);
    CHECK(db.current_settings() == s);
    CHECK(db.query_one<int>("PRAGMA synchronous") == 3);
    CHECK(db.query_one<int>("PRAGMA busy_timeout") == 1234);
    CHECK(db.with_connection([](auto& c) { return c.cache().capacity(); }) == 2);
    CHECK(log.count("reconfigure") == 1);
}

TEST_CASE("invalid setting changes are refused with a clear error and the old settings stay", "[settings]") {
    test::temp_dir dir;
    test::event_log log;
    test::recording_db db{dir / "s.db", test::recording(log)};
    const auto before = db.current_settings();

    auto normal = before;
    normal.sync = resilite::synchronous::normal;  // the policy did not opt in
    auto zero_interval = before;
    zero_interval.checkpoint_interval = std::chrono::seconds{0};
    auto negative_timeout = before;
    negative_timeout.busy_timeout = std::chrono::milliseconds{-1};
    auto zero_alert = before;
    zero_alert.wal_alert_bytes = 0;
    for (const auto& bad : {normal, zero_interval, negative_timeout, zero_alert}) {
        try {
            db.reconfigure(bad);
            FAIL("accepted invalid settings");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == error_class::invalid_setting);
            CHECK_FALSE(e.technical().note.empty());
            CHECK(e.user_message() == resilite::user_message(error_class::invalid_setting));
        }
        CHECK(db.current_settings() == before);
        CHECK(db.query_one<int>("PRAGMA synchronous") == 2);
    }
    CHECK(log.count("reconfigure") == 4);

    // With the opt-in, NORMAL is accepted.
    resilite::Database<resilite::null_observer, resilite::relaxed_durability<60, 64, false>> relaxed{dir /
                                                                                                     "r.db"};
    auto s = relaxed.current_settings();
    s.sync = resilite::synchronous::full;
    relaxed.reconfigure(s);
    CHECK(relaxed.query_one<int>("PRAGMA synchronous") == 2);
    s.sync = resilite::synchronous::normal;
    relaxed.reconfigure(s);
    CHECK(relaxed.query_one<int>("PRAGMA synchronous") == 1);
}

}  // namespace core_settings_tests
