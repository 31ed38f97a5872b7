// The archive's writing side: capture triggers, the outbox, drains on commit and batched,
// baselines, schema records, secrets, crashes between commit and drain, several writers.

#include "archive_support.hpp"

#include <resilite/testing/kill_harness.hpp>
#include <resilite/testing/trials.hpp>

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bit>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <set>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace archive_capture_tests {

using namespace test::archive;

TEST_CASE("archive capture: row changes become upserts of the whole row and deletes by key", "[archive]") {
    test::temp_dir dir;
    {
        ItemsDb db{dir / "app.db", items_options()};
        db.insert(Item{1, "Ann", 1.5, "tok-1"});
        db.insert(Item{2, "O'Brien\nsecond line", 0.1, "tok-2"});
        db.transaction([](auto& tx) {
            tx.exec("UPDATE items SET name = 'Bo' WHERE id = 2");
            tx.exec("DELETE FROM items WHERE id = 1");
            tx.exec("INSERT INTO logs(msg) VALUES('hello'), (x'00ff')");
        });
        db.exec("UPDATE items SET id = 7 WHERE id = 2");  // a key change: delete the old key, upsert the new
    }
    const auto text = segments_text(dir / "app.db.archive");
    INFO(text);
    CHECK(text.find("-- resilite archive v1") == 0);
    CHECK(text.find("CREATE TABLE IF NOT EXISTS \"items\"") != std::string::npos);
    // The secret token gets a placeholder (it is NOT NULL without a default), never its value, and
    // the update part leaves an existing row's token alone.
    CHECK(text.find(
              "INSERT INTO \"items\"(\"id\",\"name\",\"score\",\"token\") VALUES(1,'Ann',1.5,'') ON "
              "CONFLICT(\"id\") DO UPDATE SET \"name\"=excluded.\"name\",\"score\"=excluded.\"score\";") !=
          std::string::npos);
    CHECK(text.find("VALUES(2,'O''Brien\nsecond line',0.1,'')") !=
          std::string::npos);  // quote() escapes exactly
    CHECK(text.find("DELETE FROM \"items\" WHERE \"id\" IS 1;") != std::string::npos);
    CHECK(text.find("INSERT INTO \"logs\"(rowid,\"msg\") VALUES(2,X'00FF') ON CONFLICT(rowid)") !=
          std::string::npos);
    CHECK(text.find("DELETE FROM \"items\" WHERE \"id\" IS 2;") != std::string::npos);
    CHECK(text.find("VALUES(7,'Bo',0.1,'')") != std::string::npos);
    CHECK(text.find("tok-") == std::string::npos);  // secrets never archived
    const auto report = resilite::inspect_archive(dir / "app.db.archive");
    CHECK(report.problems.empty());
    CHECK(report.records == 5);  // the schema, two inserts, the transaction, the key change
    CHECK(report.first_seq == 1);
    CHECK(report.last_seq == 5);
}

TEST_CASE("archive secret: secret values never appear in any segment, whatever changes them",
          "[archive][secret]") {
    test::temp_dir dir;
    {
        ItemsDb db{dir / "app.db", items_options()};
        for (int i = 0; i < 20; ++i)
            db.insert(Item{i, fmt::format("n{}", i), i * 1.0, fmt::format("SECRET-{}", i)});
        db.exec("UPDATE items SET token = 'SECRET-changed' WHERE id < 5");  // secret-only: no record
        db.exec("UPDATE items SET token = 'SECRET-both', name = 'x' WHERE id = 7");
        db.with_connection([](auto& c) {
            c.exec("INSERT INTO items(id, name, score, token) VALUES(99, 'raw', 0, 'SECRET-raw')");
        });
        db.exec("UPDATE items SET score = score + 1");
        static_cast<void>(db.drain_archive());
        const auto report = db.check_archive();
        CHECK(report.reproduces_live == true);  // secret columns left out of the comparison
        CHECK(report.problems.empty());
    }
    // The snapshot path too: archiving switched on for a database that holds secrets.
    {
        BaseDb db{dir / "other.db", {}};
        db.exec(
            "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL NOT NULL, token TEXT "
            "NOT "
            "NULL DEFAULT '')");
        db.exec("INSERT INTO items VALUES(1, 'a', 1, 'SECRET-old')");
    }
    {
        auto o = items_options();
        ItemsDb db{dir / "other.db", o};
    }
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.path())) {
        if (!entry.is_regular_file() || entry.path().extension() != ".sql") continue;
        INFO(entry.path());
        CHECK(read_all(entry.path()).find("SECRET") == std::string::npos);
    }
}

TEST_CASE("archive drain on commit: the record is in the segment before the call returns", "[archive]") {
    test::temp_dir dir;
    ItemsDb db{dir / "app.db", items_options()};
    for (int i = 1; i <= 5; ++i) {
        db.insert(Item{i, fmt::format("row{}", i), 0, "t"});
        const auto text = segments_text(dir / "app.db.archive");
        CHECK(text.find(fmt::format("VALUES({},'row{}'", i, i)) != std::string::npos);
        CHECK(text.find(fmt::format("COMMIT; -- txn {} crc32", i + 1)) != std::string::npos);
    }
    db.transaction([](auto& tx) {
        tx.exec("INSERT INTO logs(msg) VALUES('in a transaction')");
        // Not archived before the commit: the outbox is part of the transaction.
        CHECK(segments_text(tx.database().archive_directory()).find("in a transaction") == std::string::npos);
    });
    CHECK(segments_text(dir / "app.db.archive").find("in a transaction") != std::string::npos);
    CHECK_THROWS(db.transaction([](auto& tx) {
        tx.exec("INSERT INTO logs(msg) VALUES('rolled back')");
        throw std::runtime_error("no");
    }));
    CHECK(segments_text(dir / "app.db.archive").find("rolled back") == std::string::npos);
}

TEST_CASE("archive batched: maintain() drains on the interval, close drains the rest", "[archive]") {
    test::temp_dir dir;
    resilite::manual_clock clock;
    {
        BatchedDb db{dir / "app.db", batched_options(clock)};
        db.insert(Item{1, "a", 0, "t"});
        CHECK(segments_text(dir / "app.db.archive").find("'a'") ==
              std::string::npos);  // waits for the interval
        clock.advance(std::chrono::milliseconds{999});
        static_cast<void>(db.maintain());
        CHECK(segments_text(dir / "app.db.archive").find("'a'") == std::string::npos);
        clock.advance(std::chrono::milliseconds{1});
        CHECK(db.maintain());
        CHECK(segments_text(dir / "app.db.archive").find("'a'") != std::string::npos);
        db.insert(Item{2, "b", 0, "t"});
    }
    CHECK(segments_text(dir / "app.db.archive").find("'b'") != std::string::npos);
}

TEST_CASE("archive baseline: archiving switched on for a database with data writes a full snapshot first",
          "[archive]") {
    test::temp_dir dir;
    {
        PlainItemsDb db{dir / "app.db", {}};
        for (int i = 0; i < 50; ++i)
            db.insert(Item{i, fmt::format("r{}", i), i / 2.0, "s"});
        db.exec("INSERT INTO logs(msg) VALUES('before archiving')");
    }
    test::event_log log;
    {
        auto o = items_options();
        o.observer = log.observer();
        ItemsDb db{dir / "app.db", o};
        db.erase<Item>(3);
        const auto report = db.check_archive();
        CHECK(report.baseline_seq == 1);
        CHECK(report.reproduces_live == true);
        CHECK(report.problems.empty());
    }
    bool said = false;
    for (const auto& e : log.events())
        said = said || (e.name == "archive" && e.detail.find("full snapshot") != std::string::npos);
    CHECK(said);
    const auto rebuilt = dir / "rebuilt.db";
    const auto r = resilite::rebuild(dir / "app.db.archive", rebuilt);
    CHECK(r.applied_records == 2);
    CHECK(table_hash(rebuilt, "items", {"id", "name", "score"}) ==
          table_hash(dir / "app.db", "items", {"id", "name", "score"}));
    CHECK(table_hash(rebuilt, "logs", {"msg"}) == table_hash(dir / "app.db", "logs", {"msg"}));
    // Reopening the rebuilt database with archiving on continues the same archive: no new snapshot.
    {
        auto o = items_options();
        o.settings->archive.directory = (dir / "app.db.archive").string();
        ItemsDb db{rebuilt, o};
        db.insert(Item{100, "after", 0, "t"});
    }
    const auto after = resilite::inspect_archive(dir / "app.db.archive");
    CHECK(after.problems.empty());
    CHECK(after.baseline_seq == 1);
    CHECK(after.last_seq == 3);
}

TEST_CASE("archive schema records: added columns and tables become DDL, other changes a snapshot",
          "[archive]") {
    test::temp_dir dir;
    {
        ItemsDb db{dir / "app.db", items_options()};
        db.insert(Item{1, "a", 1, "s"});
    }
    {
        ItemsV2Db db{dir / "app.db", items_options_v2()};  // sync adds items.note and the tags table
        db.insert(ItemV2{2, "b", 2, "s", "noted"});
        db.insert(Tag{"red"});
        const auto text = segments_text(dir / "app.db.archive");
        INFO(text);
        CHECK(text.find("ALTER TABLE \"items\" ADD COLUMN \"note\" TEXT NOT NULL DEFAULT 'none';") !=
              std::string::npos);
        CHECK(text.find("CREATE TABLE IF NOT EXISTS \"tags\"") != std::string::npos);
        const auto report = db.check_archive();
        INFO(report.to_text());
        CHECK(report.baseline_seq == 0);
        CHECK(report.reproduces_live == true);
    }
    {
        // A migration that rewrites rows in a way the capture triggers of its time cannot see
        // completely (a column added and filled): a snapshot records the outcome.
        MigratedDb db{dir / "app.db", migrated_options()};
        const auto report = db.check_archive();
        INFO(report.to_text());
        CHECK(report.baseline_seq > 0);
        CHECK(report.reproduces_live == true);
        CHECK(report.problems.empty());
    }
}

namespace {
struct drop_obsolete {
    static constexpr int version = 1;
    static constexpr std::string_view sql = "ALTER TABLE notes DROP COLUMN obsolete; UPDATE notes SET body = upper(body);";
};
using DropColumnDb = resilite::Database<resilite::schema<items, logs>, resilite::migrations<drop_obsolete>,
                                        resilite::archive<>, common, test::manual_durability>;
struct shout_names {
    static constexpr int version = 1;
    static constexpr std::string_view sql = "UPDATE items SET name = upper(name);";
};
using ShoutDb = resilite::Database<resilite::schema<items, logs>, resilite::migrations<shout_names>,
                                   resilite::archive<>, common, test::manual_durability>;
using ShoutOnlyDb = resilite::Database<resilite::schema<items, logs>, resilite::migrations<shout_names>, common,
                                       test::manual_durability>;
using MigrateOnlyDb = resilite::Database<resilite::schema<items, logs>, resilite::migrations<drop_obsolete>, common,
                                         test::manual_durability>;
}  // namespace

