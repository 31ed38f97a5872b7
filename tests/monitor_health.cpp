// Health monitoring: metrics equal the true counts (P10), scheduled checks, the JSON snapshot.
#include "support.hpp"

#include <resilite/testing/corruption.hpp>
#include <resilite/testing/trials.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <rapidcheck/catch.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <future>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace monitor_health_tests {

using namespace std::chrono_literals;
using resilite::error_class;

namespace {
using monitored_db = resilite::Database<resilite::null_observer, resilite::manual_clock,
                                        test::manual_durability, resilite::exponential_backoff<1, 4, 4>>;
}  // namespace

namespace {
struct Sample {
    BOOST_HANA_DEFINE_STRUCT(Sample, (std::int64_t, id), (std::string, who));
};
using samples = resilite::table<"samples", Sample, resilite::primary_key<"id">>;
using p10_db =
    resilite::Database<resilite::schema<samples>, resilite::archive<>,
                       resilite::backup<resilite::vacuum_into, resilite::on_demand, resilite::keep_last<2>>,
                       resilite::callback_observer, resilite::manual_clock, test::manual_durability,
                       resilite::exponential_backoff<1, 4, 4>>;

// Each operation of the P10 sequence; the injected ones fail through inject_failure, the others
// fail for real.
enum class p10_op {
    exec_ok,
    exec_constraint,    // injected SQLITE_CONSTRAINT_UNIQUE
    exec_busy_then_ok,  // k busy attempts, then ok
    exec_exhausted,     // busy on every attempt: retry_exhausted
    exec_syntax,        // class sql
    exec_script,
    query,
    query_mismatch,  // TEXT read as an integer: class mismatch
    typed_rows,      // insert, get, select, upsert, erase: five operations
    tx_commit,
    tx_constraint,  // a duplicate key inside: the transaction fails once, class constraint
    tx_savepoint,
    checkpoint,
    check,
    backup,
    reconfigure_ok,
    reconfigure_invalid,  // class invalid_setting
    drain_archive,
    count
};

// How many of `xs` are <= (or >=) v.
std::size_t count_at_most(const std::vector<std::int64_t>& xs, std::int64_t v) {
    return static_cast<std::size_t>(std::count_if(xs.begin(), xs.end(), [&](auto x) { return x <= v; }));
}
std::size_t count_at_least(const std::vector<std::int64_t>& xs, std::int64_t v) {
    return static_cast<std::size_t>(std::count_if(xs.begin(), xs.end(), [&](auto x) { return x >= v; }));
}
}  // namespace

