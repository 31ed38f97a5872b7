// The audit log (P15): db.audit() writes a row of resilite_audit; a write the database cannot
// take goes, after the retry policy's attempts, to a synced fallback file beside the database,
// imported exactly once and in order when the database is back; heals, restores,
// reset_healing and reconfigurations are audited too.

#include "archive_support.hpp"

#include <resilite/monitor/detail/audit_fallback.hpp>
#include <resilite/resilite.hpp>
#include <resilite/testing/corruption.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <rapidcheck/catch.h>

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace flow_audit_tests {

using namespace test::archive;
using resilite::error_class;
using test::manual_durability;

namespace {

using backups_on_demand = resilite::backup<resilite::online_backup<>, resilite::on_demand>;
// Time on the manual clock: retries never sleep for real.
using AuditDb = resilite::Database<resilite::schema<items, logs>, resilite::archive<>, backups_on_demand,
                                   resilite::healing<>, common, manual_durability, resilite::manual_clock,
                                   test::fast_retry>;
using PlainAuditDb = resilite::Database<common, manual_durability, resilite::manual_clock, test::fast_retry>;

// What the tests switch: the database unavailable (every attempt fails with `code`), and a
// crash after the next import committed, before its file is removed.
struct switches {
    std::atomic<bool> down{false};
    std::atomic<int> code{SQLITE_IOERR};
    std::atomic<int> crash_after_import{0};  // imports still to "crash" after their commit
};

template <class Db>
typename Db::options options_for(const test::event_log& log, const std::shared_ptr<switches>& sw) {
    typename Db::options o;
    o.observer = log.observer();
    o.inject_failure = [sw](std::string_view op, int) {
        if (sw->down && (op == "audit" || op == "audit_import")) return sw->code.load();
        if (op == "audit_import_retire" && sw->crash_after_import > 0) {
            --sw->crash_after_import;
            return SQLITE_IOERR;
        }
        return SQLITE_OK;
    };
    return o;
}

struct audit_row {
    std::int64_t seq;
    std::string at_utc, action, actor, detail, source;
    std::optional<std::string> fallback_file;
    std::optional<std::int64_t> fallback_seq;
};

std::vector<audit_row> audit_rows(const std::filesystem::path& db) {
    resilite::sqlite::connection c{db, SQLITE_OPEN_READONLY};
    std::vector<audit_row> out;
    if (c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = 'resilite_audit'") != 1) return out;
    for (auto& [seq, at, action, actor, detail, source, ff, fs] :
         c.query_all<std::int64_t, std::string, std::string, std::string, std::string, std::string,
                     std::optional<std::string>, std::optional<std::int64_t>>(
             "SELECT seq, at_utc, action, actor, detail, source, fallback_file, fallback_seq FROM resilite_audit "
             "ORDER BY seq"))
        out.push_back({seq, at, action, actor, detail, source, ff, fs});
    return out;
}

std::vector<std::string> details_of(const std::filesystem::path& db, const std::string& action = {}) {
    std::vector<std::string> out;
    for (const auto& r : audit_rows(db))
        if (action.empty() || r.action == action) out.push_back(r.detail);
    return out;
}

std::vector<std::string> lines_of(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);)
        out.push_back(line);
    return out;
}

std::vector<test::recorded_event> events_named(const test::event_log& log, const std::string& name) {
    std::vector<test::recorded_event> out;
    for (auto& e : log.events())
        if (e.name == name) out.push_back(e);
    return out;
}

std::vector<std::filesystem::path> rejected_files(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> out;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().filename().string().find(".audit-fallback.jsonl.rejected-") != std::string::npos)
            out.push_back(e.path());
    return out;
}

}  // namespace