TEST_CASE("archive and a migration that drops a column: the capture triggers make way, a snapshot records the "
          "outcome",
          "[archive][migrations]") {
    test::temp_dir dir;
    {
        ItemsDb db{dir / "app.db", items_options()};
        db.exec_script("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT, obsolete TEXT)");
        db.exec("INSERT INTO notes(body, obsolete) VALUES('a', 'x'), ('b', 'y')");
        db.insert(Item{1, "a", 1, "s"});
    }
    {
        // The migration run by a program that does not archive (as an open cut short after its
        // migrations, before the archive started): the triggers are gone, the snapshot is owed.
        MigrateOnlyDb db{dir / "app.db"};
        db.exec("INSERT INTO notes(body) VALUES('not captured')");
    }
    DropColumnDb db{dir / "app.db", archive_options<DropColumnDb>()};
    CHECK(db.version() == 1);
    CHECK(db.query<std::string>("SELECT name FROM pragma_table_info('notes') ORDER BY cid") ==
          std::vector<std::string>{"id", "body"});
    db.exec("INSERT INTO notes(body) VALUES('c')");  // archived through the new triggers
    const auto report = db.check_archive();
    INFO(report.to_text());
    CHECK(report.reproduces_live == true);
    CHECK(report.problems.empty());
}

TEST_CASE("archive and migrations run where the archive did not start after them: the snapshot they owe is "
          "written at the next open that archives",
          "[archive][migrations]") {
    test::temp_dir dir;
    {
        ItemsDb db{dir / "app.db", items_options()};
        db.insert(Item{1, "a", 1, "s"});
    }
    {
        ShoutOnlyDb db{dir / "app.db"};  // the migration changes rows only, without capture triggers
        CHECK(db.version() == 1);
    }
    ShoutDb db{dir / "app.db", archive_options<ShoutDb>()};
    CHECK(db.get<Item>(1)->name == "A");
    const auto report = db.check_archive();
    INFO(report.to_text());
    CHECK(report.reproduces_live == true);
    CHECK(report.problems.empty());
}

TEST_CASE("archive capture triggers missing at open: a snapshot covers what was written without them",
          "[archive]") {
    test::temp_dir dir;
    {
        ItemsDb db{dir / "app.db", items_options()};
        db.insert(Item{1, "a", 1, "s"});
    }
    {
        resilite::sqlite::connection c{dir / "app.db"};
        for (const auto& name : c.query_all<std::string>(
                 "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'resilite_archive_items_%'"))
            c.exec_script("DROP TRIGGER \"" + name + "\"");
        c.exec("INSERT INTO items VALUES(2, 'b', 2, 's')");  // not captured
    }
    ItemsDb db{dir / "app.db", items_options()};
    const auto report = db.check_archive();
    INFO(report.to_text());
    CHECK(report.reproduces_live == true);
    CHECK(report.problems.empty());
}

TEST_CASE("archive capture triggers all dropped, at open or while open: a snapshot covers what was written without "
          "them, the archive alone rebuilds every row",
          "[archive]") {
    // Every capture trigger gone looked like a database rebuilt from its archive (which has
    // none yet), so nothing was snapshotted: acknowledged commits were in no record.
    const auto drop_all = [](const std::filesystem::path& db) {
        resilite::sqlite::connection c{db};
        for (const auto& name : c.query_all<std::string>(
                 "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'resilite\\_archive\\_%' "
                 "ESCAPE '\\'"))
            c.exec_script("DROP TRIGGER \"" + name + "\"");
        c.exec("INSERT INTO items VALUES(2, 'b', 2, 's')");  // not captured
    };
    const auto rebuilds_live = [](const std::filesystem::path& dir, int rows) {
        const auto rebuilt = dir / "rebuilt.db";
        std::filesystem::remove(rebuilt);
        static_cast<void>(resilite::rebuild(dir / "app.db.archive", rebuilt));
        CHECK(table_hash(rebuilt, "items", {"id", "name", "score"}) ==
              table_hash(dir / "app.db", "items", {"id", "name", "score"}));
        resilite::sqlite::connection c{rebuilt};
        CHECK(c.query_one<int>("SELECT count(*) FROM items") == rows);
    };
    SECTION("while closed") {
        test::temp_dir dir;
        { ItemsDb db{dir / "app.db", items_options()}; db.insert(Item{1, "a", 1, "s"}); }
        drop_all(dir / "app.db");
        { ItemsDb db{dir / "app.db", items_options()}; db.insert(Item{3, "c", 3, "s"}); }
        rebuilds_live(dir.path(), 3);
    }
    SECTION("while open") {
        test::temp_dir dir;
        {
            ItemsDb db{dir / "app.db", items_options()};
            db.insert(Item{1, "a", 1, "s"});
            drop_all(dir / "app.db");
            db.insert(Item{3, "c", 3, "s"});
            db.insert(Item{4, "d", 4, "s"});
        }
        rebuilds_live(dir.path(), 4);
    }
}

TEST_CASE("archive crash after the append, before the outbox is settled: nothing archived twice",
          "[archive]") {
    test::temp_dir dir;
    resilite::manual_clock clock;
    {
        BatchedDb db{dir / "app.db", batched_options(clock)};
        db.insert(Item{1, "a", 0, "t"});
        db.insert(Item{2, "b", 0, "t"});
        snapshot_database(dir / "app.db", dir / "crash");  // the outbox holds both rows
    }                                                      // close drains them into the archive and settles
    restore_database(dir / "crash", dir / "app.db");       // as if the settle never happened
    {
        BatchedDb db{dir / "app.db", batched_options(clock)};
        db.insert(Item{3, "c", 0, "t"});
        const auto report = db.check_archive();
        CHECK(report.problems.empty());
        CHECK(report.reproduces_live == true);
    }
    const auto text = segments_text(dir / "app.db.archive");
    CHECK(count_of(text, "VALUES(1,'a'") == 1);
    CHECK(count_of(text, "VALUES(2,'b'") == 1);
}

TEST_CASE("archive torn tail: a record cut short by a crash is moved aside and archived again", "[archive]") {
    test::temp_dir dir;
    resilite::manual_clock clock;
    const auto seg = dir / "app.db.archive" / "2026_11.sql";
    {
        BatchedDb db{dir / "app.db", batched_options(clock)};
        db.insert(Item{1, "a", 0, "t"});
        static_cast<void>(db.drain_archive());
        db.insert(Item{2, "b", 0, "t"});
        snapshot_database(dir / "app.db", dir / "crash");
    }
    restore_database(dir / "crash", dir / "app.db");
    // The record of row 2 half written when the power went.
    const auto text = read_all(seg);
    const auto cut = text.rfind("-- txn");
    write_all(seg, text.substr(0, cut + (text.size() - cut) / 2));
    test::event_log log;
    {
        auto o = batched_options(clock);
        o.observer = log.observer();
        BatchedDb db{dir / "app.db", o};
        const auto report = db.check_archive();
        CHECK(report.problems.empty());
        CHECK(report.reproduces_live == true);
    }
    bool moved = false;
    for (const auto& e : std::filesystem::directory_iterator(dir / "app.db.archive")) {
        if (!e.path().filename().string().starts_with("2026_11.sql.torn-")) continue;
        CHECK_FALSE(moved);  // one file for the one tear
        moved = true;
        const auto written = text.substr(0, cut + (text.size() - cut) / 2);
        CHECK(read_all(e.path()) == written.substr(written.rfind("\n-- txn ") + 1));  // the torn bytes, kept
    }
    CHECK(moved);
    bool said = false;
    for (const auto& e : log.events())
        said = said || (e.name == "archive" && e.detail.find("incomplete last record") != std::string::npos);
    CHECK(said);
}

TEST_CASE("archive sigkill between commit and drain loses nothing", "[archive][kill]") {
    const int runs = resilite::testing::trials(6);
    for (int run = 0; run < runs; ++run) {
        test::temp_dir dir;
        const bool batched = run % 2 == 1;  // batched: many commits wait in the outbox when the kill lands
        const auto db_path = dir / "app.db";
        { ItemsDb init{db_path, items_options()}; }
        const auto result = resilite::testing::run_and_kill(
            [&](const std::function<void(std::int64_t)>& report) {
                if (batched) {
                    resilite::manual_clock clock;
                    BatchedDb db{db_path, batched_options(clock)};
                    for (std::int64_t i = 1;; ++i) {
                        db.insert(Item{i, fmt::format("r{}", i), 0, "t"});
                        report(i);
                        if (i % 7 == 0) static_cast<void>(db.maintain());
                        clock.advance(std::chrono::milliseconds{150});
                    }
                } else {
                    ItemsDb db{db_path, items_options()};
                    for (std::int64_t i = 1;; ++i) {
                        db.insert(Item{i, fmt::format("r{}", i), 0, "t"});
                        report(i);
                    }
                }
            },
            resilite::testing::after_acknowledged{static_cast<std::size_t>(5 + 4 * run)});
        REQUIRE(result.killed);
        REQUIRE(!result.acknowledged.empty());
        {
            ItemsDb db{db_path, items_options()};  // catch-up archives what the outbox kept
            const auto report = db.check_archive();
            INFO(report.to_text());
            CHECK(report.reproduces_live == true);
            for (const auto& p : report.problems)
                CHECK((!p.fatal && p.what == resilite::archive_problem::kind::torn_tail));
        }
        const auto rebuilt = dir / "rebuilt.db";
        static_cast<void>(resilite::rebuild(dir / "app.db.archive", rebuilt));
        resilite::sqlite::connection c{rebuilt};
        for (const auto n : result.acknowledged) {
            INFO("acknowledged commit " << n);
            REQUIRE(c.query_one<int>("SELECT count(*) FROM items WHERE id = ?", n) == 1);
        }
    }
}

TEST_CASE("archive drains from several processes are serialized: no interleaved lines, no gaps",
          "[archive]") {
    test::temp_dir dir;
    const auto db_path = dir / "app.db";
    { ItemsDb init{db_path, items_options()}; }
    constexpr int writers = 3, rows = 40;
    std::vector<pid_t> children;
    for (int w = 0; w < writers; ++w) {
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            int code = 0;
            try {
                ItemsDb db{db_path, items_options()};
                for (int i = 0; i < rows; ++i)
                    db.insert(Item{w * 1000 + i, fmt::format("w{}-{}", w, i), 0, "t"});
            } catch (...) {
                code = 1;
            }
            ::_exit(code);
        }
        children.push_back(pid);
    }
    for (const auto pid : children) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
    }
    ItemsDb db{db_path, items_options()};
    const auto report = db.check_archive();
    INFO(report.to_text());
    CHECK(report.problems.empty());
    CHECK(report.reproduces_live == true);
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == writers * rows);
}