TEST_CASE("P10 health monitoring data collection", "[health][property][P10]") {
    test::temp_dir dir;
    int case_number = 0;
    rc::prop("for any sequence of operations with injected outcomes the metrics equal the true counts", [&] {
        // Up to 50 operations: every commit syncs (WAL and archive), and the time is in fsync.
        const auto plan = *rc::gen::scale(
            0.5, rc::gen::container<std::vector<int>>(rc::gen::inRange(0, static_cast<int>(p10_op::count))));
        std::vector<int> busy_count;
        std::vector<std::chrono::microseconds> step;  // the time each attempt of operation i takes
        for (std::size_t i = 0; i < plan.size(); ++i) {
            busy_count.push_back(*rc::gen::inRange(1, 4));
            step.push_back(std::chrono::microseconds{*rc::gen::inRange(1, 100000)});
        }
        std::size_t current = 0;
        bool armed = false;
        resilite::manual_clock clock;
        test::event_log log;
        p10_db::options o;
        o.clock = clock;
        o.observer = log.observer();
        // Every attempt of every statement, transaction or typed row takes step[current] on the
        // manual clock: the latencies are known, and not all alike.
        o.inject_failure = [&](std::string_view operation, int attempt) {
            if (!armed) return SQLITE_OK;
            clock.advance(step[current]);
            if (operation != "exec") return SQLITE_OK;
            switch (static_cast<p10_op>(plan[current])) {
                case p10_op::exec_constraint:
                    return SQLITE_CONSTRAINT_UNIQUE;
                case p10_op::exec_busy_then_ok:
                    return attempt <= busy_count[current] ? SQLITE_BUSY : SQLITE_OK;
                case p10_op::exec_exhausted:
                    return SQLITE_BUSY;
                default:
                    return SQLITE_OK;
            }
        };
        p10_db db{dir / fmt::format("p10-{}.db", ++case_number), o};
        db.exec_script("CREATE TABLE t(id INTEGER PRIMARY KEY, x)");
        std::array<std::uint64_t, resilite::error_class_count> failures{};  // by class, as the test saw them
        std::uint64_t retries = 0;
        std::set<std::size_t> uncounted;  // events of failed statements inside a transaction
        std::int64_t next_id = 1;
        const auto planned_so_far = [&](p10_op k) {
            return static_cast<std::size_t>(std::count(
                plan.begin(), plan.begin() + static_cast<std::ptrdiff_t>(current) + 1, static_cast<int>(k)));
        };
        armed = true;
        for (current = 0; current < plan.size(); ++current) {
            const auto kind = static_cast<p10_op>(plan[current]);
            const auto events_before = log.events().size();
            const auto clock_before = clock.now();
            const auto expect_failure = [&](error_class c, auto&& f) {
                try {
                    f();
                    RC_FAIL("the operation did not fail");
                } catch (const resilite::error& e) {
                    RC_ASSERT(e.klass() == c);
                    ++failures[static_cast<std::size_t>(c)];
                }
            };
            switch (kind) {
                case p10_op::exec_ok:
                    db.exec("INSERT INTO t(x) VALUES(1)");
                    break;
                case p10_op::exec_constraint:
                    expect_failure(error_class::constraint, [&] { db.exec("INSERT INTO t(x) VALUES(1)"); });
                    break;
                case p10_op::exec_busy_then_ok:
                    db.exec("INSERT INTO t(x) VALUES(1)");
                    retries += static_cast<std::uint64_t>(busy_count[current]);
                    break;
                case p10_op::exec_exhausted:
                    expect_failure(error_class::retry_exhausted,
                                   [&] { db.exec("INSERT INTO t(x) VALUES(1)"); });
                    retries += 3;  // 4 attempts
                    break;
                case p10_op::exec_syntax:
                    expect_failure(error_class::sql, [&] { db.exec("INSERT INTO t VALUES (1"); });
                    break;
                case p10_op::exec_script:
                    db.exec_script("INSERT INTO t(x) VALUES(2); INSERT INTO t(x) VALUES(3)");
                    break;
                case p10_op::query:
                    static_cast<void>(db.query<std::int64_t>("SELECT id FROM t"));
                    break;
                case p10_op::query_mismatch:
                    expect_failure(error_class::mismatch, [&] {
                        static_cast<void>(db.query_one<std::int64_t>("SELECT 'not a number'"));
                    });
                    break;
                case p10_op::typed_rows: {
                    const auto id = next_id++;
                    db.insert(Sample{id, "a"});
                    RC_ASSERT(db.get<Sample>(id).has_value());
                    static_cast<void>(db.select<Sample>());
                    db.upsert(Sample{id, "b"});
                    db.erase<Sample>(id);
                    break;
                }
                case p10_op::tx_commit:
                    db.transaction([](auto& tx) {
                        tx.exec("INSERT INTO t(x) VALUES(4)");
                        tx.exec("INSERT INTO t(x) VALUES(5)");
                    });
                    break;
                case p10_op::tx_constraint:
                    expect_failure(error_class::constraint, [&] {
                        db.transaction([](auto& tx) {
                            tx.exec("INSERT INTO t(id, x) VALUES(-1, 6)");
                            tx.exec("INSERT INTO t(id, x) VALUES(-1, 6)");
                        });
                    });
                    {  // the failed statement's own event: the transaction's counts the failure
                        const auto after = log.events();
                        for (std::size_t i = events_before; i < after.size(); ++i) {
                            if (after[i].name == "exec" && after[i].result == resilite::outcome::failed)
                                uncounted.insert(i);
                        }
                        RC_ASSERT(uncounted.size() == planned_so_far(p10_op::tx_constraint));
                    }
                    break;
                case p10_op::tx_savepoint:
                    db.transaction([](auto& tx) {
                        tx.savepoint([](auto& sp) { sp.exec("INSERT INTO t(x) VALUES(7)"); });
                    });
                    break;
                case p10_op::checkpoint:
                    static_cast<void>(db.checkpoint());
                    break;
                case p10_op::check:
                    RC_ASSERT(db.check(resilite::check_level::quick).ok());
                    break;
                case p10_op::backup:
                    static_cast<void>(db.backup_now());
                    break;
                case p10_op::reconfigure_ok: {
                    auto s = db.current_settings();
                    s.statement_cache_capacity = 32 + current;
                    db.reconfigure(s);
                    break;
                }
                case p10_op::reconfigure_invalid: {
                    auto s = db.current_settings();
                    s.statement_cache_capacity = 0;
                    expect_failure(error_class::invalid_setting, [&] { db.reconfigure(s); });
                    break;
                }
                case p10_op::drain_archive:
                    static_cast<void>(db.drain_archive());
                    break;
                case p10_op::count:
                    break;
            }
            // The operation's own event (its last) lasted exactly the time the clock moved
            // during the call: the injected steps plus the backoff sleeps. The typed rows are
            // five operations of one step each.
            const auto events = log.events();
            RC_ASSERT(events.size() > events_before);
            if (kind == p10_op::typed_rows) {
                RC_ASSERT(events.size() - events_before == 5u);
                for (std::size_t i = events_before; i < events.size(); ++i)
                    RC_ASSERT(events[i].duration == step[current]);
                RC_ASSERT(clock.now() - clock_before == 5 * step[current]);
            } else {
                RC_ASSERT(events.back().duration == clock.now() - clock_before);
            }
        }
        armed = false;
        const auto h = db.health();
        const auto events = log.events();
        // The latency samples are the durations of the events the metrics count: every event
        // but retries (and the failed statements a failed transaction counts as its own).
        std::vector<std::int64_t> latencies;
        std::array<std::uint64_t, resilite::error_class_count> failed_events{};
        std::uint64_t retry_events = 0;
        for (std::size_t i = 0; i < events.size(); ++i) {
            if (events[i].name == "retry") {
                ++retry_events;
                continue;
            }
            RC_ASSERT(events[i].name != "corrupt");
            RC_ASSERT(events[i].name != "wal_size_alert");
            if (uncounted.count(i) != 0) continue;
            latencies.push_back(events[i].duration.count());
            if (events[i].result == resilite::outcome::failed)
                ++failed_events[static_cast<std::size_t>(events[i].error)];
        }
        RC_ASSERT(h.operations == latencies.size());
        RC_ASSERT(h.latency_samples == latencies.size());
        RC_ASSERT(h.retries == retries);
        RC_ASSERT(retry_events == retries);
        std::uint64_t total_failures = 0;
        for (std::size_t c = 0; c < resilite::error_class_count; ++c) {
            RC_ASSERT(h.failures_by_class[c] == failures[c]);
            RC_ASSERT(failed_events[c] == failures[c]);
            total_failures += failures[c];
        }
        RC_ASSERT(h.failures == total_failures);
        const auto planned = [&](p10_op k) {
            return static_cast<std::uint64_t>(std::count(plan.begin(), plan.end(), static_cast<int>(k)));
        };
        RC_ASSERT(failures[static_cast<std::size_t>(error_class::constraint)] ==
                  planned(p10_op::exec_constraint) + planned(p10_op::tx_constraint));
        RC_ASSERT(failures[static_cast<std::size_t>(error_class::retry_exhausted)] ==
                  planned(p10_op::exec_exhausted));
        RC_ASSERT(failures[static_cast<std::size_t>(error_class::sql)] == planned(p10_op::exec_syntax));
        RC_ASSERT(failures[static_cast<std::size_t>(error_class::mismatch)] ==
                  planned(p10_op::query_mismatch));
        RC_ASSERT(failures[static_cast<std::size_t>(error_class::invalid_setting)] ==
                  planned(p10_op::reconfigure_invalid));
        // Percentiles: values that were recorded, in order, within the recorded range, and
        // each splits the samples where it says (at least q of them at or below it, at least
        // 1 - q at or above).
        std::sort(latencies.begin(), latencies.end());
        const auto n = static_cast<double>(latencies.size() - 1);
        for (const auto& [q, p] : {std::pair{0.50, h.p50}, std::pair{0.95, h.p95}, std::pair{0.99, h.p99}}) {
            RC_ASSERT(std::binary_search(latencies.begin(), latencies.end(), p.count()));
            RC_ASSERT(static_cast<double>(count_at_most(latencies, p.count())) >= q * n);
            RC_ASSERT(static_cast<double>(count_at_least(latencies, p.count())) >= (1 - q) * n);
        }
        RC_ASSERT(latencies.front() <= h.p50.count());
        RC_ASSERT(h.p50 <= h.p95);
        RC_ASSERT(h.p95 <= h.p99);
        RC_ASSERT(h.p99.count() <= latencies.back());
    });
}

