// Durability maintenance: periodic PASSIVE checkpoints and WAL size alerts, driven by the clock.
#include "support.hpp"

#include <catch2/catch.hpp>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace policy_durability_tests {

using namespace std::chrono_literals;

namespace {
// A database on the manual clock with the given checkpoint interval, WAL alert and thread choice.
template <std::uint32_t CheckpointSeconds, std::uint64_t WalAlertMiB, bool Background = false>
using clocked_db = resilite::Database<
    resilite::callback_observer, resilite::manual_clock,
    resilite::wal_durability<resilite::synchronous::full, CheckpointSeconds, WalAlertMiB, Background>>;

template <class Db>
void write_rows(Db& db, int n) {
    db.transaction([&](auto& tx) {
        for (int i = 0; i < n; ++i)
            tx.exec("INSERT INTO t VALUES(?)", std::string(200, 'x'));
    });
}
}  // namespace

TEST_CASE("maintain runs a PASSIVE checkpoint when the clock says it is due", "[durability][maintenance]") {
    test::temp_dir dir;
    test::event_log log;
    resilite::manual_clock clock;
    using Db = clocked_db<60, 64, false>;
    Db db{dir / "m.db", {log.observer(), clock, std::nullopt}};
    db.exec_script("CREATE TABLE t(x)");
    write_rows(db, 50);

    CHECK_FALSE(db.maintain());  // not due yet
    clock.advance(59s);
    CHECK_FALSE(db.maintain());
    CHECK(log.count("checkpoint") == 0);
    clock.advance(1s);
    CHECK(db.maintain());
    CHECK(log.count("checkpoint") == 1);
    const auto cp = log.events().back();
    CHECK(cp.result == resilite::outcome::ok);
    CHECK(cp.rows > 0);          // frames copied into the database
    CHECK_FALSE(db.maintain());  // the next one is 60 s later
    clock.advance(60s);
    CHECK(db.maintain());
    CHECK(log.count("checkpoint") == 2);
}

TEST_CASE("a scheduled checkpoint that fails is tried once per round: no retry sleeps under the writer lock",
          "[durability][maintenance]") {
    // The round holds the writer lock: a retry's backoff there held back every thread of the
    // process (a docs-only user saw a transaction give up after 20 s against a 10 s deadline).
    test::temp_dir dir;
    test::event_log log;
    resilite::manual_clock clock;
    using Db = clocked_db<60, 64, false>;
    bool failing = false;
    Db::options o{log.observer(), clock, std::nullopt};
    o.inject_failure = [&](std::string_view op, int) { return failing && op == "checkpoint" ? SQLITE_IOERR_READ : SQLITE_OK; };
    Db db{dir / "m.db", o};
    db.exec_script("CREATE TABLE t(x)");
    write_rows(db, 50);
    failing = true;
    clock.advance(60s);
    CHECK(db.maintain());
    CHECK(clock.sleeps().empty());
    CHECK(log.count("retry") == 0);
    REQUIRE(log.count("checkpoint") == 1);
    bool failed = false;
    for (const auto& e : log.events())
        failed = failed || (e.name == "checkpoint" && e.result == resilite::outcome::failed);
    CHECK(failed);
    failing = false;
    clock.advance(60s);
    CHECK(db.maintain());  // the next round tries again
    CHECK(log.count("checkpoint") == 2);
    CHECK(db.health().available);
}

TEST_CASE("a WAL above the alert threshold raises a warning event", "[durability][maintenance]") {
    test::temp_dir dir;
    test::event_log log;
    resilite::manual_clock clock;
    using Db = clocked_db<10, 1, false>;
    Db db{dir / "w.db", {log.observer(), clock, std::nullopt}};
    db.exec_script("CREATE TABLE t(x)");
    // Hold a reader open so the checkpoint cannot reset the WAL, then grow it past 1 MiB.
    resilite::sqlite::connection reader{dir / "w.db"};
    reader.exec("BEGIN");
    static_cast<void>(reader.query_one<int>("SELECT count(*) FROM t"));
    write_rows(db, 6000);
    REQUIRE(db.wal_bytes() > (1u << 20));
    clock.advance(10s);
    CHECK(db.maintain());
    REQUIRE(log.count("wal_size_alert") == 1);
    for (const auto& e : log.events()) {
        if (e.name == "wal_size_alert") {
            CHECK(e.result == resilite::outcome::warning);
            CHECK_THAT(e.detail, Catch::Contains("above the alert threshold"));
        }
    }
    reader.exec("COMMIT");
}

TEST_CASE("the background thread runs maintenance as the manual clock advances",
          "[durability][maintenance]") {
    test::temp_dir dir;
    test::event_log log;
    resilite::manual_clock clock;
    using Db = clocked_db<30, 64, true>;
    Db db{dir / "b.db", {log.observer(), clock, std::nullopt}};
    db.exec_script("CREATE TABLE t(x)");
    write_rows(db, 10);
    clock.advance(10s);  // not due: the thread wakes, finds nothing to do
    clock.advance(25s);  // due
    CHECK(log.wait_for("checkpoint", 1));
    clock.advance(30s);
    CHECK(log.wait_for("checkpoint", 2));
}

TEST_CASE("changing the checkpoint interval reschedules the next checkpoint", "[durability][maintenance]") {
    test::temp_dir dir;
    test::event_log log;
    resilite::manual_clock clock;
    using Db = clocked_db<600, 64, false>;
    Db db{dir / "r.db", {log.observer(), clock, std::nullopt}};
    auto s = db.current_settings();
    s.checkpoint_interval = 5s;
    db.reconfigure(s);
    clock.advance(5s);
    CHECK(db.maintain());
    CHECK(log.count("checkpoint") == 1);
}

TEST_CASE("a PRAGMA run through exec, query or exec_script that changes the journal mode or the synchronous level "
          "is refused (class misuse) and put back, while reading them and other pragmas pass",
          "[durability]") {
    test::temp_dir dir;
    resilite::Database<resilite::null_observer, test::manual_durability> db{dir / "d.db"};
    const auto state = [&] {
        return std::pair{db.query_one<std::string>("PRAGMA journal_mode").value_or(""),
                         db.query_one<int>("PRAGMA synchronous").value_or(-1)};
    };
    const auto before = state();
    REQUIRE(before.first == "wal");
    const auto refused = [&](auto&& call) {
        try {
            call();
            FAIL("accepted");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == resilite::error_class::misuse);
            CHECK_THAT(e.technical().note, Catch::Contains("put back"));
        }
        CHECK(state() == before);
    };
    refused([&] { db.exec("PRAGMA synchronous=OFF"); });
    refused([&] { db.exec("/* why */ pragma main.SYNCHRONOUS = 0"); });
    refused([&] { db.exec("PRAGMA journal_mode=OFF"); });
    refused([&] { static_cast<void>(db.query<std::string>("PRAGMA journal_mode=MEMORY")); });
    refused([&] { static_cast<void>(db.query_one<std::string>("PRAGMA journal_mode=DELETE")); });
    refused([&] { db.exec_script("CREATE TABLE t(x); PRAGMA synchronous=0; INSERT INTO t VALUES(1)"); });
    CHECK(db.query_one<int>("SELECT count(*) FROM t") == 1);  // (the script's other statements ran)
    db.exec("PRAGMA foreign_keys=ON");
    CHECK(db.query_one<int>("PRAGMA foreign_keys") == 1);
    CHECK(db.query_one<int>("PRAGMA synchronous") == before.second);
    CHECK(state() == before);
}

}  // namespace policy_durability_tests