TEST_CASE("archive and backups: the manifest records the archive sequence number each copy holds",
          "[archive][backup]") {
    test::temp_dir dir;
    ItemsBackupDb db{dir / "app.db"};
    db.insert(Item{1, "a", 0, "t"});
    db.insert(Item{2, "b", 0, "t"});
    const auto b = db.backup_now();
    REQUIRE(b.archive_seq.has_value());
    CHECK(*b.archive_seq == 3);
    const auto manifest = read_all(dir / "app.db.backups" / "MANIFEST");
    CHECK(manifest.find("\tok\t3\t") != std::string::npos);
    // The copy plus the records after its number equal the database.
    db.insert(Item{3, "c", 0, "t"});
    static_cast<void>(db.drain_archive());
    const auto restored = dir / "restored.db";
    std::filesystem::copy_file(b.path, restored);
    const auto r = resilite::replay_archive(dir / "app.db.archive", restored);
    CHECK(r.applied_records == 1);
    CHECK(table_hash(restored, "items", {"id", "name", "score"}) ==
          table_hash(dir / "app.db", "items", {"id", "name", "score"}));
}

TEST_CASE("archive drain failure: the commit stands, a warning says so, the next drain catches up",
          "[archive]") {
    test::temp_dir dir;
    resilite::manual_clock clock;
    test::event_log log;
    auto o = batched_options(clock);
    o.observer = log.observer();
    BatchedDb db{dir / "app.db", o};
    const auto segment = dir / "app.db.archive" / "2026_11.sql";  // the manual clock's month
    static_cast<void>(db.drain_archive());
    const auto before = read_all(segment);
    std::filesystem::rename(segment, dir / "moved.sql");
    std::filesystem::create_directory(segment);  // appending now fails (even for root)
    db.insert(Item{1, "kept", 0, "t"});
    // A table created outside a transaction: the failed drain's schema sync is rolled back with it,
    // and the next drain syncs again.
    db.exec_script("CREATE TABLE extra(k INTEGER PRIMARY KEY, v TEXT); INSERT INTO extra VALUES(1, 'x');");
    clock.advance(std::chrono::seconds{1});
    CHECK(db.maintain());
    CHECK(db.health().archive_pending == 1);
    bool warned = false;
    for (const auto& e : log.events()) {
        warned = warned || (e.name == "archive" && e.result == resilite::outcome::warning &&
                            e.detail.find("kept in the outbox") != std::string::npos);
    }
    CHECK(warned);
    CHECK(db.get<Item>(1).has_value());  // the commit stands
    std::filesystem::remove(segment);
    std::filesystem::rename(dir / "moved.sql", segment);
    CHECK(db.maintain());  // a failed drain is retried at the next maintain()
    CHECK(db.health().archive_pending == 0);
    CHECK(db.health().to_json().find("\"archive_pending\":0") != std::string::npos);
    CHECK(read_all(segment).find("'kept'") != std::string::npos);
    CHECK(read_all(segment).find("CREATE TABLE IF NOT EXISTS extra") != std::string::npos);
    const auto report = db.check_archive();
    INFO(report.to_text());
    CHECK(report.problems.empty());
    CHECK(report.reproduces_live == true);
    CHECK(before.size() < read_all(segment).size());
}

TEST_CASE("archive segments rotate monthly (UTC) and read as one archive", "[archive]") {
    test::temp_dir dir;
    resilite::manual_clock clock;  // starts at 2026-11-22T00:00:00Z
    {
        BatchedDb db{dir / "app.db", batched_options(clock)};
        db.insert(Item{1, "november", 0, "t"});
        static_cast<void>(db.drain_archive());
        clock.advance(std::chrono::hours{24 * 10});
        db.insert(Item{2, "december", 0, "t"});
        static_cast<void>(db.drain_archive());
        clock.advance(std::chrono::hours{24 * 40});
        db.erase<Item>(1);
        const auto report = db.check_archive();
        CHECK(report.segments == std::vector<std::string>{"2026_11.sql", "2026_12.sql", "2027_01.sql"});
        CHECK(report.problems.empty());
        CHECK(report.reproduces_live == true);
        CHECK(report.last_time.starts_with("2027-01-"));
    }
    const auto dec = read_all(dir / "app.db.archive" / "2026_12.sql");
    CHECK(dec.starts_with("-- resilite archive v1 · database app.db · segment 2026_12\n"));
    CHECK(dec.find("'december'") != std::string::npos);
    CHECK(dec.find("'november'") == std::string::npos);
}