TEST_CASE("check_health: SQLite 3.40's false NULL report on a WITHOUT ROWID table is not damage, a real NULL is",
          "[health]") {
    test::temp_dir dir;
    const auto path = dir / "pairs.db";
    {
        resilite::sqlite::connection c{path};
        // The PRIMARY KEY lists its columns in another order than the table declares them.
        c.exec_script(
            "CREATE TABLE pairs(x INTEGER NOT NULL, b TEXT NOT NULL, a INTEGER NOT NULL, PRIMARY KEY(b, a)) "
            "WITHOUT ROWID;"
            "INSERT INTO pairs VALUES(100, 'k', 1), (200, 'k', 2), (300, 'j', 3);");
    }
    for (const auto level : {resilite::check_level::quick, resilite::check_level::full}) {
        const auto r = resilite::check_health(path, level);
        INFO(r.detail);
        CHECK(r.ok());
    }
    // A NULL that is really there (the NOT NULL constraint added behind SQLite's back) still is.
    {
        resilite::sqlite::connection c{path};
        c.exec_script(
            "CREATE TABLE loose(x INTEGER, b TEXT NOT NULL, a INTEGER NOT NULL, PRIMARY KEY(b, a)) WITHOUT ROWID;"
            "INSERT INTO loose VALUES(NULL, 'k', 1), (5, 'k', 2);"
            "PRAGMA writable_schema = ON;"
            "UPDATE sqlite_schema SET sql = replace(sql, 'x INTEGER,', 'x INTEGER NOT NULL,') WHERE name = 'loose';"
            "PRAGMA writable_schema = OFF;");
    }
    for (const auto level : {resilite::check_level::quick, resilite::check_level::full}) {
        const auto r = resilite::check_health(path, level);
        INFO(r.detail);
        CHECK(r.result == resilite::health_report::finding::corrupt);
        CHECK_THAT(r.detail, Catch::Contains("NULL value in loose.x"));
        CHECK(r.detail.find("pairs") == std::string::npos);
    }
}