TEST_CASE("audit: one row per call, with UTC time to the millisecond and the writing process", "[audit]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    test::event_log log;
    auto sw = std::make_shared<switches>();
    PlainAuditDb db{path, options_for<PlainAuditDb>(log, sw)};
    const auto r = db.audit("login", "alice", "from 10.0.0.1");
    CHECK(r.in_database);
    CHECK(r.fallback_seq == 0);
    const auto rows = audit_rows(path);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].seq == r.seq);
    CHECK(rows[0].action == "login");
    CHECK(rows[0].actor == "alice");
    CHECK(rows[0].detail == "from 10.0.0.1");
    CHECK(rows[0].at_utc == "2026-11-22T00:00:00.000Z");  // the manual clock's UTC
    CHECK(rows[0].source.ends_with(":" + std::to_string(::getpid())));
    CHECK(!rows[0].fallback_file);
    const auto events = events_named(log, "audit");
    REQUIRE(events.size() == 1);
    CHECK(events[0].result == resilite::outcome::ok);
    CHECK(!std::filesystem::exists(resilite::detail::audit_fallback_path(path)));
    CHECK(db.health().audit_fallback_entries == 0);
}

TEST_CASE("audit: refused inside a transaction and for text that is not UTF-8, nothing written", "[audit]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    test::event_log log;
    auto sw = std::make_shared<switches>();
    PlainAuditDb db{path, options_for<PlainAuditDb>(log, sw)};
    db.exec_script("CREATE TABLE t(x)");
    try {
        db.transaction([&](auto& tx) {
            tx.exec("INSERT INTO t VALUES(1)");
            static_cast<void>(db.audit("a", "b", "c"));
        });
        FAIL("audit() inside a transaction was accepted");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == error_class::misuse);
    }
    CHECK_THROWS_AS(static_cast<void>(db.audit("a", "b", std::string{"\xff\xfe"})), resilite::error);
    CHECK(audit_rows(path).empty());
    CHECK(!std::filesystem::exists(resilite::detail::audit_fallback_path(path)));
    CHECK(events_named(log, "audit").size() == 2);
}

TEST_CASE("audit: a write the database cannot take is retried, then synced to the fallback file as JSON lines",
          "[audit]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    const auto fallback = resilite::detail::audit_fallback_path(path);
    test::event_log log;
    auto sw = std::make_shared<switches>();
    PlainAuditDb db{path, options_for<PlainAuditDb>(log, sw)};
    for (const int code : {SQLITE_IOERR, SQLITE_BUSY, SQLITE_FULL, SQLITE_CANTOPEN}) {
        DYNAMIC_SECTION("failing with " << code) {
            sw->code = code;
            sw->down = true;
            log.clear();
            const auto a = db.audit("export", "bob", "first");
            const auto b = db.audit("export", "bob", "second \"quoted\"\nand a newline");
            CHECK(!a.in_database);
            CHECK(!b.in_database);
            CHECK(a.fallback_seq == 1);
            CHECK(b.fallback_seq == 2);
            const auto events = events_named(log, "audit");
            REQUIRE(events.size() == 2);  // one per call (P17)
            CHECK(events[0].result == resilite::outcome::warning);
            CHECK(events[0].detail.find("fallback") != std::string::npos);
            if (code == SQLITE_BUSY || code == SQLITE_IOERR)  // retried first, under the retry policy
                CHECK(events_named(log, "retry").size() == 2 * 3);
            const auto lines = lines_of(fallback);
            REQUIRE(lines.size() == 2);
            for (const auto& line : lines) {
                const auto j = nlohmann::json::parse(line);
                CHECK(j.at("crc").get<std::string>().size() == 8);
                CHECK(resilite::detail::decode_audit_line(line).has_value());
            }
            CHECK(nlohmann::json::parse(lines[1]).at("detail") == "second \"quoted\"\nand a newline");
            CHECK(db.health().audit_fallback_entries == 2);
            CHECK(audit_rows(path).empty());

            sw->down = false;  // the database is back: the next audit imports first, in order
            const auto c = db.audit("export", "bob", "third");
            CHECK(c.in_database);
            CHECK(details_of(path) ==
                  std::vector<std::string>{"first", "second \"quoted\"\nand a newline", "third"});
            CHECK(!std::filesystem::exists(fallback));
            CHECK(db.health().audit_fallback_entries == 0);
            const auto imports = events_named(log, "audit_import");
            REQUIRE(imports.size() == 1);
            CHECK(imports[0].rows == 2);
            CHECK(imports[0].result == resilite::outcome::ok);
            const auto rows = audit_rows(path);
            CHECK(rows[0].fallback_seq == 1);
            CHECK(rows[1].fallback_seq == 2);
            CHECK(rows[0].fallback_file == rows[1].fallback_file);
            CHECK(!rows[2].fallback_seq);
        }
    }
}