TEST_CASE("archive reopen finds where the archive ends, after small and after large records", "[archive]") {
    test::temp_dir dir;
    for (int round = 0; round < 3; ++round) {
        ItemsDb db{dir / "app.db", items_options()};
        db.insert(Item{round * 10'000, "small", 0, "t"});
        db.transaction([&](auto& tx) {  // one record larger than the tail is read with at once
            for (int i = 1; i < 3000; ++i)
                tx.insert(Item{round * 10'000 + i,
                               fmt::format("a longer name to make the record large {}", i), i * 0.5, "t"});
        });
    }
    ItemsDb db{dir / "app.db", items_options()};
    const auto report = db.check_archive();
    INFO(report.to_text());
    CHECK(report.problems.empty());
    CHECK(report.reproduces_live == true);
    CHECK(report.last_seq == 7);  // the schema, then two records per round
}

TEST_CASE("archive values: every value reads back with the same type and bits", "[archive]") {
    test::temp_dir dir;
    ItemsDb db{dir / "app.db", items_options()};
    const std::vector<double> reals = {0.1 + 0.2,
                                       -0.0,
                                       5e-324,
                                       1.7976931348623157e308,
                                       1e16,
                                       9007199254740993.0,
                                       1.0 / 3,
                                       -2.5,
                                       std::numeric_limits<double>::infinity(),
                                       -std::numeric_limits<double>::infinity()};
    std::int64_t id = std::numeric_limits<std::int64_t>::min();
    for (double r : reals)
        db.exec("INSERT INTO items(id, name, score, token) VALUES(?, ?, ?, 't')", id++, "real", r);
    db.exec("INSERT INTO items(id, name, score, token) VALUES(?, 'max', 1, 't')",
            std::numeric_limits<std::int64_t>::max());
    resilite::blob all_bytes(256);
    for (std::size_t i = 0; i < all_bytes.size(); ++i)
        all_bytes[i] = static_cast<std::byte>(i);
    db.exec("INSERT INTO logs(msg) VALUES(?)", all_bytes);
    db.exec("INSERT INTO logs(msg) VALUES(?)", resilite::blob{});
    db.exec("INSERT INTO logs(msg) VALUES(?)", std::string{"nul\0inside", 10});
    db.exec("INSERT INTO logs(msg) VALUES(?)",
            std::string{"unicode: \xc3\xa9\xe2\x82\xac \xf0\x9f\x98\x80 'q' \"d\""});
    db.exec("INSERT INTO logs(msg) VALUES(?)", std::string{});
    const auto report = db.check_archive();
    INFO(report.to_text());
    CHECK(report.problems.empty());
    CHECK(report.reproduces_live == true);
    const auto rebuilt = dir / "rebuilt.db";
    static_cast<void>(resilite::rebuild(db.archive_directory(), rebuilt));
    resilite::sqlite::connection c{rebuilt};
    const auto typed = [](resilite::sqlite::connection& conn, const char* sql) {
        return conn.query_all<std::string>(sql);
    };
    resilite::sqlite::connection live{dir / "app.db"};
    const char* const bits =
        "SELECT id || ' ' || typeof(score) || ' ' || hex(CAST(score AS BLOB)) || ' ' || "
        "printf('%!.17g', score) FROM items ORDER BY id";
    CHECK(typed(c, bits) == typed(live, bits));
    const char* const logs =
        "SELECT typeof(msg) || ' ' || length(CAST(msg AS BLOB)) || ' ' || hex(msg) FROM logs "
        "ORDER BY rowid";
    CHECK(typed(c, logs) == typed(live, logs));
}

TEST_CASE("archive bookkeeping is not counted as the application's rows", "[archive]") {
    test::temp_dir dir;
    test::event_log log;
    auto o = items_options();
    o.observer = log.observer();
    ItemsDb db{dir / "app.db", o};
    db.transaction([](auto& tx) {
        for (int i = 0; i < 3; ++i)
            tx.insert(Item{i, "r", 0, "t"});
        tx.savepoint([](auto& inner) { inner.exec("UPDATE items SET name = 's' WHERE id < 2"); });
    });
    CHECK(db.exec("DELETE FROM items WHERE id = 0") == 1);
    std::vector<std::int64_t> rows;
    for (const auto& e : log.events())
        if (e.name == "transaction" || e.name == "savepoint") rows.push_back(e.rows);
    CHECK(rows == std::vector<std::int64_t>{2, 5});  // the savepoint's 2 updates, the transaction's 5 rows
}

TEST_CASE(
    "archive directory that cannot be written: the database opens and works, the outbox keeps everything",
    "[archive]") {
    test::temp_dir dir;
    resilite::manual_clock clock;
    test::event_log log;
    auto o = batched_options(clock);
    o.observer = log.observer();
    write_all(dir / "app.db.archive", "a file where the directory should be");
    BatchedDb db{dir / "app.db", o};
    bool warned = false;
    for (const auto& e : log.events())
        warned = warned || (e.name == "archive" && e.result == resilite::outcome::warning &&
                            e.detail.find("cannot create the archive directory") != std::string::npos);
    CHECK(warned);
    db.insert(Item{1, "kept", 0, "t"});
    CHECK(db.health().archive_pending >= 2);  // the schema record and the row
    std::filesystem::remove(dir / "app.db.archive");
    CHECK(db.maintain());  // the failed drain is retried
    CHECK(db.health().archive_pending == 0);
    const auto report = db.check_archive();
    CHECK(report.problems.empty());
    CHECK(report.reproduces_live == true);
}

TEST_CASE("archive drains larger than the memory limit are written row by row, records unchanged",
          "[archive]") {
    namespace a = resilite::detail::archive;
    for (const std::size_t limit : {std::size_t{64} << 20, std::size_t{200}}) {
        test::temp_dir dir;
        const auto db = dir / "app.db";
        resilite::sqlite::connection c{db};
        c.exec_script(
            "PRAGMA journal_mode=WAL; CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "token TEXT NOT NULL DEFAULT '')");
        for (int i = 0; i < 500; ++i)  // rows before archiving: a snapshot larger than the limit
            c.exec("INSERT INTO items(id, name, token) VALUES(?, ?, 'SECRET')", i, fmt::format("row {}", i));
        a::archive_writer writer{dir / "archive", "app.db", {{"items", {"token"}}}, 4096};
        writer.set_memory_limit(limit);
        const auto notes = writer.catch_up(c, false);
        CHECK(notes.size() == 1);  // "archiving started on a database that holds data"
        CHECK(writer.drain(c, std::chrono::system_clock::now(), true) == 1);
        c.exec_script("BEGIN");
        for (int i = 500; i < 800; ++i)
            c.exec("INSERT INTO items(id, name) VALUES(?, ?)", i, fmt::format("row {}", i));
        c.exec("DELETE FROM items WHERE id < 100");
        c.exec_script("COMMIT");
        CHECK(writer.drain(c, std::chrono::system_clock::now(), false) == 1);
        const auto report = resilite::inspect_archive(dir / "archive", {db, {"items.token"}});
        INFO("limit " << limit << "\n" << report.to_text());
        CHECK(report.problems.empty());
        CHECK(report.records == 2);
        CHECK(report.baseline_seq == 1);
        CHECK(report.reproduces_live == true);
        CHECK(segments_text(dir / "archive").find("SECRET") == std::string::npos);
    }
}

TEST_CASE("archive writers notice a segment another connection started, even with a clock behind",
          "[archive]") {
    test::temp_dir dir;
    resilite::manual_clock ahead, behind;  // two connections, one clock stepped back by a month
    BatchedDb a{dir / "app.db", batched_options(ahead)};
    BatchedDb b{dir / "app.db", batched_options(behind)};
    a.insert(Item{1, "a1", 0, "t"});
    static_cast<void>(a.drain_archive());
    b.insert(Item{2, "b1", 0, "t"});
    static_cast<void>(b.drain_archive());  // b now knows where the archive ends
    ahead.advance(std::chrono::hours{24 * 10});
    a.insert(Item{3, "a2", 0, "t"});
    static_cast<void>(a.drain_archive());  // starts 2026_12.sql, notes it at the end of 2026_11.sql
    CHECK(read_all(dir / "app.db.archive" / "2026_11.sql").ends_with("-- continued in 2026_12.sql\n"));
    b.insert(Item{4, "b2", 0, "t"});
    static_cast<void>(b.drain_archive());  // must not reuse a number
    const auto report = b.check_archive();
    INFO(report.to_text());
    CHECK(report.problems.empty());
    CHECK(report.reproduces_live == true);
    CHECK(segments_text(dir / "app.db.archive").find("'b2'") >
          segments_text(dir / "app.db.archive").find("'a2'"));
}

namespace {
std::vector<std::string> torn_files(const std::filesystem::path& dir) {
    return set_aside_files(dir, ".torn-");
}

bool warned_with(const test::event_log& log, std::string_view text) {
    for (const auto& e : log.events())
        if (e.name == "archive" && e.result == resilite::outcome::warning && e.detail.find(text) != std::string::npos)
            return true;
    return false;
}

// Files may grow to `bytes` and no further while it lives (writes past it fail with EFBIG,
// as appends to a full volume fail with ENOSPC, after a partial write).
class file_size_limit {
public:
    explicit file_size_limit(rlim_t bytes) {
        ::getrlimit(RLIMIT_FSIZE, &saved_);
        previous_ = std::signal(SIGXFSZ, SIG_IGN);
        rlimit l = saved_;
        l.rlim_cur = bytes;
        ::setrlimit(RLIMIT_FSIZE, &l);
    }
    file_size_limit(const file_size_limit&) = delete;
    file_size_limit& operator=(const file_size_limit&) = delete;
    ~file_size_limit() {
        ::setrlimit(RLIMIT_FSIZE, &saved_);
        std::signal(SIGXFSZ, previous_);
    }

private:
    rlimit saved_{};
    void (*previous_)(int) = nullptr;
};
}  // namespace

TEST_CASE("archive volume full: a commit the archive cannot take is rolled back and fails with class archive",
          "[archive]") {
    test::temp_dir dir;
    test::event_log log;
    auto o = items_options();
    o.observer = log.observer();
    ItemsDb db{dir / "app.db", o};
    db.insert(Item{1, "before", 0, "t"});
    const auto archive = dir / "app.db.archive";
    const auto segments = resilite::detail::archive::list_segments(archive);
    REQUIRE(segments.size() == 1);
    const auto seg = archive / segments.front();
    // Comment lines make the segment larger than the database and its WAL will grow to, so that
    // only the archive hits the limit.
    auto text = read_all(seg);
    const auto first_record = text.find("-- txn ");
    std::string padding;
    while (padding.size() < (4u << 20))
        padding += "-- padding: an archive volume that is nearly full\n";
    write_all(seg, text.substr(0, first_record) + padding + text.substr(first_record));
    const auto padded = read_all(seg);
    int refused = 0;
    {
        const file_size_limit limit{padded.size() + 40};  // room for part of one record
        for (int i = 2; i <= 21; ++i) {
            try {
                db.insert(Item{i, fmt::format("during {}", i), 0, "t"});
            } catch (const resilite::error& e) {
                CHECK(e.klass() == resilite::error_class::archive);
                ++refused;
            }
        }
        // A transaction too, and a single statement: nothing unarchived is acknowledged.
        CHECK_THROWS_AS(db.transaction([](auto& tx) { tx.exec("UPDATE items SET name = 'x'"); }), resilite::error);
        CHECK_THROWS_AS(db.exec("DELETE FROM items"), resilite::error);
    }
    CHECK(refused == 20);
    CHECK(torn_files(archive).empty());
    CHECK(read_all(seg) == padded);  // what a failed append wrote was taken back
    CHECK(db.query<std::int64_t>("SELECT id FROM items").size() == 1);  // every refused commit rolled back
    CHECK(db.get<Item>(1)->name == "before");
    CHECK(db.health().archive_pending == 0);
    db.insert(Item{30, "after", 0, "t"});  // the volume has room again
    const auto report = db.check_archive();
    INFO(report.to_text());
    CHECK(report.problems.empty());
    CHECK(report.reproduces_live == true);
    CHECK(torn_files(archive).empty());
}

TEST_CASE("archive written ahead: a transaction whose COMMIT fails leaves no record, the archive equals the database",
          "[archive]") {
    test::temp_dir dir;
    bool fail_commit = false;
    auto o = items_options();
    o.inject_failure = [&](std::string_view op, int) { return op == "commit" && fail_commit ? SQLITE_IOERR_WRITE : SQLITE_OK; };
    ItemsDb db{dir / "app.db", o};
    db.insert(Item{1, "kept", 0, "t"});
    const auto before = segments_text(dir / "app.db.archive");
    fail_commit = true;
    CHECK_THROWS_AS(db.transaction([](auto& tx) { tx.insert(Item{2, "reported failed", 0, "t"}); }), resilite::error);
    fail_commit = false;
    CHECK_FALSE(db.get<Item>(2).has_value());
    CHECK(segments_text(dir / "app.db.archive") == before);  // the record written ahead was taken back
    db.insert(Item{3, "next", 0, "t"});
    const auto report = db.check_archive();
    INFO(report.to_text());
    CHECK(report.problems.empty());
    CHECK(report.reproduces_live == true);
    CHECK(segments_text(dir / "app.db.archive").find("reported failed") == std::string::npos);
}

TEST_CASE("archive written ahead: a segment sync that fails beside its COMMIT leaves the commit standing, says so, "
          "raises the high-water mark and writes a full snapshot with the next commit",
          "[archive]") {
    test::temp_dir dir;
    test::event_log log;
    bool fail_sync = false;
    int syncs = 0;
    auto o = items_options();
    o.observer = log.observer();
    o.inject_archive_sync_failure = [&] {
        ++syncs;
        return fail_sync;
    };
    ItemsDb db{dir / "app.db", o};
    db.insert(Item{1, "synced", 0, "t"});
    CHECK(syncs == 1);  // the segment's sync ran beside the COMMIT (it was asked for there)
    fail_sync = true;
    db.insert(Item{2, "committed, its record not durable", 0, "t"});  // SQLite made the COMMIT durable: it stands
    fail_sync = false;
    CHECK(syncs == 2);
    CHECK(db.get<Item>(2).has_value());
    const auto seq = db.health().archive_seq.value_or(-1);
    bool warned = false;
    for (const auto& e : log.events())
        warned = warned || (e.name == "archive" && e.result == resilite::outcome::warning &&
                            e.detail.find(fmt::format("txn {} is committed in the database, but its archive record "
                                                      "could not be made durable",
                                                      seq)) != std::string::npos);
    CHECK(warned);
    // The mark outside the archive names the commit: a heal that finds its record missing says so.
    CHECK(resilite::detail::archive::read_high_water(resilite::detail::archive::high_water_path(dir / "app.db")).seq ==
          seq);
    fail_sync = true;  // still failing: the commit carrying the snapshot syncs before its COMMIT, not beside it
    db.insert(Item{3, "next", 0, "t"});
    fail_sync = false;
    CHECK(syncs == 2);
    auto report = db.check_archive();
    INFO(report.to_text());
    CHECK(report.baseline_seq > seq);  // the next commit wrote a full snapshot first
    CHECK(report.problems.empty());
    CHECK(report.reproduces_live == true);
    const auto baseline = report.baseline_seq;
    db.insert(Item{4, "after", 0, "t"});
    report = db.check_archive();
    CHECK(report.baseline_seq == baseline);  // once
    CHECK(report.reproduces_live == true);
    // The snapshot alone rebuilds the database, whatever became of the record whose sync failed.
    const auto rebuilt = dir / "rebuilt.db";
    const auto r = resilite::rebuild(dir / "app.db.archive", rebuilt);
    CHECK(table_hash(rebuilt, "items", {"id", "name", "score"}) ==
          table_hash(dir / "app.db", "items", {"id", "name", "score"}));
}

TEST_CASE("archive written ahead: a Database closed after a segment sync failed beside its COMMIT writes the "
          "snapshot it owes at close",
          "[archive]") {
    test::temp_dir dir;
    bool fail_sync = false;
    std::int64_t seq = 0;
    {
        auto o = items_options();
        o.inject_archive_sync_failure = [&] { return fail_sync; };
        ItemsDb db{dir / "app.db", o};
        db.insert(Item{1, "synced", 0, "t"});
        fail_sync = true;
        db.insert(Item{2, "committed, its record not durable", 0, "t"});
        fail_sync = false;
        seq = db.health().archive_seq.value_or(-1);
    }  // no commit after the failure: the close's drain carries the snapshot
    const auto report = resilite::inspect_archive(dir / "app.db.archive");
    INFO(report.to_text());
    CHECK(report.baseline_seq > seq);
    CHECK(report.problems.empty());
    ItemsDb db{dir / "app.db", items_options()};
    CHECK(db.check_archive().reproduces_live == true);
}

TEST_CASE("archive written ahead: a process forked while a record's sync runs on the helper thread gets EIO from its "
          "wait at once (its copy of the writer has no helper), syncs on its own thread after, and exits without hanging",
          "[archive]") {
    test::temp_dir dir;
    const auto file = dir / "segment";
    const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, "x", 1) == 1);
    auto sync = std::make_unique<resilite::detail::background_sync>();
    sync->start(fd);  // the first start makes the helper thread
    CHECK(sync->wait() == 0);
    {
        // Forked while the helper waits for work: the child's copy of the condition variable
        // still counts it as a waiter (destroying it there hung).
        const pid_t idle = ::fork();
        REQUIRE(idle >= 0);
        if (idle == 0) {
            ::alarm(60);
            sync.reset();
            ::_exit(0);
        }
        int status = 0;
        REQUIRE(::waitpid(idle, &status, 0) == idle);
        INFO("signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0));
        REQUIRE(WIFEXITED(status));
    }
    sync->start(fd);  // outstanding on the helper while the process forks
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::alarm(60);  // a child that hangs (waiting for a helper it does not have) dies of SIGALRM
        int code = 0;
        if (sync->wait() != EIO) code |= 1;  // not "durable": the child cannot know
        sync->start(fd);                      // runs here, on the child's thread
        if (sync->wait() != 0) code |= 2;
        sync->start(fd, true);
        if (sync->wait() != EIO) code |= 4;  // the injected fault still reported
        sync.reset();                        // the destructor does not join a thread that is not there
        ::_exit(code);
    }
    CHECK(sync->wait() == 0);  // the parent's own sync is unaffected
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    INFO("signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0));
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    sync->start(fd);
    CHECK(sync->wait() == 0);
    sync.reset();
    ::close(fd);
}

TEST_CASE("archive written ahead: a segment sync that fails beside a COMMIT which fails too takes the record back",
          "[archive]") {
    test::temp_dir dir;
    bool fail = false;
    auto o = items_options();
    o.inject_failure = [&](std::string_view op, int) {
        return fail && op == "commit" ? SQLITE_IOERR_WRITE : SQLITE_OK;
    };
    o.inject_archive_sync_failure = [&] { return fail; };
    ItemsDb db{dir / "app.db", o};
    db.insert(Item{1, "kept", 0, "t"});
    const auto before = segments_text(dir / "app.db.archive");
    fail = true;
    CHECK_THROWS_AS(db.transaction([](auto& tx) { tx.insert(Item{2, "reported failed", 0, "t"}); }), resilite::error);
    fail = false;
    CHECK_FALSE(db.get<Item>(2).has_value());
    CHECK(segments_text(dir / "app.db.archive") == before);
    db.insert(Item{3, "next", 0, "t"});
    const auto report = db.check_archive();
    INFO(report.to_text());
    CHECK(report.baseline_seq == 0);  // nothing acknowledged was at risk: no snapshot
    CHECK(report.problems.empty());
    CHECK(report.reproduces_live == true);
}

TEST_CASE("archive written ahead: a COMMIT that stays busy past the retries takes its record back and rolls back",
          "[archive]") {
    test::temp_dir dir;
    bool busy = false;
    auto o = items_options();
    o.settings->retry.max_attempts = 2;
    o.settings->retry.base = std::chrono::milliseconds{0};
    o.settings->retry.cap = std::chrono::milliseconds{0};
    o.inject_failure = [&](std::string_view op, int) { return op == "commit" && busy ? SQLITE_BUSY : SQLITE_OK; };
    ItemsDb db{dir / "app.db", o};
    db.insert(Item{1, "kept", 0, "t"});
    const auto before = segments_text(dir / "app.db.archive");
    {
        auto tx = db.begin();
        tx.insert(Item{2, "busy", 0, "t"});
        busy = true;
        CHECK_THROWS_AS(tx.commit(), resilite::error);
        busy = false;
        CHECK_FALSE(tx.active());  // rolled back with its record: a second commit() cannot acknowledge it
        CHECK_THROWS_AS(tx.commit(), resilite::error);
    }
    CHECK_FALSE(db.get<Item>(2).has_value());
    CHECK(segments_text(dir / "app.db.archive") == before);
    db.insert(Item{3, "next", 0, "t"});
    const auto report = db.check_archive();
    INFO(report.to_text());
    CHECK(report.problems.empty());
    CHECK(report.reproduces_live == true);
}

TEST_CASE("archive segment named for a later month: appended to, not passed over (a clock that ran ahead, a file "
          "renamed), and no open writes a snapshot for it",
          "[archive]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    const auto archive = dir / "app.db.archive";
    { ItemsDb db{path, items_options()}; db.insert(Item{1, "one", 0, "t"}); }
    const auto segments = resilite::detail::archive::list_segments(archive);
    REQUIRE(segments.size() == 1);
    std::filesystem::rename(archive / segments.front(), archive / "2999_01.sql");
    const auto baselines = count_of(segments_text(archive), resilite::detail::archive::baseline_begin);
    for (int i = 2; i <= 4; ++i) {
        test::event_log log;
        auto o = items_options();
        o.observer = log.observer();
        ItemsDb db{path, o};
        db.insert(Item{i, "more", 0, "t"});
        CHECK_FALSE(warned_with(log, "replaced or damaged"));
    }
    CHECK(resilite::detail::archive::list_segments(archive) == std::vector<std::string>{"2999_01.sql"});
    CHECK(count_of(segments_text(archive), resilite::detail::archive::baseline_begin) == baselines);
    ItemsDb db{path, items_options()};
    const auto report = db.check_archive();
    INFO(report.to_text());
    CHECK(report.problems.empty());
    CHECK(report.reproduces_live == true);
}


TEST_CASE("archive written ahead: a record whose transaction never committed (killed before COMMIT) is cancelled at open",
          "[archive][kill]") {
    test::temp_dir dir;
    { ItemsDb db{dir / "app.db", items_options()}; db.insert(Item{1, "kept", 0, "t"}); }
    killed_before_commit<ItemsDb>(dir / "app.db", items_options(),
                                  [](auto& tx) { tx.insert(Item{2, "never committed", 0, "t"}); });
    REQUIRE(segments_text(dir / "app.db.archive").find("never committed") != std::string::npos);
    test::event_log log;
    auto o = items_options();
    o.observer = log.observer();
    ItemsDb db{dir / "app.db", o};
    CHECK_FALSE(db.get<Item>(2).has_value());
    CHECK(segments_text(dir / "app.db.archive").find("never committed") == std::string::npos);
    CHECK(warned_with(log, "never committed"));
    bool kept = false;  // set aside, not deleted
    for (const auto& e : std::filesystem::directory_iterator(dir / "app.db.archive"))
        kept = kept || e.path().filename().string().find(".cancelled-") != std::string::npos;
    CHECK(kept);
    db.insert(Item{3, "after", 0, "t"});
    const auto report = db.check_archive();
    INFO(report.to_text());
    CHECK(report.problems.empty());
    CHECK(report.reproduces_live == true);
}

TEST_CASE("archive written ahead: the several records of a transaction with DDL, killed before COMMIT, are all "
          "cancelled at open",
          "[archive][kill]") {
    // A table dropped needs a full snapshot, a table created its DDL and rows: one transaction's
    // append then writes more than one record, and a crash must take all of them back.
    for (const std::string ddl : {"DROP TABLE extra", "CREATE TABLE more(k INTEGER PRIMARY KEY); INSERT INTO more VALUES(7)"}) {
        INFO(ddl);
        test::temp_dir dir;
        {
            ItemsDb db{dir / "app.db", items_options()};
            db.exec_script("CREATE TABLE extra(k INTEGER PRIMARY KEY, v TEXT)");
            db.exec("INSERT INTO extra VALUES(1, 'x')");
            db.insert(Item{1, "kept", 0, "t"});
        }
        killed_before_commit<ItemsDb>(dir / "app.db", items_options(), [&](auto& tx) {
            tx.insert(Item{2, "never committed", 0, "t"});
            tx.exec_script(ddl);
        });
        REQUIRE(segments_text(dir / "app.db.archive").find("never committed") != std::string::npos);
        ItemsDb db{dir / "app.db", items_options()};
        CHECK_FALSE(db.get<Item>(2).has_value());
        CHECK(segments_text(dir / "app.db.archive").find("never committed") == std::string::npos);
        db.insert(Item{3, "after", 0, "t"});
        const auto report = db.check_archive();
        INFO(report.to_text());
        CHECK(report.problems.empty());
        CHECK(report.reproduces_live == true);
    }
}

TEST_CASE("archive every table: tables the schema does not declare are archived with their DDL, also when created "
          "or altered while open",
          "[archive]") {
    test::temp_dir dir;
    {
        ItemsDb db{dir / "app.db", items_options()};
        db.exec_script("CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL)");
        db.exec("INSERT INTO notes(body) VALUES('first')");
        // Created and filled in one transaction: no capture trigger existed when its rows went in.
        db.transaction([](auto& tx) {
            tx.exec_script("CREATE TABLE extra(k TEXT PRIMARY KEY, v REAL)");
            tx.exec("INSERT INTO extra VALUES('a', 1.5), ('b', 2.5)");
        });
        db.with_connection([](auto& c) { c.exec("INSERT INTO notes(body) VALUES('raw')"); });
        db.exec("INSERT INTO notes(body) VALUES('third')");
        db.transaction([](auto& tx) {
            tx.exec_script("ALTER TABLE notes ADD COLUMN tag TEXT");
            tx.exec("UPDATE notes SET tag = 'late' WHERE id = 1");
        });
        db.exec("DELETE FROM extra WHERE k = 'a'");
        db.insert(Item{1, "declared", 0, "t"});
    }
    const auto text = segments_text(dir / "app.db.archive");
    INFO(text);
    CHECK(text.find("CREATE TABLE IF NOT EXISTS notes") != std::string::npos);
    auto rebuilt = resilite::rebuild(dir / "app.db.archive", dir / "rebuilt.db");
    resilite::sqlite::connection c{dir / "rebuilt.db", SQLITE_OPEN_READONLY};
    CHECK(c.query_all<std::string, std::optional<std::string>>("SELECT body, tag FROM notes ORDER BY id") ==
          std::vector<std::tuple<std::string, std::optional<std::string>>>{
              {"first", "late"}, {"raw", std::nullopt}, {"third", std::nullopt}});
    CHECK(c.query_all<std::string, double>("SELECT k, v FROM extra ORDER BY k") ==
          std::vector<std::tuple<std::string, double>>{{"b", 2.5}});
    CHECK(c.query_one<std::string>("SELECT name FROM items WHERE id = 1") == "declared");
    ItemsDb db{dir / "app.db", items_options()};
    const auto report = db.check_archive();  // every table compared, none left out
    INFO(report.to_text());
    CHECK(report.reproduces_live == true);
}

TEST_CASE("archive every table, batched: tables created outside a transaction (exec_script, exec, with_connection) "
          "are archived with their rows at the next drain, and a user's table named resilite_... in both modes",
          "[archive]") {
    test::temp_dir dir;
    resilite::manual_clock clock;
    const auto fill = [](auto& db) {
        db.exec_script("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)");
        db.exec("INSERT INTO t VALUES(1, 'one')");
        db.with_connection([](auto& c) {
            c.exec("CREATE TABLE u(k INTEGER PRIMARY KEY, v TEXT)");
            c.exec("INSERT INTO u VALUES(1, 'raw')");
        });
        db.exec_script("CREATE TABLE resilite_notes(id INTEGER PRIMARY KEY, body TEXT)");
        for (int i = 1; i <= 3; ++i) db.exec("INSERT INTO resilite_notes(body) VALUES(?)", std::to_string(i));
    };
    const auto check_rebuild = [&](const std::filesystem::path& archive, const std::filesystem::path& target) {
        INFO(segments_text(archive));
        static_cast<void>(resilite::rebuild(archive, target));
        resilite::sqlite::connection c{target, SQLITE_OPEN_READONLY};
        CHECK(c.query_all<std::int64_t, std::string>("SELECT k, v FROM t ORDER BY k") ==
              std::vector<std::tuple<std::int64_t, std::string>>{{1, "one"}, {2, "two"}});
        CHECK(c.query_all<std::int64_t, std::string>("SELECT k, v FROM u ORDER BY k") ==
              std::vector<std::tuple<std::int64_t, std::string>>{{1, "raw"}});
        CHECK(c.query_all<std::string>("SELECT body FROM resilite_notes ORDER BY id") ==
              std::vector<std::string>{"1", "2", "3"});
    };
    {
        BatchedDb db{dir / "batched.db", batched_options(clock)};
        fill(db);
        static_cast<void>(db.drain_archive());
        CHECK(db.health().archive_pending == 0);
        db.exec("INSERT INTO t VALUES(2, 'two')");
        const auto report = db.check_archive();
        INFO(report.to_text());
        CHECK(report.reproduces_live == true);
    }
    check_rebuild(dir / "batched.db.archive", dir / "rebuilt-batched.db");
    {
        ItemsDb db{dir / "ahead.db", items_options()};
        fill(db);
        db.exec("INSERT INTO t VALUES(2, 'two')");
    }
    check_rebuild(dir / "ahead.db.archive", dir / "rebuilt-ahead.db");
}

TEST_CASE("archive every table: a change of case in a NOCASE key or column is archived (compared as bytes)",
          "[archive]") {
    test::temp_dir dir;
    {
        ItemsDb db{dir / "app.db", items_options()};
        db.exec_script("CREATE TABLE tags(k TEXT PRIMARY KEY COLLATE NOCASE, v INTEGER);"
                       "CREATE TABLE names(id INTEGER PRIMARY KEY, n TEXT COLLATE NOCASE)");
        db.exec("INSERT INTO tags VALUES('abc', 1)");
        db.exec("INSERT INTO names VALUES(1, 'ann')");
        db.exec("UPDATE tags SET k = 'ABC'");
        db.exec("UPDATE names SET n = 'Ann'");
    }
    static_cast<void>(resilite::rebuild(dir / "app.db.archive", dir / "rebuilt.db"));
    resilite::sqlite::connection c{dir / "rebuilt.db", SQLITE_OPEN_READONLY};
    CHECK(c.query_all<std::string, std::int64_t>("SELECT k, v FROM tags") ==
          std::vector<std::tuple<std::string, std::int64_t>>{{"ABC", 1}});
    CHECK(c.query_one<std::string>("SELECT n FROM names WHERE id = 1") == "Ann");
    ItemsDb db{dir / "app.db", items_options()};
    const auto report = db.check_archive();
    INFO(report.to_text());
    CHECK(report.reproduces_live == true);
}

TEST_CASE("archive every table: INSERT OR REPLACE that changes a key's case or type, and an update that changes only "
          "a value's type, rebuild as the live database holds them",
          "[archive]") {
    test::temp_dir dir;
    // Each row as text: key, its type, value, its type (SQLite compares 'DEF' = 'dEF' under NOCASE
    // and 1 = 1.0; the rows must be the same bytes and types all the same).
    const auto rows = [](const std::filesystem::path& db, const char* table) {
        resilite::sqlite::connection c{db, SQLITE_OPEN_READONLY};
        std::vector<std::string> out;
        for (auto& [k, kt, v, vt] : c.query_all<std::string, std::string, std::string, std::string>(
                 fmt::format("SELECT CAST(k AS TEXT), typeof(k), CAST(v AS TEXT), typeof(v) FROM {} ORDER BY 1", table)))
            out.push_back(fmt::format("{}:{}={}:{}", k, kt, v, vt));
        return out;
    };
    {
        ItemsDb db{dir / "app.db", items_options()};
        db.exec_script("CREATE TABLE nk(k TEXT PRIMARY KEY COLLATE NOCASE, v);"
                       "CREATE TABLE nw(k TEXT PRIMARY KEY COLLATE NOCASE, v) WITHOUT ROWID;"
                       "CREATE TABLE ak(k PRIMARY KEY, v);"
                       "CREATE TABLE av(k INTEGER PRIMARY KEY, v);"
                       // Declared INTEGER, but no rowid: the key keeps text, under its collation.
                       "CREATE TABLE ik(k INTEGER COLLATE NOCASE PRIMARY KEY, v) WITHOUT ROWID");
        for (const char* t : {"nk", "nw", "ik"}) {
            db.exec(fmt::format("INSERT INTO {} VALUES('DEF', 1)", t));
            db.exec(fmt::format("INSERT OR REPLACE INTO {} VALUES('dEF', 2)", t));
        }
        db.exec("INSERT INTO ak VALUES(1, 'int')");
        db.exec("INSERT OR REPLACE INTO ak VALUES(1.0, 'real')");
        db.exec("INSERT INTO ak VALUES(2, 'two')");
        db.exec("UPDATE ak SET k = 2.0 WHERE k = 2");
        db.exec("INSERT INTO av VALUES(1, 1)");
        db.exec("UPDATE av SET v = 1.0 WHERE k = 1");
    }
    static_cast<void>(resilite::rebuild(dir / "app.db.archive", dir / "rebuilt.db"));
    for (const char* t : {"nk", "nw", "ak", "av", "ik"}) {
        CAPTURE(t);
        CHECK(rows(dir / "rebuilt.db", t) == rows(dir / "app.db", t));
    }
    CHECK(rows(dir / "app.db", "nk") == std::vector<std::string>{"dEF:text=2:integer"});
    CHECK(rows(dir / "app.db", "av") == std::vector<std::string>{"1:integer=1.0:real"});
}

TEST_CASE("archive capture: triggers of an older version put back while a process runs (versions mixed) are "
          "rewritten at its next commit with a full snapshot, which holds what they missed",
          "[archive]") {
    test::temp_dir dir;
    ItemsDb db{dir / "app.db", items_options()};
    db.exec_script("CREATE TABLE loose(id INTEGER PRIMARY KEY, v)");
    db.exec("INSERT INTO loose VALUES(1, 2)");
    // What an older process's triggers look like: values compared without their type.
    db.with_connection([](auto& c) {
        const auto sql = c.template query_one<std::string>(
                              "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE "
                              "'resilite\\_archive\\_loose\\_update' ESCAPE '\\'")
                             .value();
        auto old = sql;
        for (auto at = old.find(" OR typeof("); at != std::string::npos; at = old.find(" OR typeof(")) {
            const auto end = old.find(')', old.find("typeof(", at + 12)) + 1;  // "... IS NOT typeof(NEW.x)"
            old.erase(at, end - at);
        }
        REQUIRE(old != sql);
        c.exec_script(fmt::format("DROP TRIGGER \"resilite_archive_loose_update\"; {}", old));
        c.exec("UPDATE loose SET v = 2.0 WHERE id = 1");  // missed by the older trigger
    });
    db.exec("INSERT INTO loose VALUES(2, 3)");  // the running process's next commit
    const auto report = db.check_archive();
    INFO(report.to_text());
    CHECK(report.reproduces_live == true);
    static_cast<void>(resilite::rebuild(dir / "app.db.archive", dir / "rebuilt.db"));
    resilite::sqlite::connection c{dir / "rebuilt.db", SQLITE_OPEN_READONLY};
    CHECK(c.query_one<std::string>("SELECT typeof(v) FROM loose WHERE id = 1") == "real");
}

TEST_CASE("archive written ahead: a connection pragma (foreign_keys) given to exec runs as given, not inside the "
          "record's transaction (where SQLite ignores it without a word), and journal_mode and VACUUM stay refused",
          "[archive]") {
    test::temp_dir dir;
    ItemsDb db{dir / "app.db", items_options()};
    db.exec_script("CREATE TABLE parent(id INTEGER PRIMARY KEY);"
                   "CREATE TABLE child(id INTEGER PRIMARY KEY, p INTEGER REFERENCES parent(id))");
    db.exec("PRAGMA foreign_keys = ON");
    CHECK(db.query_one<int>("PRAGMA foreign_keys") == 1);
    CHECK_THROWS_AS(db.exec("INSERT INTO child VALUES(1, 42)"), resilite::error);  // an orphan
    db.exec("  /* a comment first */ pragma foreign_keys = OFF");
    CHECK(db.query_one<int>("PRAGMA foreign_keys") == 0);
    db.exec("INSERT INTO child VALUES(1, 42)");
    // What the open set and checked, and the rowids a table without a key is archived by, stay.
    CHECK_THROWS_AS(db.exec("PRAGMA journal_mode = DELETE"), resilite::error);
    CHECK(db.query_one<std::string>("PRAGMA journal_mode") == "wal");
    CHECK_THROWS_AS(db.exec("VACUUM"), resilite::error);
    const auto report = db.check_archive();
    INFO(report.to_text());
    CHECK(report.reproduces_live == true);
}

TEST_CASE("archive every table: an AUTOINCREMENT table (and sqlite_sequence, which SQLite makes for it) rebuilds",
          "[archive]") {
    test::temp_dir dir;
    {
        ItemsDb db{dir / "app.db", items_options()};
        db.exec_script("CREATE TABLE events(id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT);"
                       "CREATE TABLE other(x INTEGER)");  // created by the same script
        for (const char* what : {"one", "two", "three"})
            db.exec("INSERT INTO events(what) VALUES(?)", std::string{what});
        db.exec("DELETE FROM events WHERE id = 3");
        db.exec("INSERT INTO other VALUES(7)");
    }
    const auto r = resilite::rebuild(dir / "app.db.archive", dir / "rebuilt.db");
    resilite::sqlite::connection c{dir / "rebuilt.db", SQLITE_OPEN_READONLY};
    CHECK(c.query_all<std::int64_t, std::string>("SELECT id, what FROM events ORDER BY id") ==
          std::vector<std::tuple<std::int64_t, std::string>>{{1, "one"}, {2, "two"}});
    CHECK(c.query_one<std::int64_t>("SELECT seq FROM sqlite_sequence WHERE name = 'events'") == 3);  // 3 never reused
    CHECK(c.query_one<std::int64_t>("SELECT x FROM other") == 7);
    ItemsDb db{dir / "app.db", items_options()};
    const auto report = db.check_archive();
    INFO(report.to_text());
    CHECK(report.reproduces_live == true);
}

TEST_CASE("archive every table: rows that INSERT OR REPLACE and UPDATE OR REPLACE delete through another unique "
          "constraint (no delete trigger runs for them) are gone from the rebuild too",
          "[archive]") {
    test::temp_dir dir;
    {
        ItemsDb db{dir / "app.db", items_options()};
        db.exec_script("CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT);"
                       "CREATE TABLE codes(code TEXT PRIMARY KEY, owner INTEGER UNIQUE) WITHOUT ROWID");
        db.exec("INSERT INTO users VALUES(1, 'ann@example.com', 'Ann'), (2, 'bob@example.com', 'Bob'), "
                "(3, 'cy@example.com', 'Cy')");
        db.exec("INSERT OR REPLACE INTO users VALUES(4, 'ann@example.com', 'Ann again')");  // row 1 goes
        db.exec("UPDATE OR REPLACE users SET email = 'bob@example.com' WHERE id = 3");      // row 2 goes
        db.exec("REPLACE INTO users VALUES(3, 'cy@example.com', 'Cy back')");               // same key
        db.exec("INSERT INTO codes VALUES('a', 1), ('b', 2)");
        db.exec("INSERT OR REPLACE INTO codes VALUES('c', 1)");  // 'a' goes
        db.exec("INSERT OR IGNORE INTO users VALUES(5, 'cy@example.com', 'ignored')");
    }
    static_cast<void>(resilite::rebuild(dir / "app.db.archive", dir / "rebuilt.db"));
    resilite::sqlite::connection c{dir / "rebuilt.db", SQLITE_OPEN_READONLY};
    CHECK(c.query_all<std::int64_t, std::string, std::string>("SELECT id, email, name FROM users ORDER BY id") ==
          std::vector<std::tuple<std::int64_t, std::string, std::string>>{{3, "cy@example.com", "Cy back"},
                                                                          {4, "ann@example.com", "Ann again"}});
    CHECK(c.query_all<std::string, std::int64_t>("SELECT code, owner FROM codes ORDER BY code") ==
          std::vector<std::tuple<std::string, std::int64_t>>{{"b", 2}, {"c", 1}});
    ItemsDb db{dir / "app.db", items_options()};
    const auto report = db.check_archive();
    INFO(report.to_text());
    CHECK(report.problems.empty());
    CHECK(report.reproduces_live == true);
}

TEST_CASE("archive segment name taken by a directory: the database opens, warns and keeps the outbox",
          "[archive]") {
    test::temp_dir dir;
    resilite::manual_clock clock;
    test::event_log log;
    auto o = batched_options(clock);
    o.observer = log.observer();
    std::filesystem::create_directories(dir / "app.db.archive" / "2026_11.sql");
    BatchedDb db{dir / "app.db", o};
    CHECK(warned_with(log, "2026_11.sql"));
    db.insert(Item{1, "kept", 0, "t"});
    CHECK_THROWS_AS(db.drain_archive(), resilite::error);
    CHECK(db.health().archive_pending >= 2);  // the schema record and the row
    std::filesystem::remove(dir / "app.db.archive" / "2026_11.sql");
    static_cast<void>(db.drain_archive());
    CHECK(db.health().archive_pending == 0);
    const auto report = db.check_archive();
    INFO(report.to_text());
    CHECK(report.problems.empty());
    CHECK(report.reproduces_live == true);
}

TEST_CASE("archive segment that is a symbolic link is never followed: nothing is appended to its target",
          "[archive]") {
    test::temp_dir dir;
    resilite::manual_clock clock;
    test::event_log log;
    auto o = batched_options(clock);
    o.observer = log.observer();
    const auto victim = dir / "unrelated.txt";
    write_all(victim, "someone else's file\n");
    std::filesystem::create_directories(dir / "app.db.archive");
    std::filesystem::create_symlink(victim, dir / "app.db.archive" / "2026_11.sql");
    BatchedDb db{dir / "app.db", o};
    CHECK(warned_with(log, "symbolic link"));
    db.insert(Item{1, "kept", 0, "t"});
    CHECK_THROWS_AS(db.drain_archive(), resilite::error);
    CHECK(read_all(victim) == "someone else's file\n");
    CHECK(db.health().archive_pending >= 2);
    // A reader does not follow it either, and says so.
    const auto report = resilite::inspect_archive(dir / "app.db.archive");
    CHECK(report.to_text().find("symbolic link") != std::string::npos);
}

TEST_CASE("archive directory that is a symbolic link is never followed: open fails, nothing written through it, "
          "a rebuild does not read it",
          "[archive]") {
    test::temp_dir dir;
    const auto elsewhere = dir / "elsewhere";
    {  // An archive that is real, elsewhere: a rebuild from its own path works.
        ItemsDb db{dir / "real.db", items_options()};
        db.insert(Item{1, "one", 1.5, "t"});
        std::filesystem::rename(db.archive_directory(), elsewhere);
    }
    std::filesystem::create_symlink(elsewhere, dir / "app.db.archive");
    const auto before = std::distance(std::filesystem::directory_iterator(elsewhere), {});
    try {
        ItemsDb db{dir / "app.db", items_options()};
        FAIL("opened with an archive directory that is a symbolic link");
    } catch (const resilite::error& e) {
        INFO(e.what());
        CHECK(e.klass() == resilite::error_class::permission);
        CHECK_THAT(std::string{e.what()}, Catch::Contains("symbolic link"));
    }
    CHECK(std::distance(std::filesystem::directory_iterator(elsewhere), {}) == before);
    CHECK_THROWS_AS(resilite::rebuild(dir / "app.db.archive", dir / "rebuilt.db"), resilite::error);
    CHECK_NOTHROW(resilite::rebuild(elsewhere, dir / "rebuilt-from-real.db"));
    // A check says it is a link, not that the archive holds no record.
    const auto checked = resilite::inspect_archive(dir / "app.db.archive");
    CHECK_FALSE(checked.rebuildable());
    CHECK_THAT(checked.to_text(), Catch::Contains("is a symbolic link; resilite never follows one"));
}

TEST_CASE("archive: a directory removed while open gets a full snapshot, the archive alone rebuilds every row",
          "[archive][identity]") {
    test::temp_dir dir;
    test::event_log log;
    auto o = items_options();
    o.observer = log.observer();
    {
        ItemsDb db{dir / "app.db", o};
        for (int i = 1; i <= 5; ++i)
            db.insert(Item{i, fmt::format("r{}", i), i / 2.0, "s"});
        std::filesystem::remove_all(db.archive_directory());
        for (int i = 6; i <= 10; ++i)
            db.insert(Item{i, fmt::format("r{}", i), i / 2.0, "s"});
    }
    bool said = false;
    for (const auto& e : log.events())
        said = said || (e.name == "archive" && e.result == resilite::outcome::warning &&
                        e.detail.find("removed or replaced") != std::string::npos);
    CHECK(said);
    const auto rebuilt = dir / "rebuilt.db";
    static_cast<void>(resilite::rebuild(dir / "app.db.archive", rebuilt));
    CHECK(table_hash(rebuilt, "items", {"id", "name", "score"}) ==
          table_hash(dir / "app.db", "items", {"id", "name", "score"}));
    resilite::sqlite::connection c{rebuilt};
    CHECK(c.query_one<int>("SELECT count(*) FROM items") == 10);
}

TEST_CASE("archive: a directory removed while open, then the commit that would carry its snapshot fails: the next "
          "one carries it, the archive alone rebuilds every row",
          "[archive][identity]") {
    test::temp_dir dir;
    test::event_log log;
    auto o = items_options();
    o.observer = log.observer();
    bool armed = false;
    o.inject_failure = [&](std::string_view operation, int) {
        return armed && operation == "commit" ? SQLITE_CONSTRAINT : SQLITE_OK;
    };
    {
        ItemsDb db{dir / "app.db", o};
        for (int i = 1; i <= 5; ++i)
            db.insert(Item{i, fmt::format("r{}", i), i / 2.0, "s"});
        std::filesystem::remove_all(db.archive_directory());
        armed = true;
        CHECK_THROWS_AS(db.transaction([](auto& tx) { tx.insert(Item{6, "r6", 3.0, "s"}); }), resilite::error);
        armed = false;
        for (int i = 7; i <= 10; ++i)
            db.insert(Item{i, fmt::format("r{}", i), i / 2.0, "s"});
    }
    for (const auto& e : log.events())
        if (e.name == "archive" && e.detail.find("removed or replaced") != std::string::npos)
            CHECK_THAT(e.detail, !Catch::Contains("was written first"));  // not before it is
    const auto rebuilt = dir / "rebuilt.db";
    static_cast<void>(resilite::rebuild(dir / "app.db.archive", rebuilt));
    CHECK(table_hash(rebuilt, "items", {"id", "name", "score"}) ==
          table_hash(dir / "app.db", "items", {"id", "name", "score"}));
    resilite::sqlite::connection c{rebuilt};
    CHECK(c.query_one<int>("SELECT count(*) FROM items") == 9);
}

TEST_CASE("archive behind the database (its last records lost, an older copy put back): the next open writes a "
          "full snapshot, the archive alone rebuilds every row",
          "[archive]") {
    // Also what is left when a COMMIT failed at its sync (its record taken back) but the
    // transaction was in the database after all, once the process died and SQLite recovered the
    // log (found by the power-loss trial "archive after power loss at a random sync").
    test::temp_dir dir;
    const auto archive = dir / "app.db.archive";
    {
        ItemsDb db{dir / "app.db", items_options()};
        db.insert(Item{1, "r1", 0.5, "s"});
    }
    std::filesystem::copy(archive, dir / "older", std::filesystem::copy_options::recursive);
    {
        ItemsDb db{dir / "app.db", items_options()};
        db.insert(Item{2, "r2", 1.0, "s"});
        db.insert(Item{3, "r3", 1.5, "s"});
    }
    std::filesystem::remove_all(archive);
    std::filesystem::rename(dir / "older", archive);
    test::event_log log;
    auto o = items_options();
    o.observer = log.observer();
    {
        ItemsDb db{dir / "app.db", o};
        CHECK(warned_with(log, "a full snapshot was written"));
        db.insert(Item{4, "r4", 2.0, "s"});
        const auto report = db.check_archive();
        INFO(report.to_text());
        CHECK(report.reproduces_live == true);
    }
    const auto rebuilt = dir / "rebuilt.db";
    static_cast<void>(resilite::rebuild(archive, rebuilt));
    CHECK(table_hash(rebuilt, "items", {"id", "name", "score"}) ==
          table_hash(dir / "app.db", "items", {"id", "name", "score"}));
    resilite::sqlite::connection c{rebuilt};
    CHECK(c.query_one<int>("SELECT count(*) FROM items") == 4);
}

TEST_CASE("archive: two databases never mix their records in one directory", "[archive][identity]") {
    test::temp_dir dir;
    const auto shared = (dir / "shared.archive").string();
    auto oa = items_options();
    oa.settings->archive.directory = shared;
    auto ob = oa;
    {
        ItemsDb a{dir / "a.db", oa};
        for (int i = 1; i <= 5; ++i) a.insert(Item{i, fmt::format("a{}", i), 1.0, "s"});
        // Acknowledged means archived: a database whose archive directory holds another
        // database's archive is refused at open, not opened with archiving off (its commits
        // would be acknowledged and archived nowhere).
        try {
            ItemsDb b{dir / "b.db", ob};
            b.insert(Item{1, "b1", 2.0, "s"});
            FAIL("a database whose archive directory belongs to another database opened");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == resilite::error_class::archive);
            const std::string note = e.technical().note;
            INFO(note);
            CHECK(note.find("belongs to another database") != std::string::npos);
            CHECK(note.find(shared) != std::string::npos);
            CHECK(note.find("settings().archive.directory") != std::string::npos);
        }
        for (int i = 6; i <= 7; ++i) a.insert(Item{i, fmt::format("a{}", i), 1.0, "s"});
    }
    const auto rebuilt = dir / "rebuilt.db";
    const auto r = resilite::rebuild(shared, rebuilt);
    CHECK(r.problems.empty());
    CHECK(table_hash(rebuilt, "items", {"id", "name", "score"}) ==
          table_hash(dir / "a.db", "items", {"id", "name", "score"}));
    // With a directory of its own, b opens and archives everything it holds.
    auto own = items_options();
    {
        ItemsDb b{dir / "b.db", own};
        for (int i = 1; i <= 5; ++i) b.insert(Item{i, fmt::format("b{}", i), 2.0, "s"});
    }
    const auto rebuilt_b = dir / "rebuilt-b.db";
    static_cast<void>(resilite::rebuild(dir / "b.db.archive", rebuilt_b));
    CHECK(table_hash(rebuilt_b, "items", {"id", "name", "score"}) ==
          table_hash(dir / "b.db", "items", {"id", "name", "score"}));
}