TEST_CASE("check_health: a sound database on a volume mounted read-only is sound, and WAL frames SQLite cannot "
          "read there are not checked and not called damage",
          "[health]") {
    test::temp_dir dir;
    const test::small_volume volume{dir.path(), "4m"};
    if (!volume.mounted()) {
        WARN("cannot mount a small tmpfs here (needs root): the read-only volume is not exercised");
        return;
    }
    const auto make = [](const std::filesystem::path& p, bool leave_frames) {
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open(p.c_str(), &db) == SQLITE_OK);
        REQUIRE(sqlite3_exec(db,
                             "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x); "
                             "INSERT INTO t VALUES(1)",
                             nullptr, nullptr, nullptr) == SQLITE_OK);
        if (leave_frames) {  // copies of the file and its WAL while the commit is only in the WAL
            std::filesystem::copy_file(p, p.string() + ".copy");
            std::filesystem::copy_file(p.string() + "-wal", p.string() + ".copy-wal");
        }
        sqlite3_close(db);  // (checkpoints, removes the -wal)
    };
    const auto sound = volume.path() / "sound.db";
    make(sound, false);
    REQUIRE_FALSE(std::filesystem::exists(sound.string() + "-wal"));
    make(dir / "frames.db", true);
    const auto frames = volume.path() / "frames.db";
    std::filesystem::copy_file(dir / "frames.db.copy", frames);
    std::filesystem::copy_file(dir / "frames.db.copy-wal", frames.string() + "-wal");
    REQUIRE(volume.remount_read_only());

    const auto s = resilite::check_health(sound, resilite::check_level::full);
    INFO(s.detail);
    CHECK(s.result == resilite::health_report::finding::ok);
    const auto f = resilite::check_health(frames, resilite::check_level::quick);
    INFO(f.detail);
    CHECK(f.result == resilite::health_report::finding::io_error);
    CHECK_THAT(f.detail, Catch::Contains("mounted read-only") && Catch::Contains("not damage"));
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
    CHECK_THAT(json, Catch::Contains("\"last_check\":{\"result\":\"corrupt\",\"level\":\"full\",\"detail\":\""));
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