TEST_CASE("audit: the fallback is imported at open and on the background tick", "[audit]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    const auto fallback = resilite::detail::audit_fallback_path(path);
    test::event_log log;
    auto sw = std::make_shared<switches>();
    {
        PlainAuditDb db{path, options_for<PlainAuditDb>(log, sw)};
        sw->down = true;
        CHECK(!db.audit("a", "x", "1").in_database);
        CHECK(!db.audit("a", "x", "2").in_database);
        static_cast<void>(db.maintain());  // still down: the file stays
        CHECK(std::filesystem::exists(fallback));
        sw->down = false;
        CHECK(db.maintain());  // the tick: the file exists, the database is back
        CHECK(details_of(path) == std::vector<std::string>{"1", "2"});
        CHECK(!std::filesystem::exists(fallback));
        sw->down = true;
        CHECK(!db.audit("a", "x", "3").in_database);
    }
    sw->down = false;
    PlainAuditDb again{path, options_for<PlainAuditDb>(log, sw)};
    CHECK(details_of(path) == std::vector<std::string>{"1", "2", "3"});
    CHECK(!std::filesystem::exists(fallback));
}

TEST_CASE("audit: a crash after the import committed, before the file was removed, never imports twice",
          "[audit]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    const auto fallback = resilite::detail::audit_fallback_path(path);
    test::event_log log;
    auto sw = std::make_shared<switches>();
    PlainAuditDb db{path, options_for<PlainAuditDb>(log, sw)};
    sw->down = true;
    static_cast<void>(db.audit("a", "x", "1"));
    static_cast<void>(db.audit("a", "x", "2"));
    const auto copy = dir / "copy.jsonl";
    std::filesystem::copy_file(fallback, copy);
    sw->down = false;

    SECTION("the file put back after the import (as if the removal never happened)") {
        CHECK(db.maintain());
        CHECK(!std::filesystem::exists(fallback));
        std::filesystem::copy_file(copy, fallback);
        log.clear();
        CHECK(db.audit("a", "x", "3").in_database);
        CHECK(details_of(path) == std::vector<std::string>{"1", "2", "3"});
        CHECK(!std::filesystem::exists(fallback));
        const auto imports = events_named(log, "audit_import");
        REQUIRE(imports.size() == 1);
        CHECK(imports[0].rows == 0);
        CHECK(imports[0].detail.find("2 entries already in the audit table skipped") != std::string::npos);
    }
    SECTION("the import failing between its commit and the removal") {
        sw->crash_after_import = 1;
        CHECK(db.audit("a", "x", "3").in_database);  // the failed attempt is retried: the import skips
        CHECK(details_of(path) == std::vector<std::string>{"1", "2", "3"});
        CHECK(!std::filesystem::exists(fallback));
    }
    SECTION("then more entries appended to the old file, and reopened") {
        CHECK(db.maintain());
        std::filesystem::copy_file(copy, fallback);
        sw->down = true;
        CHECK(db.audit("a", "x", "3").fallback_seq == 3);  // numbered after the file's own
        sw->down = false;
        PlainAuditDb again{dir / "app.db", options_for<PlainAuditDb>(log, sw)};
        CHECK(details_of(path) == std::vector<std::string>{"1", "2", "3"});
    }
}