// Doubles that read back from the archive bit for bit. Debian's SQLite 3.40 reads decimal text
// with a conversion that is not correctly rounded, so the shortest exact form of a double is not
// enough: -821182.317727955 reads back as -821182.3177279551, and about 1 in 200 random bit
// patterns change.
namespace {

std::vector<double> awkward_reals(std::size_t random_count) {
    std::vector<double> out = {-821182.317727955, 5e-324, -5e-324, 2.2250738585072014e-308,
                               4.442951992559578e-302, 1.7976931348623157e308, 0.1 + 0.2, 1e23, -1e-300};
    std::mt19937_64 bits{20260419};
    while (out.size() < random_count) {
        const auto d = std::bit_cast<double>(bits());
        if (std::isfinite(d) && d != 0) out.push_back(d);  // a REAL column keeps 0.0 and -0.0 as 0
    }
    return out;
}

std::uint64_t bits_of(double d) {
    return std::bit_cast<std::uint64_t>(d);
}

// The scores of `db` by id; every one must be a REAL.
std::vector<double> scores_of(const std::filesystem::path& db) {
    resilite::sqlite::connection c{db, SQLITE_OPEN_READONLY};
    CHECK(c.query_one<std::int64_t>("SELECT count(*) FROM items WHERE typeof(score) <> 'real'") == 0);
    return c.query_all<double>("SELECT score FROM items ORDER BY id");
}

std::size_t count_different(const std::vector<double>& want, const std::vector<double>& got) {
    REQUIRE(got.size() == want.size());
    std::size_t different = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
        if (bits_of(got[i]) != bits_of(want[i])) {
            if (++different <= 5) UNSCOPED_INFO(fmt::format("{} came back as {}", want[i], got[i]));
        }
    }
    return different;
}

}  // namespace