TEST_CASE("health JSON: every field, parsed by a JSON parser, keyed as docs/health-json.md lists", "[health]") {
    test::temp_dir dir;
    resilite::Database<resilite::null_observer, test::manual_durability> db{dir / "j.db"};
    db.exec_script("CREATE TABLE t(x)");
    const auto json = nlohmann::json::parse(db.health().to_json());
    REQUIRE(json.is_object());
    std::set<std::string> keys;
    for (const auto& [key, value] : json.items())
        keys.insert(key);

    // The keys of the table in docs/health-json.md: the first column of each row.
    std::ifstream doc(std::filesystem::path{RESILITE_SOURCE_DIR} / "docs" / "health-json.md");
    REQUIRE(doc);
    std::set<std::string> documented;
    for (std::string line; std::getline(doc, line);) {
        if (!line.starts_with("| `")) continue;
        documented.insert(line.substr(3, line.find('`', 3) - 3));
    }
    CHECK(keys == documented);
    CHECK(json["healthy"] == true);
    CHECK(json["damage"].is_null());
    CHECK(json["unavailable_reason"] == "available");
    CHECK(json["unavailable_detail"].is_null());
    CHECK(json["latency_ns"]["p99"].is_number());

    // Free text is escaped: a message with quotes, a backslash and a newline reads back as it was.
    resilite::health_snapshot h;
    h.healthy = false;
    h.damage = "database disk image is malformed: \"items\" page 3\\4\nsecond line";
    h.available = false;
    h.unavailable_reason = "damaged";
    h.unavailable_detail = "SQLITE_CORRUPT \"t\"";
    const auto damaged = nlohmann::json::parse(h.to_json());
    CHECK(damaged["healthy"] == false);
    CHECK(damaged["damage"] == h.damage);
    CHECK(damaged["unavailable_detail"] == h.unavailable_detail);
    CHECK(damaged.size() == json.size());
}