TEST_CASE("audit: a torn last line is ignored with an event, a damaged line in the middle is kept aside",
          "[audit]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    const auto fallback = resilite::detail::audit_fallback_path(path);
    test::event_log log;
    auto sw = std::make_shared<switches>();
    PlainAuditDb db{path, options_for<PlainAuditDb>(log, sw)};
    sw->down = true;
    for (const auto* d : {"1", "2", "3"})
        static_cast<void>(db.audit("a", "x", d));
    sw->down = false;
    auto lines = lines_of(fallback);
    REQUIRE(lines.size() == 3);

    SECTION("torn tail") {
        {
            std::ofstream out(fallback, std::ios::app | std::ios::binary);
            out << lines[2].substr(0, lines[2].size() / 2);  // a write a crash cut short: no newline
        }
        CHECK(db.health().audit_fallback_entries == 3);
        CHECK(db.maintain());
        CHECK(details_of(path) == std::vector<std::string>{"1", "2", "3"});
        CHECK(!std::filesystem::exists(fallback));
        const auto imports = events_named(log, "audit_import");
        REQUIRE(imports.size() == 1);
        CHECK(imports[0].result == resilite::outcome::warning);
        CHECK(imports[0].detail.find("torn last line") != std::string::npos);
        CHECK(rejected_files(dir.path()).empty());
    }
    SECTION("torn tail, then a new entry appended: the tail is cut first") {
        {
            std::ofstream out(fallback, std::ios::app | std::ios::binary);
            out << "{\"action\":\"a\",\"ac";
        }
        sw->down = true;
        log.clear();
        CHECK(db.audit("a", "x", "4").fallback_seq == 4);
        CHECK(events_named(log, "audit")[0].detail.find("torn last line") != std::string::npos);
        CHECK(lines_of(fallback).size() == 4);
        sw->down = false;
        CHECK(db.maintain());
        CHECK(details_of(path) == std::vector<std::string>{"1", "2", "3", "4"});
    }
    SECTION("a damaged line in the middle") {
        const auto sound = lines;
        lines[1][lines[1].find("\"detail\":\"2\"") + 10] = '9';  // the CRC no longer matches
        {
            std::ofstream out(fallback, std::ios::trunc | std::ios::binary);
            for (const auto& l : lines)
                out << l << '\n';
        }
        CHECK(db.maintain());
        CHECK(details_of(path) == std::vector<std::string>{"1", "3"});
        CHECK(!std::filesystem::exists(fallback));
        const auto aside = rejected_files(dir.path());
        REQUIRE(aside.size() == 1);
        CHECK(lines_of(aside[0]) == lines);  // kept whole for a person to read
        const auto imports = events_named(log, "audit_import");
        REQUIRE(imports.size() == 1);
        CHECK(imports[0].result == resilite::outcome::warning);
        CHECK(imports[0].error == error_class::corrupt);
        CHECK(imports[0].detail.find("line 2 failed its CRC") != std::string::npos);
        // An operator puts the sound original back: entry 2, passed over, is imported now, 1 and
        // 3 are not imported twice, and the event never calls entry 2 "imported before".
        {
            std::ofstream out(fallback, std::ios::trunc | std::ios::binary);
            for (const auto& l : sound)
                out << l << '\n';
        }
        log.clear();
        CHECK(db.maintain());
        CHECK(details_of(path) == std::vector<std::string>{"1", "3", "2"});
        CHECK(!std::filesystem::exists(fallback));
        const auto again = events_named(log, "audit_import");
        REQUIRE(again.size() == 1);
        INFO(again[0].detail);
        CHECK(again[0].detail.find("2 entries already in the audit table skipped") != std::string::npos);
        CHECK(again[0].detail.find("1 entry numbered below") != std::string::npos);
        CHECK(again[0].detail.find("imported before") == std::string::npos);
    }
}

TEST_CASE("audit: when the fallback cannot be written either, audit() throws class io naming both failures",
          "[audit]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    test::event_log log;
    auto sw = std::make_shared<switches>();
    PlainAuditDb db{path, options_for<PlainAuditDb>(log, sw)};
    std::filesystem::create_directory(resilite::detail::audit_fallback_path(path));  // cannot be opened as a file
    sw->down = true;
    try {
        static_cast<void>(db.audit("a", "x", "lost"));
        FAIL("audit() returned though nothing took the entry");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == error_class::io);
        const std::string text = e.what();
        CHECK(text.find("the database could not take it") != std::string::npos);
        CHECK(text.find("nor the fallback file") != std::string::npos);
    }
    const auto events = events_named(log, "audit");
    REQUIRE(events.size() == 1);
    CHECK(events[0].result == resilite::outcome::failed);
}