// A database whose items hold `reals` as scores (id = index), archived.
void write_reals(const std::filesystem::path& db_path, const std::vector<double>& reals) {
    ItemsDb db{db_path, items_options()};
    db.transaction([&](auto& tx) {
        for (std::size_t i = 0; i < reals.size(); ++i)
            tx.exec("INSERT INTO items(id, name, score, token) VALUES(?, 'r', ?, 't')", static_cast<std::int64_t>(i),
                    reals[i]);
    });
}

TEST_CASE("archive reals: random bit patterns and -821182.317727955 come back bit for bit after a rebuild",
          "[archive]") {
    test::temp_dir dir;
    const auto reals = awkward_reals(4000);
    write_reals(dir / "app.db", reals);
    REQUIRE(count_different(reals, scores_of(dir / "app.db")) == 0);  // the live database holds them
    const auto rebuilt = dir / "rebuilt.db";
    static_cast<void>(resilite::rebuild(dir / "app.db.archive", rebuilt));
    CHECK(count_different(reals, scores_of(rebuilt)) == 0);
}

TEST_CASE("archive reals: the sqlite3 shell replaying the archive gets the same bits", "[archive]") {
    if (!std::filesystem::exists("/usr/bin/sqlite3")) {
        WARN("/usr/bin/sqlite3 not installed; skipped");
        return;
    }
    test::temp_dir dir;
    const auto reals = awkward_reals(4000);
    write_reals(dir / "app.db", reals);
    const auto script = dir / "archive.sql";
    write_all(script, segments_text(dir / "app.db.archive"));
    const auto shell_db = dir / "shell.db";
    const auto command = fmt::format("/usr/bin/sqlite3 '{}' < '{}'", shell_db.string(), script.string());
    REQUIRE(std::system(command.c_str()) == 0);
    CHECK(count_different(reals, scores_of(shell_db)) == 0);
}