TEST_CASE("health json and prometheus: a path that is not UTF-8 still gives valid JSON and OpenMetrics text",
          "[health]") {
    // Before: the path's raw 0xff byte went into both, which a JSON parser and a scraper refuse.
    test::temp_dir dir;
    const auto sub = dir / std::string{"caf\xe9-\xff"};  // Latin-1, as an old directory may be named
    std::filesystem::create_directories(sub);
    const auto path = sub / "m.db";
    resilite::Database<resilite::null_observer, test::manual_durability, resilite::no_retry> db{path};
    db.exec_script("CREATE TABLE t(id INTEGER PRIMARY KEY, pad TEXT); CREATE TABLE side(x)");
    db.transaction([](auto& tx) {
        for (int i = 0; i < 400; ++i)
            tx.exec("INSERT INTO t VALUES(?, ?)", i, std::string(300, 'x'));
    });
    static_cast<void>(db.checkpoint(resilite::checkpoint_mode::truncate));
    resilite::testing::zero_page(path, 6);  // damage, whose description names the path
    {
        resilite::sqlite::connection other{path};
        other.exec("INSERT INTO side VALUES(1)");
    }
    CHECK_THROWS_AS(db.query<std::int64_t>("SELECT id FROM t ORDER BY pad, id"), resilite::error);
    const auto h = db.health();
    REQUIRE_FALSE(h.healthy);
    nlohmann::json j;
    REQUIRE_NOTHROW(j = nlohmann::json::parse(h.to_json()));
    const auto metrics = resilite::to_openmetrics(h, (sub / "m.db").string());
    CHECK(resilite::detail::as_utf8(metrics) == metrics);
    CHECK_THAT(metrics, Catch::Contains("caf\xEF\xBF\xBD-\xEF\xBF\xBD"));
    CHECK(resilite::detail::as_utf8("ok \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80") == "ok \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
    CHECK(resilite::detail::as_utf8("\xC0\xAF \xED\xA0\x80") ==
          "\xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong, surrogate
}

TEST_CASE("health prometheus: OpenMetrics text, every family in docs/metrics.md, a cumulative histogram", "[health]") {
    test::temp_dir dir;
    resilite::Database<resilite::null_observer, test::manual_durability> db{dir / "m.db"};
    db.exec_script("CREATE TABLE t(x)");
    for (int i = 0; i < 30; ++i)
        static_cast<void>(db.exec("INSERT INTO t VALUES(?)", i));
    const auto h = db.health();
    const auto text = resilite::to_openmetrics(h, "m \"1\"\\db");
    REQUIRE(text.ends_with("# EOF\n"));

    // Line by line, as a scraper reads it: metadata, or `name{labels} value`.
    std::set<std::string> families;
    std::vector<std::pair<std::string, double>> buckets;
    double count = -1;
    std::istringstream lines{text};
    for (std::string line; std::getline(lines, line);) {
        CAPTURE(line);
        if (line == "# EOF") continue;
        if (line.starts_with("# TYPE ")) {
            families.insert(line.substr(7, line.find(' ', 7) - 7));
            continue;
        }
        if (line.starts_with("# HELP ") || line.starts_with("# UNIT ")) continue;
        const auto brace = line.find('{');
        const auto close = line.rfind("} ");
        REQUIRE(brace != std::string::npos);
        REQUIRE(close != std::string::npos);
        const auto name = line.substr(0, brace);
        const auto labels = line.substr(brace + 1, close - brace - 1);
        CHECK(labels.starts_with(R"(database="m \"1\"\\db")"));  // escaped as OpenMetrics says
        const double value = std::stod(line.substr(close + 2));
        CHECK(std::any_of(families.begin(), families.end(), [&](const auto& f) { return name.starts_with(f); }));
        if (name == "resilite_operation_duration_seconds_bucket")
            buckets.emplace_back(labels.substr(labels.find("le=\"") + 4), value);
        if (name == "resilite_operation_duration_seconds_count") count = value;
        if (name == "resilite_operations_total") CHECK(value == static_cast<double>(h.operations));
    }
    // Cumulative buckets, ending at +Inf with every operation timed.
    REQUIRE(buckets.size() == resilite::latency_bounds.size() + 1);
    CHECK(buckets.front().first == "0.0001\"");
    CHECK(buckets.back().first == "+Inf\"");
    for (const auto& [le, value] : buckets)  // the canonical float form ("1.0", not "1")
        CHECK((le == "+Inf\"" || le.find_first_of(".e") != std::string::npos));
    for (std::size_t i = 1; i < buckets.size(); ++i)
        CHECK(buckets[i].second >= buckets[i - 1].second);
    CHECK(buckets.back().second == count);
    CHECK(count == static_cast<double>(h.latency_samples));
    CHECK(count >= 30);

    // The families are the ones docs/metrics.md lists (a backup's age, the archive and the drill
    // appear once there is one).
    std::ifstream doc(std::filesystem::path{RESILITE_SOURCE_DIR} / "docs" / "metrics.md");
    REQUIRE(doc);
    std::set<std::string> documented, files_scope;
    for (std::string line; std::getline(doc, line);) {
        if (!line.starts_with("| resilite_")) continue;
        const auto name = line.substr(2, line.find(' ', 2) - 2);
        documented.insert(name);
        if (line.find("| both |") != std::string::npos) files_scope.insert(name);
    }
    for (const auto& f : families)
        CHECK(documented.contains(f));
    for (const auto& f : documented) {
        CAPTURE(f);
        const bool sometimes = f == "resilite_backup_age_seconds" || f == "resilite_archive_seq" ||
                               f == "resilite_drill_ok" || f.starts_with("resilite_offsite_");
        if (!sometimes) CHECK(families.contains(f));
    }
    // The files' scope leaves out what only the process knows.
    const auto files = resilite::to_openmetrics(h, "m.db", resilite::metrics_scope::files);
    std::istringstream flines{files};
    for (std::string line; std::getline(flines, line);) {
        if (!line.starts_with("# TYPE ")) continue;
        CHECK(files_scope.contains(line.substr(7, line.find(' ', 7) - 7)));
    }
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
            // The call that meets the damage says corrupt; later ones are refused at once, the
            // file being in doubt (docs/degradation.md), and say why.
            if (i == 0) {
                CHECK(e.klass() == resilite::error_class::corrupt);
            } else {
                CHECK(e.klass() == resilite::error_class::degraded);
                CHECK(std::string{e.what()}.find("damaged") != std::string::npos);
            }
        }
    }
    CHECK(failures == 3);
    CHECK(db.health().unavailable_reason == "damaged");
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

}  // namespace monitor_health_tests