TEST_CASE("audit: rows survive a heal (archived like a user table), and heals are audited", "[audit][heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    test::event_log log;
    auto sw = std::make_shared<switches>();
    {
        AuditDb db{path, options_for<AuditDb>(log, sw)};
        db.insert(Item{1, "one", 1.0, "s"});
        CHECK(db.audit("a", "x", "before the backup").in_database);
        static_cast<void>(db.backup_now());
        CHECK(db.audit("a", "x", "after the backup").in_database);
        db.insert(Item{2, "two", 2.0, "s"});
    }
    std::mt19937_64 rng{7};
    resilite::testing::overwrite_header(path, rng);
    {
        AuditDb db{path, options_for<AuditDb>(log, sw)};  // heals at open
        REQUIRE(db.last_heal());
        CHECK(details_of(path, "a") == std::vector<std::string>{"before the backup", "after the backup"});
        const auto heals = audit_rows(path);
        REQUIRE(heals.size() == 3);
        CHECK(heals[2].action == "heal");
        CHECK(heals[2].actor == "resilite");
        CHECK(heals[2].detail.starts_with("healed "));
        CHECK(heals[2].detail.find('\n') == std::string::npos);
        CHECK(!std::filesystem::exists(resilite::detail::audit_fallback_path(path)));

        static_cast<void>(db.heal());  // at run time: audited once the healed database is in place
        const auto after = audit_rows(path);
        REQUIRE(after.size() == 4);
        CHECK(after[3].action == "heal");
        CHECK(!after[3].fallback_file);  // written directly, not through the fallback
        CHECK(db.query_one<std::int64_t>("SELECT count(*) FROM items") == 2);
    }
}