TEST_CASE("archive reals: a million random bit patterns, each written as SQLite reads it back exactly",
          "[archive]") {
    namespace fmtr = resilite::detail::archive;
    resilite::sqlite::connection c{":memory:"};
    const auto reals = awkward_reals(1'000'000);
    // SQLite evaluates the texts as literals (the replay's path), many per statement.
    constexpr std::size_t batch = 500;
    std::size_t different = 0, products = 0;
    std::string select;
    std::vector<std::string> texts;
    for (std::size_t from = 0; from < reals.size(); from += batch) {
        const auto to = std::min(reals.size(), from + batch);
        select = "SELECT ";
        for (std::size_t i = from; i < to; ++i) {
            std::string text;
            fmtr::append_real(text, c, reals[i]);
            if (text.find('(') != std::string::npos) ++products;
            REQUIRE(text.find_first_of(".e") != std::string::npos);  // a REAL, never an integer
            select += (i == from ? "" : ",") + text;
        }
        auto stmt = c.prepare(select);
        REQUIRE(stmt.step());
        for (std::size_t i = from; i < to; ++i) {
            const int col = static_cast<int>(i - from);
            REQUIRE(sqlite3_column_type(stmt.native_handle(), col) == SQLITE_FLOAT);
            if (bits_of(sqlite3_column_double(stmt.native_handle(), col)) != bits_of(reals[i]) && ++different <= 5)
                UNSCOPED_INFO(fmt::format("{} reads back as {}", reals[i], sqlite3_column_double(stmt.native_handle(), col)));
        }
    }
    CHECK(different == 0);
    INFO("written as a product: " << products << " of " << reals.size());
    CHECK(products < reals.size() / 100);  // only values below about 1e-290 need a product
    // The writer checks its texts with CAST(text AS REAL); a literal reads the same text the
    // same way (both are sqlite3AtoF), including the shortest forms that SQLite gets wrong.
    std::size_t disagree = 0, shortest_wrong = 0;
    for (std::size_t from = 0; from < 200'000; from += batch) {
        select = "SELECT ";
        texts.clear();
        for (std::size_t i = from; i < from + batch; ++i) {
            texts.push_back(fmt::format("{}", std::fabs(reals[i])));
            if (texts.back().find_first_of(".e") == std::string::npos) texts.back() += ".0";
            select += fmt::format("{}{},CAST('{}' AS REAL)", i == from ? "" : ",", texts.back(), texts.back());
        }
        auto stmt = c.prepare(select);
        REQUIRE(stmt.step());
        for (int i = 0; i < static_cast<int>(batch); ++i) {
            const double literal = sqlite3_column_double(stmt.native_handle(), 2 * i);
            disagree += bits_of(literal) != bits_of(sqlite3_column_double(stmt.native_handle(), 2 * i + 1)) ? 1 : 0;
            shortest_wrong += bits_of(literal) != bits_of(std::fabs(reals[from + static_cast<std::size_t>(i)])) ? 1 : 0;
        }
    }
    CHECK(disagree == 0);
    INFO("shortest forms SQLite reads back wrong: " << shortest_wrong << " of 200000");
    CHECK(shortest_wrong > 0);  // else this SQLite rounds correctly and the test proves little
}