TEST_CASE("audit: a Database without archive<> never creates the audit table in a database whose archive another "
          "program keeps: its entries wait for that program, and the archive stays whole",
          "[audit][archive]") {
    // Before: the operator's command (no archive<>) created resilite_audit at its open, a table in
    // no record until the application's next write; a drill or an archive report meanwhile said
    // the archive does not reproduce the database ("no such table: resilite_audit").
    using PlainDb = resilite::Database<resilite::schema<items, logs>, common, manual_durability>;
    test::temp_dir dir;
    const auto path = dir / "app.db";
    { ItemsDb db{path}; db.insert(Item{1, "one", 1.0, "s"}); }
    {
        PlainDb plain{path};
        const auto r = plain.audit("backup", "operator", "by hand");
        CHECK_FALSE(r.in_database);
        CHECK(r.fallback_seq == 1);
    }
    {
        resilite::sqlite::connection c{path, SQLITE_OPEN_READONLY};
        CHECK(c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = 'resilite_audit'") == 0);
    }
    resilite::inspect_options compare;
    compare.live_database = path;
    compare.excluded_columns = {"items.token"};  // a secret: never archived
    const auto inspected = resilite::inspect_archive(dir / "app.db.archive", compare);
    INFO(inspected.to_text());
    CHECK(inspected.reproduces_live == true);
    {
        ItemsDb db{path};  // the application imports the entry, and archives it
        CHECK(details_of(path, "backup") == std::vector<std::string>{"by hand"});
        CHECK(db.check_archive().reproduces_live == true);
    }
    CHECK(!std::filesystem::exists(resilite::detail::audit_fallback_path(path)));
}

TEST_CASE("audit: reconfigure, reset_healing and restore are audited", "[audit]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    test::event_log log;
    auto sw = std::make_shared<switches>();
    std::filesystem::path backup;
    {
        AuditDb db{path, options_for<AuditDb>(log, sw)};
        auto s = db.current_settings();
        s.checkpoint_interval = std::chrono::seconds{120};
        db.reconfigure(s);
        const auto rows = audit_rows(path);
        REQUIRE(rows.size() == 1);
        CHECK(rows[0].action == "reconfigure");
        CHECK(rows[0].actor == "resilite");
        CHECK(rows[0].detail == "settings changed: checkpoint_interval");
        backup = db.backup_now().path;
    }
    auto m = resilite::detail::read_marker(path);
    m.heal_attempts = 3;
    REQUIRE(resilite::detail::write_marker(path, m));
    resilite::reset_healing(path);  // no Database: the entry waits in the fallback
    CHECK(resilite::detail::audit_fallback_depth(path) == 1);
    static_cast<void>(resilite::restore(backup, path));
    CHECK(resilite::detail::audit_fallback_depth(path) == 2);
    AuditDb db{path, options_for<AuditDb>(log, sw)};
    const auto rows = audit_rows(path);
    REQUIRE(rows.size() == 3);  // the backup's reconfigure row, then the two imported
    CHECK(rows[1].action == "reset_healing");
    CHECK(rows[1].detail.find("3 heals in a row") != std::string::npos);
    CHECK(rows[2].action == "restore");
    CHECK(rows[2].fallback_seq == 2);
}

TEST_CASE("P15 audit log retry pattern", "[audit][property][P15]") {
    // Random audits while the database comes and goes (random failure codes), imports that
    // "crash" after their commit (failing there, or the file put back as if never removed),
    // reopens: afterwards the table holds every acknowledged entry exactly once, in order.
    enum kind { audit_call, go_down, come_up, crash_next_import, put_back_after_import, reopen, tick };
    rc::prop("every acknowledged audit entry is in the table exactly once, in order", [] {
        test::temp_dir dir;
        const auto path = dir / "p15.db";
        const auto fallback = resilite::detail::audit_fallback_path(path);
        test::event_log log;
        auto sw = std::make_shared<switches>();
        auto db = std::make_unique<PlainAuditDb>(path, options_for<PlainAuditDb>(log, sw));
        const auto ops = *rc::gen::container<std::vector<int>>(rc::gen::inRange(0, 7));
        std::vector<std::string> acknowledged;
        std::size_t audits = 0;
        for (const int op : ops) {
            switch (op) {
                case audit_call: {
                    const auto detail = std::to_string(audits++);
                    const auto events_before = log.count("audit");
                    const auto r = db->audit("op", "p15", detail);
                    RC_ASSERT(log.count("audit") == events_before + 1);
                    RC_ASSERT(r.in_database == !sw->down.load());
                    acknowledged.push_back(detail);
                    break;
                }
                case go_down:
                    sw->code = *rc::gen::element(SQLITE_IOERR, SQLITE_BUSY, SQLITE_FULL, SQLITE_CANTOPEN);
                    sw->down = true;
                    break;
                case come_up:
                    sw->down = false;
                    break;
                case crash_next_import:
                    sw->crash_after_import = 1;
                    break;
                case put_back_after_import: {
                    if (!std::filesystem::exists(fallback) || sw->down) break;
                    const auto copy = dir / "copy";
                    std::filesystem::copy_file(fallback, copy, std::filesystem::copy_options::overwrite_existing);
                    static_cast<void>(db->maintain());
                    if (!std::filesystem::exists(fallback)) std::filesystem::rename(copy, fallback);
                    break;
                }
                case reopen:
                    db.reset();
                    db = std::make_unique<PlainAuditDb>(path, options_for<PlainAuditDb>(log, sw));
                    break;
                case tick:
                    static_cast<void>(db->maintain());
                    break;
            }
        }
        sw->down = false;
        sw->crash_after_import = 0;
        static_cast<void>(db->maintain());
        RC_ASSERT(!std::filesystem::exists(fallback));
        RC_ASSERT(details_of(path) == acknowledged);
        RC_ASSERT(db->health().audit_fallback_entries == 0u);
    });
}

}  // namespace flow_audit_tests