namespace {
// The descriptor this process has open on `file` (-1: none), found through /proc/self/fd.
int descriptor_of(const std::filesystem::path& file) {
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
        std::error_code ec;
        const auto target = std::filesystem::read_symlink(e.path(), ec);
        if (!ec && target == file) return std::stoi(e.path().filename().string());
    }
    return -1;
}
}  // namespace

TEST_CASE("archive written ahead: the segment kept open between commits is used only while it is the file at "
          "the path and the descriptor still refers to it",
          "[archive]") {
    test::temp_dir dir;
    ItemsDb db{dir / "app.db", items_options()};
    db.insert(Item{1, "first", 0, "t"});
    const auto archive = dir / "app.db.archive";
    const auto segments = resilite::detail::archive::list_segments(archive);
    REQUIRE(segments.size() == 1);
    const auto seg = std::filesystem::canonical(archive / segments.front());
    REQUIRE(descriptor_of(seg) >= 0);  // kept open after the commit

    SECTION("a segment renamed over with the same size (as a repair does) gets the next record") {
        const auto text = read_all(seg);
        const auto copy = archive / "replacement.tmp";
        write_all(copy, text);
        std::filesystem::rename(copy, seg);
        db.insert(Item{2, "after the rename", 0, "t"});
        CHECK(read_all(seg).find("after the rename") != std::string::npos);
    }
    SECTION("a descriptor closed behind the library's back and reused elsewhere never gets a record") {
        const int fd = descriptor_of(seg);
        REQUIRE(::close(fd) == 0);
        // The lowest free number: the one just closed, now another file's.
        const auto other = dir / "other.txt";
        const int reused = ::open(other.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        REQUIRE(reused == fd);
        db.insert(Item{2, "after the close", 0, "t"});
        CHECK(std::filesystem::file_size(other) == 0);
        CHECK(read_all(seg).find("after the close") != std::string::npos);
        CHECK(::fcntl(reused, F_GETFD) != -1);  // the other file's descriptor was not closed by the library
        ::close(reused);
    }
    const auto report = db.check_archive();
    INFO(report.to_text());
    CHECK(report.problems.empty());
    CHECK(report.reproduces_live == true);
}

}  // namespace archive_capture_tests
