// Healing: a damaged database is quarantined (never deleted), rebuilt from the newest good
// backup plus the archive tail (or older backups, or the archive alone), verified and swapped
// in, at open and after damage seen at run time; a circuit breaker stops healing that cannot
// succeed, and its error is the manual recovery steps.

#include "archive_support.hpp"

#include <resilite/resilite.hpp>
#include <resilite/testing/corruption.hpp>

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <random>
#include <thread>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace heal_healing_tests {

using namespace test::archive;
using test::manual_durability;
using resilite::error_class;

namespace {

using backups_on_demand = resilite::backup<resilite::online_backup<>, resilite::on_demand>;
using HealDb = resilite::Database<resilite::schema<items, logs>, resilite::archive<>, backups_on_demand,
                                  resilite::healing<>, common, manual_durability>;
using ArchiveOnlyHealDb =
    resilite::Database<resilite::schema<items, logs>, resilite::archive<>, resilite::healing<>, common, manual_durability>;
using BackupOnlyHealDb = resilite::Database<resilite::schema<items, logs>, backups_on_demand, resilite::healing<>,
                                            common, manual_durability>;
using LossyHealDb = resilite::Database<resilite::schema<items, logs>, backups_on_demand,
                                       resilite::healing<resilite::accept_loss_since_backup>, common, manual_durability>;
using NothingHealDb = resilite::Database<resilite::schema<items, logs>, resilite::healing<>, common, manual_durability>;
// An archive and backups, no healing: what a damaged or behind database does at open without it.
using ArchivedDb = resilite::Database<resilite::schema<items, logs>, resilite::archive<>, backups_on_demand, common,
                                      manual_durability>;
// Heals that may lose the commits after the newest backup, saying so.
using AcceptingDb = resilite::Database<resilite::schema<items, logs>, resilite::archive<>, backups_on_demand,
                                       resilite::healing<resilite::accept_loss_since_backup>, common,
                                       manual_durability>;
// Time counted on the manual clock: a heal's time limit runs out when a test says.
using ClockedDb = resilite::Database<resilite::schema<items, logs>, resilite::archive<>, backups_on_demand,
                                     resilite::healing<resilite::refuse_loss, 3, 300>, common, manual_durability,
                                     resilite::manual_clock>;

template <class Db>
typename Db::options logged(const test::event_log& log) {
    typename Db::options o;
    o.observer = log.observer();
    return o;
}

template <class Db>
void insert_items(Db& db, int from, int to) {
    for (int i = from; i <= to; ++i)
        db.insert(Item{i, fmt::format("item {}", i), i * 1.5, fmt::format("secret {}", i)});
}

// id -> name of every row of items, read straight from the file.
std::map<std::int64_t, std::string> rows_of(const std::filesystem::path& db) {
    resilite::sqlite::connection c{db, SQLITE_OPEN_READONLY};
    std::map<std::int64_t, std::string> out;
    for (auto& [id, name] : c.query_all<std::int64_t, std::string>("SELECT id, name FROM items"))
        out[id] = name;
    return out;
}

std::map<std::int64_t, std::string> expected_rows(int from, int to) {
    std::map<std::int64_t, std::string> out;
    for (int i = from; i <= to; ++i)
        out[i] = fmt::format("item {}", i);
    return out;
}

bool integrity_ok(const std::filesystem::path& db) {
    resilite::sqlite::connection c{db, SQLITE_OPEN_READONLY};
    return c.query_one<std::string>("PRAGMA integrity_check") == "ok";
}

std::size_t lines_in(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);)
        n += line.empty() ? 0 : 1;
    return n;
}

std::vector<std::filesystem::path> quarantined(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir / "quarantine", ec))
        out.push_back(e.path());
    return out;
}

// Whether this SQLite has FTS5 (Debian's does; a build without it skips those tests).
bool has_fts5() {
    resilite::sqlite::connection c{":memory:"};
    return c.query_one<int>("SELECT count(*) FROM pragma_module_list WHERE name = 'fts5'") == 1;
}

// A database with 40 committed items: 1..20 before a backup, 21..40 after it.
template <class Db>
void history_with_backup(const std::filesystem::path& path) {
    Db db{path};
    insert_items(db, 1, 20);
    db.insert(Log{"before the backup"});
    static_cast<void>(db.backup_now());
    insert_items(db, 21, 40);
    db.insert(Log{"after the backup"});
}

// The root page of a table, zeroed: every read of the table meets it.
void zero_root_page(const std::filesystem::path& path, const std::string& table) {
    std::uint32_t root = 0;
    {
        resilite::sqlite::connection c{path, SQLITE_OPEN_READONLY};
        root = static_cast<std::uint32_t>(
            c.query_one<std::int64_t>("SELECT rootpage FROM sqlite_master WHERE name = ?", table).value_or(0));
    }
    resilite::testing::zero_page(path, root);
}

// 60 commits with backups after 20 and 40, then the archive's one segment cut to 60 % of its
// bytes, and the database's header damaged.
template <class Db>
void sixty_commits_archive_cut(const std::filesystem::path& path) {
    {
        Db db{path};
        insert_items(db, 1, 20);
        static_cast<void>(db.backup_now());
        insert_items(db, 21, 40);
        static_cast<void>(db.backup_now());
        insert_items(db, 41, 60);
    }
    const auto archive = std::filesystem::path{path.string() + ".archive"};
    const auto segments = resilite::detail::archive::list_segments(archive);
    REQUIRE(segments.size() == 1);
    const auto text = read_all(archive / segments.front());
    write_all(archive / segments.front(), text.substr(0, text.size() * 6 / 10));  // the tail cut
    std::mt19937_64 rng{7};
    resilite::testing::overwrite_header(path, rng);
}

void damage_header(const std::filesystem::path& path, std::uint64_t seed = 7) {
    std::mt19937_64 rng{seed};
    resilite::testing::overwrite_header(path, rng);
}

}  // namespace

TEST_CASE("heal at open: a record written ahead of a COMMIT a crash stopped is replayed whole, and the report says "
          "nothing but the archive vouches for it",
          "[heal][kill]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    history_with_backup<HealDb>(path);
    killed_before_commit<HealDb>(path, {}, [](auto& tx) { tx.insert(Item{99, "in flight", 0, "t"}); });
    damage_header(path);
    HealDb db{path};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    CHECK(db.query_one<int>("SELECT count(*) FROM items WHERE id <= 40") == 40);
    REQUIRE(report->committed_seq.has_value());
    REQUIRE(report->healed_seq.has_value());
    // Replayed whole (the transaction in flight at a crash is all or nothing), and said so.
    CHECK(*report->healed_seq == *report->committed_seq + 1);
    CHECK(db.get<Item>(99).has_value());
    CHECK_THAT(report->to_text(), Catch::Contains(fmt::format("record {} comes from the archive alone, after "
                                                              "record {}, the last one",
                                                              *report->healed_seq, *report->committed_seq)));
}

TEST_CASE("heal at open: a damaged header heals from the newest backup plus the archive tail, nothing committed lost",
          "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    history_with_backup<HealDb>(path);
    damage_header(path);

    test::event_log log;
    HealDb db{path, logged<HealDb>(log)};
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 40);
    CHECK(rows_of(path) == expected_rows(1, 40));
    CHECK(db.query_one<int>("SELECT count(*) FROM logs") == 2);
    CHECK(db.health().healthy);
    // The rows restored from the backup keep their secrets; the ones replayed hold placeholders.
    CHECK(db.get<Item>(5)->token == "secret 5");

    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    CHECK(report->detected_by == "open: header check");
    REQUIRE(report->backup_used.has_value());
    CHECK(report->archive_from_seq.has_value());
    CHECK(report->archive_to_seq > report->archive_from_seq);
    CHECK(report->may_be_lost.find("items.token") != std::string::npos);
    CHECK(report->sources.back().healed);
    // The damaged files are kept, private to the owner.
    const auto q = quarantined(dir.path());
    REQUIRE(q.size() == 1);
    CHECK(report->quarantine == q.front());
    CHECK(std::filesystem::exists(q.front() / "app.db"));
    struct stat st {};
    REQUIRE(::stat(q.front().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    REQUIRE(::stat((q.front() / "app.db").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    // Audit: one JSON line, and the events.
    CHECK(lines_in(dir / "app.db.heal-log.jsonl") == 1);
    CHECK(read_all(dir / "app.db.heal-log.jsonl").find("\"healed\":true") != std::string::npos);
    CHECK(log.count("heal_started") == 1);
    CHECK(log.count("heal_finished") == 1);
    CHECK(log.count("heal_progress") >= 4);
    // The healed database goes on: writes, archive and backups.
    db.insert(Item{41, "item 41", 0, "t"});
    CHECK(db.check_archive().reproduces_live == true);
    CHECK(integrity_ok(path));
}

TEST_CASE("heal of a new database where another was deleted: the high-water mark the old one left is not "
          "evidence about the new one",
          "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    {
        HealDb old{path};
        insert_items(old, 1, 60);  // its mark: past record 60
    }
    // The old database deleted with its archive, backups and side files, all but the mark.
    const auto mark = resilite::detail::archive::high_water_path(path);
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
        if (e.path() != mark) std::filesystem::remove_all(e.path());
    REQUIRE(std::filesystem::exists(mark));

    // A new database there: 40 items, a backup after 20. Its first commit takes the mark over.
    history_with_backup<HealDb>(path);
    const auto taken = resilite::detail::archive::read_high_water(mark);
    CHECK(taken.seq > 0);
    CHECK(taken.seq < 60);
    CHECK(!taken.identity.empty());
    damage_header(path);
    {
        test::event_log log;
        HealDb db{path, logged<HealDb>(log)};
        CHECK(rows_of(path) == expected_rows(1, 40));
        const auto report = db.last_heal();
        REQUIRE(report.has_value());
        INFO(report->to_text());
        CHECK(report->healed);
        CHECK(report->evidence.find(fmt::format("high-water mark {}", taken.seq)) != std::string::npos);
    }

    // A mark that names another database (put here by hand, or by a copy from elsewhere) is not
    // taken either, and the evidence says so.
    {
        std::ofstream out(mark, std::ios::trunc);
        out << fmt::format("{:020} {}\n", 500, std::string(32, 'f'));
    }
    damage_header(path);
    HealDb db{path};
    CHECK(rows_of(path) == expected_rows(1, 40));
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    CHECK(report->evidence.find("a high-water mark 500 of another database") != std::string::npos);
}

TEST_CASE("high-water mark: only the database the path's sidecar names takes a mark over, a mark without an "
          "identity is taken",
          "[heal][archive]") {
    namespace a = resilite::detail::archive;
    test::temp_dir dir;
    const auto db = dir / "app.db";
    const auto mark = a::high_water_path(db);
    const std::string mine(32, 'a'), stale(32, 'b');
    resilite::detail::marker side;
    side.identity = mine;
    REQUIRE(resilite::detail::write_marker(db, side));
    const auto write_mark = [&](const std::string& text) { std::ofstream(mark, std::ios::trunc) << text; };

    // A process still writing to a file deleted from the path (the sidecar names another
    // database): its commits never overwrite the mark of the database now there.
    write_mark(fmt::format("{:020} {}\n", 40, mine));
    {
        a::high_water old_file{db, stale};
        CHECK(old_file.raise(90));
        CHECK(old_file.read() == 0);  // the mark is not its own
    }
    CHECK(a::read_high_water(mark).seq == 40);
    CHECK(a::read_high_water(mark).identity == mine);

    // The database the sidecar names takes another database's mark over, even a higher one.
    write_mark(fmt::format("{:020} {}\n", 60, stale));
    {
        a::high_water current{db, mine};
        CHECK(current.read() == 0);
        CHECK(current.raise(3));
        CHECK(current.read() == 3);
    }
    CHECK(a::read_high_water(mark).seq == 3);
    CHECK(read_all(mark) == fmt::format("{:020} {}\n", 3, mine));  // nothing of the longer line left

    // A mark from before marks named their database is taken as this database's: a heal that
    // cannot tell refuses rather than miss a loss, and it is never lowered.
    write_mark(fmt::format("{:020}\n", 70));
    CHECK(a::read_high_water(mark).for_database(mine) == 70);
    {
        a::high_water current{db, mine};
        CHECK(current.read() == 70);
        CHECK(current.raise(5));
    }
    CHECK(a::read_high_water(mark).seq == 70);
}

TEST_CASE("heal of a table the schema does not declare: every committed row is back, the archive covers it",
          "[heal][archive]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    {
        HealDb db{path};
        db.exec_script("CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL)");
        for (int i = 1; i <= 10; ++i) {
            db.insert(Item{i, fmt::format("item {}", i), 0, "t"});
            db.exec("INSERT INTO notes(body) VALUES(?)", fmt::format("note {}", i));
        }
        static_cast<void>(db.backup_now());
        for (int i = 11; i <= 20; ++i) {
            db.insert(Item{i, fmt::format("item {}", i), 0, "t"});
            db.exec("INSERT INTO notes(body) VALUES(?)", fmt::format("note {}", i));
        }
    }
    damage_header(path);
    HealDb db{path};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 20);
    CHECK(db.query_one<int>("SELECT count(*) FROM notes") == 20);
    CHECK(report->may_be_lost.find("are missing") == std::string::npos);  // only the secrets' placeholders
    CHECK(report->committed_seq.has_value());
    CHECK(report->healed_seq >= report->committed_seq);
}

TEST_CASE("heal with an archive that lost its tail: the newest backup is kept, the missing records are named, "
          "refuse_loss does not swap",
          "[heal][archive]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    sixty_commits_archive_cut<HealDb>(path);
    test::event_log log;
    try {
        HealDb db{path, logged<HealDb>(log)};
        FAIL("a heal that loses acknowledged commits must not swap under refuse_loss");
    } catch (const resilite::error& e) {
        INFO(e.technical().report);
        CHECK(e.technical().report.find("are missing") != std::string::npos);
    }
    // Nothing deleted: the damaged file is quarantined, the heal log says what was missing.
    const auto logged_heal = read_all(dir / "app.db.heal-log.jsonl");
    INFO(logged_heal);
    CHECK(logged_heal.find("\"healed\":false") != std::string::npos);
    CHECK(logged_heal.find("nothing committed is missing") == std::string::npos);
    // The newest backup was not refused for being newer than the archive.
    CHECK(logged_heal.find("differs from what the archive holds") == std::string::npos);
}

TEST_CASE("heal with another database's archive in the archive directory: it is no source, never replayed into "
          "this database's backup, and the report says whose it is",
          "[heal][archive][identity]") {
    // Without the trial rebuild (a database above its limit), nothing else would notice.
    for (const std::uintmax_t limit : {std::uintmax_t{32} << 20, std::uintmax_t{0}}) {
        CAPTURE(limit);
        test::temp_dir dir;
        const auto path = dir / "app.db";
        const auto other = dir / "other.db";
        history_with_backup<HealDb>(path);
        {
            HealDb b{other};
            for (int i = 1; i <= 60; ++i)
                b.insert(Item{i, fmt::format("other {}", i), 0, "s"});
        }
        // Put in place by hand while the application was down (its open would refuse it).
        const auto archive = std::filesystem::path{path.string() + ".archive"};
        std::filesystem::remove_all(archive);
        std::filesystem::copy(std::filesystem::path{other.string() + ".archive"}, archive);
        damage_header(path);
        HealDb::options o;
        o.settings = HealDb::default_settings();
        o.settings->healing.trial_rebuild_limit_bytes = limit;
        try {
            HealDb db{path, o};
            FAIL("the backup alone lacks the commits after it: refuse_loss refuses");
        } catch (const resilite::error& e) {
            INFO(e.technical().report);
            CHECK(e.technical().report.find("another database") != std::string::npos);
        }
        // Nothing of the other database's reached the path.
        std::error_code ec;
        if (std::filesystem::exists(path, ec) && integrity_ok(path))
            for (const auto& [id, name] : rows_of(path))
                CHECK(name.find("other") == std::string::npos);
    }
}

TEST_CASE("heal with an archive that lost its tail, accepting the loss: the newest backup, the missing records named",
          "[heal][archive]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    sixty_commits_archive_cut<AcceptingDb>(path);
    AcceptingDb db{path};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 40);  // the newest backup, not an older one
    CHECK(report->may_be_lost.find("are missing") != std::string::npos);
    CHECK(report->to_text().find("nothing committed is missing") == std::string::npos);
    db.insert(Item{61, "after", 0, "t"});
    CHECK(db.get<Item>(61).has_value());
}

TEST_CASE("heal after a record whose sync failed beside its COMMIT was lost: the heal names it missing, never "
          "\"nothing committed is missing\"",
          "[heal][archive]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    const auto lost_file = dir / "lost";
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        bool fail_sync = false;
        AcceptingDb::options o;
        o.inject_archive_sync_failure = [&] { return fail_sync; };
        AcceptingDb db{path, o};
        insert_items(db, 1, 5);
        static_cast<void>(db.backup_now());
        insert_items(db, 6, 8);
        fail_sync = true;
        insert_items(db, 9, 9);  // acknowledged: its COMMIT is durable, its record's sync failed
        write_all(lost_file, std::to_string(db.health().archive_seq.value_or(-1)));
        // (Everything in the database file, so that the damage below is met: a checkpoint writes
        // nothing into the archive.)
        static_cast<void>(db.checkpoint(resilite::checkpoint_mode::truncate));
        std::_Exit(0);  // dead before a later write (or the close) could carry the snapshot it owed
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    const std::int64_t lost = std::stoll(read_all(lost_file));
    // What a failed sync can do: the record never reached the disk.
    const auto archive = std::filesystem::path{path.string() + ".archive"};
    const auto segments = resilite::detail::archive::list_segments(archive);
    REQUIRE(segments.size() == 1);
    const auto text = read_all(archive / segments.front());
    const auto at = text.find(fmt::format("-- txn {} ", lost));
    REQUIRE(at != std::string::npos);
    REQUIRE(text.find("\n-- txn ", at) == std::string::npos);  // the last record
    write_all(archive / segments.front(), text.substr(0, at));
    damage_header(path);
    AcceptingDb db{path};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    CHECK(rows_of(path) == expected_rows(1, 8));
    CHECK(report->may_be_lost.find(fmt::format("archive records {} to {} are missing", lost, lost)) !=
          std::string::npos);
    CHECK(report->to_text().find("nothing committed is missing") == std::string::npos);
}

TEST_CASE("heal with an archive cut inside its first record, accepting the loss: the newest backup heals, the "
          "records after it named missing",
          "[heal][archive]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    std::int64_t last = 0;
    {
        AcceptingDb db{path};
        insert_items(db, 1, 5);
        static_cast<void>(db.backup_now());
        insert_items(db, 6, 8);
        last = db.drain_archive();
    }
    // Every segment cut to its first 40 bytes: not one whole record is left.
    const auto archive = std::filesystem::path{path.string() + ".archive"};
    for (const auto& name : resilite::detail::archive::list_segments(archive))
        write_all(archive / name, read_all(archive / name).substr(0, 40));
    damage_header(path);
    AcceptingDb db{path};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 5);
    REQUIRE(report->healed_seq.has_value());
    CHECK(report->may_be_lost.find(fmt::format("archive records {} to {} are missing", *report->healed_seq + 1, last)) !=
          std::string::npos);
}

TEST_CASE("heal never brings code in from a backup: a planted or renamed backup is refused, a trigger the "
          "database no longer had is dropped",
          "[heal][archive]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    const auto newest_backup = [&] {
        std::filesystem::path newest;
        for (const auto& e : std::filesystem::directory_iterator(dir / "app.db.backups"))
            if (e.path().extension() == ".db" && e.path() > newest) newest = e.path();
        return newest;
    };
    SECTION("a trigger planted in the newest backup: its checksum no longer matches the manifest") {
        {
            HealDb db{path};
            insert_items(db, 1, 20);
            static_cast<void>(db.backup_now());
            insert_items(db, 21, 30);
        }
        {
            resilite::sqlite::connection c{newest_backup(), SQLITE_OPEN_READWRITE};
            c.exec_script("CREATE TRIGGER planted AFTER INSERT ON items BEGIN DELETE FROM items; END");
        }
        damage_header(path);
        HealDb db{path};
        const auto report = db.last_heal();
        REQUIRE(report.has_value());
        INFO(report->to_text());
        CHECK(report->to_text().find("checksum differs") != std::string::npos);
        db.insert(Item{31, "after", 0, "t"});
        CHECK(db.query_one<int>("SELECT count(*) FROM items") == 31);
        CHECK(db.query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = 'planted'") == 0);
    }
    SECTION("an older backup copied to a newer name: not in the manifest") {
        {
            HealDb db{path};
            insert_items(db, 1, 20);
            static_cast<void>(db.backup_now());
            insert_items(db, 21, 30);
        }
        const auto old = newest_backup();
        auto renamed = old.filename().string();
        renamed.replace(renamed.find("-20") + 1, 4, "2199");  // later (and within the clock's range)
        std::filesystem::copy_file(old, old.parent_path() / renamed);
        damage_header(path);
        HealDb db{path};
        const auto report = db.last_heal();
        REQUIRE(report.has_value());
        INFO(report->to_text());
        CHECK(report->to_text().find("not in the manifest") != std::string::npos);
        CHECK(db.query_one<int>("SELECT count(*) FROM items") == 30);
    }
    SECTION("a trigger the backup holds and the database dropped later is not brought back") {
        {
            HealDb db{path};
            db.exec_script("CREATE TRIGGER temporary AFTER INSERT ON items BEGIN SELECT 1; END");
            insert_items(db, 1, 20);
            static_cast<void>(db.backup_now());
            db.exec_script("DROP TRIGGER temporary");
            insert_items(db, 21, 30);
        }
        damage_header(path);
        HealDb db{path};
        const auto report = db.last_heal();
        REQUIRE(report.has_value());
        INFO(report->to_text());
        CHECK(report->to_text().find("trigger temporary") != std::string::npos);
        CHECK(db.query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = 'temporary'") == 0);
        CHECK(db.query_one<int>("SELECT count(*) FROM items") == 30);
    }
}

TEST_CASE("heal with a damaged archive record older than the backup: the backup plus its tail heals, the damage "
          "is reported",
          "[heal][archive]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    {
        HealDb db{path};
        insert_items(db, 1, 20);
        static_cast<void>(db.backup_now());
        insert_items(db, 21, 30);
    }
    const auto archive = dir / "app.db.archive";
    const auto segments = resilite::detail::archive::list_segments(archive);
    REQUIRE(segments.size() == 1);
    auto text = read_all(archive / segments.front());
    const auto at = text.find("'item 5'");  // a record the backup already holds
    REQUIRE(at != std::string::npos);
    text[at + 1] = 'X';
    write_all(archive / segments.front(), text);
    damage_header(path);
    HealDb db{path};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->backup_used.has_value());
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 30);
    CHECK(report->verification.find("cannot be rebuilt") != std::string::npos);
}

TEST_CASE("heal of a database that already held a foreign-key orphan: healed, the orphan reported, the "
          "connection setup hook holds after the heal",
          "[heal][archive]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    auto o = HealDb::options{};
    int connections = 0;
    o.on_connect = [&](resilite::sqlite::connection& c) {
        ++connections;
        c.exec_script("PRAGMA foreign_keys = ON");
    };
    {
        HealDb db{path, o};
        db.exec_script("CREATE TABLE parent(id INTEGER PRIMARY KEY); "
                       "CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id))");
        db.exec("INSERT INTO parent(id) VALUES(1)");
        db.exec("INSERT INTO child(id, parent_id) VALUES(1, 1)");
        // An orphan from before foreign keys were enforced (a connection without the hook).
        db.with_connection([](auto& c) {
            c.exec_script("PRAGMA foreign_keys = OFF");
            c.exec("INSERT INTO child(id, parent_id) VALUES(2, 99)");
            c.exec_script("PRAGMA foreign_keys = ON");
        });
        db.exec("INSERT INTO child(id, parent_id) VALUES(3, 1)");
        static_cast<void>(db.backup_now());
        db.exec("INSERT INTO child(id, parent_id) VALUES(4, 1)");
        CHECK_THROWS_AS(db.exec("INSERT INTO child(id, parent_id) VALUES(5, 42)"), resilite::error);  // enforced
    }
    damage_header(path);
    connections = 0;
    HealDb db{path, o};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    CHECK(db.query_one<int>("SELECT count(*) FROM child") == 4);
    CHECK(report->verification.find("child row 2 -> parent") != std::string::npos);
    CHECK(connections >= 1);
    CHECK(db.query_one<int>("PRAGMA foreign_keys") == 1);  // the hook ran on the healed file's connection
    CHECK_THROWS_AS(db.exec("INSERT INTO child(id, parent_id) VALUES(6, 42)"), resilite::error);
}

namespace declared_keys {
struct Owner {
    BOOST_HANA_DEFINE_STRUCT(Owner, (std::int64_t, id), (std::string, name));
};
struct Pet {
    BOOST_HANA_DEFINE_STRUCT(Pet, (std::int64_t, id), (std::int64_t, owner_id));
};
using owners = resilite::table<"owners", Owner, resilite::primary_key<"id">>;
using pets = resilite::table<"pets", Pet, resilite::primary_key<"id">,
                             resilite::foreign_key<"owner_id", "owners", "id", resilite::referential_action::cascade>>;
using Db = resilite::Database<resilite::schema<owners, pets>, resilite::archive<>, backups_on_demand,
                              resilite::healing<>, common, manual_durability>;
}  // namespace declared_keys

TEST_CASE("heal with declared foreign keys: the cascades after the backup are replayed, the keys enforced on the "
          "healed file",
          "[heal][archive][foreign_key]") {
    using namespace declared_keys;
    test::temp_dir dir;
    const auto path = dir / "pets.db";
    {
        Db db{path};
        for (int i = 1; i <= 4; ++i) {
            db.insert(Owner{i, fmt::format("owner {}", i)});
            db.insert(Pet{10 * i, i});
            db.insert(Pet{10 * i + 1, i});
        }
        static_cast<void>(db.backup_now());
        db.erase<Owner>(std::int64_t{2});  // cascades: pets 20 and 21 go with it, archived as deletes
        db.insert(Pet{50, 3});
        CHECK(db.query_one<int>("SELECT count(*) FROM pets") == 7);
    }
    damage_header(path);
    Db db{path};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    CHECK(db.query_one<int>("SELECT count(*) FROM owners") == 3);
    CHECK(db.query_one<int>("SELECT count(*) FROM pets") == 7);
    CHECK(db.query_one<int>("SELECT count(*) FROM pets WHERE owner_id = 2") == 0);
    CHECK(db.query_one<int>("SELECT count(*) FROM pragma_foreign_key_check") == 0);
    CHECK(db.query_one<int>("PRAGMA foreign_keys") == 1);
    CHECK_THROWS_AS(db.insert(Pet{60, 2}), resilite::error);  // owner 2 is gone: enforced
    db.erase<Owner>(std::int64_t{3});
    CHECK(db.query_one<int>("SELECT count(*) FROM pets") == 4);
    CHECK(db.check_archive().reproduces_live == true);
}

TEST_CASE("heal never follows a quarantine directory that is a symbolic link: nothing is moved", "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    history_with_backup<HealDb>(path);
    damage_header(path);
    std::filesystem::create_directory(dir / "elsewhere");
    std::filesystem::create_directory_symlink(dir / "elsewhere", dir / "quarantine");
    try {
        HealDb db{path};
        FAIL("healed through a linked quarantine directory");
    } catch (const resilite::error& e) {
        INFO(e.what());
        CHECK(e.technical().note.find("symbolic link") != std::string::npos);
    }
    CHECK(std::filesystem::exists(path));  // the damaged file stays where it was
    CHECK(std::filesystem::is_empty(dir / "elsewhere"));
}

TEST_CASE("healing: a database path that is a symbolic link is refused at open, naming the real path: nothing "
          "is moved",
          "[heal]") {
    test::temp_dir dir;
    std::filesystem::create_directories(dir / "data");
    const auto real = dir / "data" / "real.db";
    history_with_backup<HealDb>(real);
    std::filesystem::create_symlink(real, dir / "app.db");
    damage_header(real);
    try {
        HealDb db{dir / "app.db"};
        FAIL("opened a database through a symbolic link");
    } catch (const resilite::error& e) {
        INFO(e.what());
        CHECK(e.klass() == error_class::permission);
        CHECK(e.technical().note.find("symbolic link") != std::string::npos);
        CHECK(e.technical().note.find(std::filesystem::canonical(real).string()) != std::string::npos);
    }
    CHECK(std::filesystem::is_symlink(dir / "app.db"));  // the link is where it was, nothing quarantined
    CHECK_FALSE(std::filesystem::exists(dir / "quarantine"));
    CHECK_FALSE(std::filesystem::exists(dir / "app.db-resilite"));
    // Opened by its real path, the database heals as always.
    HealDb db{real};
    CHECK(rows_of(real) == expected_rows(1, 40));
}

TEST_CASE("healing: a file that was never a database (no SQLite header, no sidecar) is refused at open: nothing "
          "is moved or created",
          "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    const std::string text = "listen = 8080\nworkers = 4\n";  // a configuration file, named by mistake
    {
        std::ofstream out{path, std::ios::binary};
        out << text;
    }
    try {
        HealDb db{path};
        FAIL("opened a file that was never a database");
    } catch (const resilite::error& e) {
        INFO(e.what() << "\n" << e.technical().note);
        CHECK(e.klass() == error_class::not_a_database);
        CHECK(e.technical().note.find("nothing was changed") != std::string::npos);
    }
    std::ifstream in{path, std::ios::binary};
    const std::string kept{std::istreambuf_iterator<char>{in}, {}};
    CHECK(kept == text);
    CHECK_FALSE(std::filesystem::exists(dir / "quarantine"));
    CHECK_FALSE(std::filesystem::exists(dir / "app.db-resilite"));
}

TEST_CASE("heal never reads an archive or backups through a symbolic link: the sources say so, nothing is healed "
          "from them",
          "[heal][archive]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    history_with_backup<HealDb>(path);
    damage_header(path);
    // The real archive and backups moved away, links left in their place.
    std::filesystem::rename(dir / "app.db.archive", dir / "archive-elsewhere");
    std::filesystem::rename(dir / "app.db.backups", dir / "backups-elsewhere");
    std::filesystem::create_directory_symlink(dir / "archive-elsewhere", dir / "app.db.archive");
    std::filesystem::create_directory_symlink(dir / "backups-elsewhere", dir / "app.db.backups");
    try {
        HealDb db{path};
        FAIL("healed from sources behind symbolic links");
    } catch (const resilite::error& e) {
        INFO(e.what() << "\n" << e.technical().report);
        CHECK(e.klass() == error_class::corrupt);
        CHECK(e.technical().report.find("app.db.archive is a symbolic link, never followed") != std::string::npos);
        CHECK(e.technical().report.find("app.db.backups is a symbolic link, never followed") != std::string::npos);
    }
}

TEST_CASE("heal at open from the archive alone when there is no backup", "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    {
        ArchiveOnlyHealDb db{path};
        insert_items(db, 1, 30);
        db.erase<Item>(7);
    }
    resilite::testing::truncate_file(path, resilite::testing::truncation::half);

    ArchiveOnlyHealDb db{path};
    auto want = expected_rows(1, 30);
    want.erase(7);
    CHECK(rows_of(path) == want);
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    CHECK_FALSE(report->backup_used.has_value());
    CHECK(report->sources.back().source == "archive alone");
    CHECK(integrity_ok(path));
}

TEST_CASE("heal refuses a backup alone without an archive unless accept_loss_since_backup, which names the window",
          "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    history_with_backup<BackupOnlyHealDb>(path);
    damage_header(path);

    try {
        BackupOnlyHealDb db{path};
        FAIL("a damaged database without archive opened");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == error_class::corrupt);
        const auto& text = e.technical().report;
        INFO(text);
        CHECK(text.find("accept_loss_since_backup") != std::string::npos);
        CHECK(text.find("to recover by hand") != std::string::npos);
        CHECK(text.find("reset_healing") != std::string::npos);
        CHECK(std::string{e.what()}.find('\n') == std::string::npos);
    }
    // Nothing deleted: the damaged file is in quarantine.
    const auto q = quarantined(dir.path());
    REQUIRE(q.size() == 1);
    CHECK(std::filesystem::exists(q.front() / "app.db"));

    // The application accepts the loss: the interrupted heal is taken up from the backup.
    LossyHealDb db{path};
    CHECK(rows_of(path) == expected_rows(1, 20));
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    CHECK(report->healed);
    CHECK(report->may_be_lost.find("every commit after the backup") != std::string::npos);
    CHECK(report->attempt == 2);
}

TEST_CASE("heal circuit breaker: after 3 heals that fail open refuses at once until reset_healing", "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    {
        NothingHealDb db{path};
        db.insert(Item{1, "one", 1, "t"});
    }
    damage_header(path);
    test::event_log log;
    const auto open_error = [&] {
        try {
            NothingHealDb db{path, logged<NothingHealDb>(log)};
        } catch (const resilite::error& e) {
            return std::string{e.technical().report.empty() ? e.what() : e.technical().report};
        }
        return std::string{"opened"};
    };
    for (int attempt = 1; attempt <= 3; ++attempt) {
        const auto text = open_error();
        INFO(text);
        CHECK(text.find("no source could heal it") != std::string::npos);
    }
    CHECK(log.count("heal_started") == 3);
    const auto audited = lines_in(resilite::detail::audit_fallback_path(path));
    CHECK(audited == 3);  // each failed heal: "NOT healed ..." (the database never opened to take them)
    CHECK(open_error().find("healing stopped: 3 heals in a row") != std::string::npos);
    CHECK(open_error().find("healing stopped") != std::string::npos);  // and stays stopped
    CHECK(lines_in(dir / "app.db.heal-log.jsonl") == 3);
    // A refusal is not a heal: no heal_started, and a restart loop does not grow the audit trail.
    CHECK(log.count("heal_started") == 3);
    CHECK(lines_in(resilite::detail::audit_fallback_path(path)) == audited);
    // The first heal's quarantine still holds the damaged file; later ones had nothing to move.
    const auto q = quarantined(dir.path());
    REQUIRE(q.size() == 1);
    CHECK(std::filesystem::exists(q.front() / "app.db"));

    resilite::reset_healing(path);
    CHECK(open_error().find("no source could heal it") != std::string::npos);
}

TEST_CASE("heal at run time: the call that meets the damage fails with corrupt, the next call heals first",
          "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    test::event_log log;
    HealDb db{path, logged<HealDb>(log)};
    for (int i = 1; i <= 300; ++i)
        db.insert(Item{i, std::string(200, static_cast<char>('a' + i % 26)), i * 1.0, "t"});
    static_cast<void>(db.backup_now());
    for (int i = 301; i <= 320; ++i)
        db.insert(Item{i, std::string(200, 'z'), i * 1.0, "t"});
    static_cast<void>(db.checkpoint(resilite::checkpoint_mode::truncate));
    // A page of items goes bad under the open connection (its cache forgets what it read).
    db.with_connection([](auto& c) { sqlite3_db_release_memory(c.native_handle()); });
    zero_root_page(path, "items");

    CHECK_THROWS_AS(static_cast<void>(db.select<Item>()), resilite::error);
    CHECK_FALSE(db.health().healthy);
    CHECK(db.select<Item>("ORDER BY id").size() == 320);  // healed before it ran
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    CHECK(report->detected_by.find("run time") != std::string::npos);
    CHECK(db.health().healthy);
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 320);
    db.insert(Item{321, "after the heal", 0, "t"});
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 321);
    CHECK(log.count("corrupt") >= 1);
    CHECK(integrity_ok(path));
}

TEST_CASE("heal killed after each phase: the next open finishes it, never a lost commit or a missing database",
          "[heal]") {
    for (const char* phase : {"heal:quarantine", "heal:quarantine:moved", "heal:replay", "heal:verify", "heal:swap"}) {
        DYNAMIC_SECTION(phase) {
            test::temp_dir dir;
            const auto path = dir / "app.db";
            history_with_backup<HealDb>(path);
            damage_header(path);
            const pid_t child = ::fork();
            REQUIRE(child >= 0);
            if (child == 0) {
                HealDb::options o;
                o.inject_failure = [&](std::string_view operation, int) {
                    if (operation == phase) ::_exit(0);  // killed right there
                    return SQLITE_OK;
                };
                try {
                    HealDb db{path, o};
                } catch (...) {
                }
                ::_exit(3);  // the phase was never reached
            }
            int status = 0;
            REQUIRE(::waitpid(child, &status, 0) == child);
            REQUIRE(WIFEXITED(status));
            REQUIRE(WEXITSTATUS(status) == 0);

            HealDb db{path};
            CHECK(rows_of(path) == expected_rows(1, 40));
            CHECK(integrity_ok(path));
            const auto report = db.last_heal();
            REQUIRE(report.has_value());
            CHECK(report->healed);
            CHECK(report->attempt == 2);
            // One quarantine directory: a resumed heal puts the rest beside what was moved.
            const auto q = quarantined(dir.path());
            REQUIRE(q.size() == 1);
            CHECK(std::filesystem::exists(q.front() / "app.db"));
            CHECK(report->quarantine == q.front());
        }
    }
}

TEST_CASE("heal whose restored copy cannot be flushed: that source fails with the I/O error, the next one heals, "
          "nothing unflushed is swapped in",
          "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    history_with_backup<HealDb>(path);
    damage_header(path);

    int flushes = 0;
    HealDb::options o;
    o.inject_failure = [&](std::string_view operation, int) {
        if (operation == "heal:flush") ++flushes;
        return operation == "heal:flush" ? SQLITE_IOERR : SQLITE_OK;  // every backup's copy fails
    };
    HealDb db{path, o};
    CHECK(flushes == 1);  // the one backup; the archive alone is rebuilt and synced by the rebuild
    CHECK(rows_of(path) == expected_rows(1, 40));
    CHECK(integrity_ok(path));
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    CHECK_FALSE(report->backup_used.has_value());  // healed from the archive alone
    REQUIRE(report->sources.size() == 2);
    CHECK_FALSE(report->sources.front().healed);
    CHECK(report->sources.front().source.find("backup") != std::string::npos);
    CHECK(report->sources.front().detail.find("could not sync the healed database") != std::string::npos);
    CHECK(report->sources.back().source == "archive alone");
    CHECK(report->sources.back().healed);
}

TEST_CASE("heal of a database with a table whose name holds a double quote: healed, its rows counted", "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    {
        HealDb db{path};
        db.exec_script(R"(CREATE TABLE "we""ird tab"(x INTEGER))");
        db.exec(R"(INSERT INTO "we""ird tab" VALUES(1))");
        insert_items(db, 1, 10);
        static_cast<void>(db.backup_now());
        db.exec(R"(INSERT INTO "we""ird tab" VALUES(2))");
        insert_items(db, 11, 20);
    }
    damage_header(path);
    HealDb db{path};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    CHECK(rows_of(path) == expected_rows(1, 20));
    CHECK(db.query_one<int>(R"(SELECT count(*) FROM "we""ird tab")") == 2);
    bool counted = false;
    for (const auto& t : report->tables)
        counted = counted || (t.name == "we\"ird tab" && t.rows == 2);
    CHECK(counted);
}

TEST_CASE("heal from a backup of a table dropped or renamed after it: the dropped table stays dropped, the renamed "
          "one is there under its new name only, with its rows",
          "[heal][archive]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    {
        HealDb db{path};
        db.exec_script("CREATE TABLE scratch(id INTEGER PRIMARY KEY, v TEXT); "
                       "CREATE TABLE old_name(id INTEGER PRIMARY KEY, v TEXT)");
        db.exec("INSERT INTO scratch(v) VALUES('gone')");
        db.exec("INSERT INTO old_name(v) VALUES('kept 1')");
        insert_items(db, 1, 10);
        static_cast<void>(db.backup_now());
        db.exec_script("DROP TABLE scratch");
        db.exec_script("ALTER TABLE old_name RENAME TO new_name");
        db.exec("INSERT INTO new_name(v) VALUES('kept 2')");
        insert_items(db, 11, 20);
    }
    damage_header(path);
    HealDb db{path};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    REQUIRE(report->backup_used.has_value());
    CHECK(rows_of(path) == expected_rows(1, 20));
    const auto tables = db.query<std::string>(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('scratch', 'old_name', 'new_name')");
    CHECK(tables == std::vector<std::string>{"new_name"});
    CHECK(db.query<std::string>("SELECT v FROM new_name ORDER BY id") ==
          std::vector<std::string>{"kept 1", "kept 2"});
    db.exec("INSERT INTO new_name(v) VALUES('kept 3')");  // still archived under its new name
    const auto check = db.check_archive();
    INFO(check.to_text());
    CHECK(check.reproduces_live == true);
}

TEST_CASE("heal of tables with a column named rowid: one without a primary key is archived by another name of "
          "its rowid, one with a key keeps every row through a snapshot",
          "[heal][archive]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    const auto contents = [](auto& db) {
        return std::tuple{
            db.template query<std::string>("SELECT rowid || ':' || ifnull(_rowid_, '-') || ':' || v FROM bare ORDER BY v"),
            db.template query<std::string>("SELECT id || ':' || rowid FROM keyed ORDER BY id")};
    };
    std::tuple<std::vector<std::string>, std::vector<std::string>> before;
    {
        HealDb db{path};
        db.exec_script("CREATE TABLE bare(rowid TEXT, v TEXT); "
                       "CREATE TABLE keyed(id INTEGER PRIMARY KEY, rowid TEXT)");
        db.exec("INSERT INTO bare VALUES('r1', 'a'), ('r2', 'b')");
        db.exec("INSERT INTO keyed VALUES(1, 'x'), (2, 'y')");
        insert_items(db, 1, 10);
        static_cast<void>(db.backup_now());
        db.exec("UPDATE bare SET rowid = 'r9' WHERE v = 'a'");
        db.exec("DELETE FROM bare WHERE v = 'b'");
        db.exec("INSERT INTO bare VALUES('r3', 'c')");
        db.exec("DELETE FROM keyed WHERE id = 1");
        db.exec("INSERT INTO keyed VALUES(3, 'z')");
        db.exec_script("CREATE TABLE later(x INTEGER); DROP TABLE later");  // a snapshot after the backup
        insert_items(db, 11, 20);
        before = contents(db);
        const auto check = db.check_archive();
        INFO(check.to_text());
        CHECK(check.reproduces_live == true);
    }
    damage_header(path);
    HealDb db{path};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    CHECK(report->backup_used.has_value());
    CHECK(rows_of(path) == expected_rows(1, 20));
    CHECK(contents(db) == before);
}

TEST_CASE("heal from a backup of a table that gained a column after it: the column's values are back and the "
          "report does not call it secret",
          "[heal][archive]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    {
        HealDb db{path};
        db.exec_script("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)");
        db.exec("INSERT INTO notes(body) VALUES('before')");
        insert_items(db, 1, 10);
        static_cast<void>(db.backup_now());
        db.exec_script("ALTER TABLE notes ADD COLUMN extra TEXT");
        db.exec("INSERT INTO notes(body, extra) VALUES('after', 'added later')");
        insert_items(db, 11, 20);
    }
    damage_header(path);
    HealDb db{path};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    CHECK(report->backup_used.has_value());
    CHECK(db.query<std::string>("SELECT ifnull(extra, '-') FROM notes ORDER BY id") ==
          std::vector<std::string>{"-", "added later"});
    CHECK(report->may_be_lost.find("notes.extra") == std::string::npos);
    CHECK(report->may_be_lost.find("items.token") != std::string::npos);  // the declared secret still named
}

TEST_CASE("heal from a backup through a snapshot: a table of key columns only keeps its rows, an index dropped "
          "after the backup stays dropped and takes no row with it",
          "[heal][archive]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    {
        HealDb db{path};
        db.exec_script("CREATE TABLE keys_only(id INTEGER PRIMARY KEY); INSERT INTO keys_only VALUES(1), (2); "
                       "CREATE TABLE t(id INTEGER PRIMARY KEY, email TEXT); CREATE UNIQUE INDEX t_email ON t(email); "
                       "INSERT INTO t VALUES(1, 'ann@x'); CREATE TABLE other(x INTEGER PRIMARY KEY)");
        insert_items(db, 1, 10);
        static_cast<void>(db.backup_now());
        db.exec_script("DROP INDEX t_email");  // a snapshot (something removed)
        db.exec("INSERT INTO t VALUES(2, 'ann@x')");
        db.exec_script("DROP TABLE other");  // another snapshot
        insert_items(db, 11, 20);
    }
    damage_header(path);
    HealDb db{path};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    CHECK(report->backup_used.has_value());
    CHECK(rows_of(path) == expected_rows(1, 20));
    CHECK(db.query<std::int64_t>("SELECT id FROM keys_only ORDER BY id") == std::vector<std::int64_t>{1, 2});
    CHECK(db.query<std::int64_t>("SELECT id FROM t ORDER BY id") == std::vector<std::int64_t>{1, 2});
    CHECK(db.query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = 't_email'") == 0);
    CHECK(report->verification.find("every table equal to a trial rebuild") != std::string::npos);
}

TEST_CASE("heal twice after a column was added after the backup: the second heal and a rebuild still work",
          "[heal][archive]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    {
        HealDb db{path};
        db.exec_script("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)");
        db.exec("INSERT INTO notes(body) VALUES('a')");
        insert_items(db, 1, 10);
        static_cast<void>(db.backup_now());
        db.exec_script("ALTER TABLE notes ADD COLUMN extra TEXT");
        db.exec("UPDATE notes SET extra = 'x'");
    }
    for (std::uint64_t round = 1; round <= 2; ++round) {
        damage_header(path, round);
        HealDb db{path};
        const auto report = db.last_heal();
        REQUIRE(report.has_value());
        INFO(report->to_text());
        CHECK(report->healed);
        CHECK(db.query<std::string>("SELECT body || ':' || extra FROM notes") == std::vector<std::string>{"a:x"});
        insert_items(db, 10 + static_cast<int>(round), 10 + static_cast<int>(round));
        const auto check = db.check_archive();
        INFO(check.to_text());
        CHECK(check.rebuildable());
        CHECK(check.reproduces_live == true);
    }
}

namespace {
struct add_rank_column {
    static constexpr int version = 1;
    static constexpr std::string_view sql =
        "ALTER TABLE items ADD COLUMN rank INTEGER NOT NULL DEFAULT 0; UPDATE items SET rank = id * 10;";
};
using RankedHealDb = resilite::Database<resilite::schema<items_v3, logs, tags>, resilite::migrations<add_rank_column>,
                                        resilite::archive<>, backups_on_demand, resilite::healing<>, common,
                                        manual_durability>;
}  // namespace

TEST_CASE("heal from a backup taken before a migration that added a column: the backup is used, its secrets kept",
          "[heal][archive][migrations]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    {
        HealDb db{path};
        insert_items(db, 1, 10);
        static_cast<void>(db.backup_now());
    }
    {
        RankedHealDb db{path};  // migrates (a snapshot), then the schema sync adds tags and note
        db.insert(ItemV3{11, "item 11", 0, "secret 11", "n", 110});
    }
    damage_header(path);
    RankedHealDb db{path};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    CHECK(report->backup_used.has_value());
    CHECK(db.get<ItemV3>(3)->token == "secret 3");
    CHECK(db.get<ItemV3>(3)->rank == 30);
    CHECK(db.get<ItemV3>(11)->rank == 110);
    CHECK(db.version() == 1);
    // The archive alone gives the schema's version too: a rebuild would not run the migration again.
    const auto rebuilt = dir / "rebuilt.db";
    static_cast<void>(resilite::rebuild(path.string() + ".archive", rebuilt));
    resilite::sqlite::connection c{rebuilt, SQLITE_OPEN_READONLY};
    CHECK(c.query_one<int>("PRAGMA user_version") == 1);
}

TEST_CASE("heal from a backup when the damaged database cannot be read: a trigger the archive holds is kept, a "
          "view (not archived) is dropped and named in what may be lost",
          "[heal][archive]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    {
        HealDb db{path};
        db.exec_script("CREATE TABLE journal(id INTEGER PRIMARY KEY, what TEXT); "
                       "CREATE TRIGGER items_journal AFTER INSERT ON items BEGIN "
                       "INSERT INTO journal(what) VALUES(NEW.name); END; "
                       "CREATE VIEW item_names AS SELECT name FROM items");
        insert_items(db, 1, 10);
        static_cast<void>(db.backup_now());
        insert_items(db, 11, 20);
    }
    damage_header(path);  // the damaged database cannot be read
    HealDb db{path};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    const auto text = report->to_text();
    INFO(text);
    CHECK(report->healed);
    CHECK(report->backup_used.has_value());
    CHECK(db.query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = 'items_journal'") == 1);
    CHECK(db.query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = 'item_names'") == 0);
    CHECK(text.find("the database did not have") == std::string::npos);
    CHECK(report->may_be_lost.find("view item_names") != std::string::npos);
    insert_items(db, 21, 21);
    CHECK(db.query_one<int>("SELECT count(*) FROM journal") == 21);
}

TEST_CASE("heal of a readable database: the views and triggers it had and the result lacks are created again",
          "[heal][archive]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    HealDb db{path};
    db.exec_script("CREATE TABLE journal(id INTEGER PRIMARY KEY, what TEXT)");
    insert_items(db, 1, 10);
    static_cast<void>(db.backup_now());
    db.exec_script("CREATE TRIGGER items_journal AFTER INSERT ON items BEGIN "
                   "INSERT INTO journal(what) VALUES(NEW.name); END; "
                   "CREATE VIEW item_names AS SELECT name FROM items");
    insert_items(db, 11, 20);
    const auto report = db.heal();  // the database in place is readable
    INFO(report.to_text());
    CHECK(report.healed);
    CHECK(db.query_one<int>("SELECT count(*) FROM item_names") == 20);
    insert_items(db, 21, 21);
    CHECK(db.query_one<int>("SELECT count(*) FROM journal") == 11);
    CHECK(report.to_text().find("created again from the damaged database") != std::string::npos);
}

TEST_CASE("heal of a database whose table with a secret column is damaged: the views and triggers created after "
          "the backup are created again from it, its readable parts are evidence",
          "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    {
        HealDb db{path};
        db.exec_script("CREATE TABLE journal(id INTEGER PRIMARY KEY, what TEXT)");
        insert_items(db, 1, 10);
        static_cast<void>(db.backup_now());
        db.exec_script("CREATE TRIGGER items_journal AFTER INSERT ON items BEGIN "
                       "INSERT INTO journal(what) VALUES(NEW.name); END; "
                       "CREATE VIEW item_names AS SELECT name FROM items");
        insert_items(db, 11, 20);
    }
    zero_root_page(path, "items");  // the table with the secret column: every read of it fails
    HealDb db{path};
    const auto report = db.last_heal() ? *db.last_heal() : db.heal();
    INFO(report.to_text());
    CHECK(report.healed);
    CHECK(rows_of(path) == expected_rows(1, 20));
    CHECK(db.query_one<int>("SELECT count(*) FROM item_names") == 20);
    insert_items(db, 21, 21);
    CHECK(db.query_one<int>("SELECT count(*) FROM journal") == 11);
    CHECK(report.to_text().find("created again from the damaged database") != std::string::npos);
    CHECK(report.evidence.find("the damaged database holds record") != std::string::npos);
}

TEST_CASE("heal whose reopen failed, then asked again: the report is this process's heal, not another process's",
          "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    auto fail_reopen = std::make_shared<bool>(true);
    HealDb::options o;
    o.inject_failure = [fail_reopen](std::string_view operation, int) {
        return operation == "heal:reopen" && std::exchange(*fail_reopen, false) ? SQLITE_FULL : SQLITE_OK;
    };
    HealDb db{path, o};
    insert_items(db, 1, 10);
    static_cast<void>(db.backup_now());
    insert_items(db, 11, 15);
    try {
        static_cast<void>(db.heal());
        FAIL("the reopen was to fail");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == error_class::full);
    }
    const auto report = db.heal();  // the file is healed already: it is only opened again
    const auto text = report.to_text();
    INFO(text);
    CHECK(report.healed);
    CHECK(text.find("another process") == std::string::npos);
    CHECK(text.find("this process") != std::string::npos);
    REQUIRE(report.backup_used.has_value());  // what the heal did is still said
    CHECK(rows_of(path) == expected_rows(1, 15));
    insert_items(db, 16, 16);
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 16);
}

TEST_CASE("heal of a sound database on demand: its secret columns keep their values, taken from it, and the report "
          "does not call them lost",
          "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    test::event_log log;
    HealDb db{path, logged<HealDb>(log)};
    insert_items(db, 1, 10);
    static_cast<void>(db.backup_now());
    insert_items(db, 11, 20);
    db.exec("UPDATE items SET token = 'changed 3' WHERE id = 3");  // a secret changed after the backup
    const auto report = db.heal();  // the database in place passes its integrity check
    INFO(report.to_text());
    CHECK(report.healed);
    for (const auto& e : log.events())  // nothing was seen damaged: nothing says so
        if (e.name == "heal_started") CHECK(e.error == resilite::error_class::none);
    CHECK(report.to_text().find("damaged files") == std::string::npos);
    CHECK(rows_of(path) == expected_rows(1, 20));
    for (int i = 1; i <= 20; ++i)
        CHECK(db.get<Item>(i)->token == (i == 3 ? std::string{"changed 3"} : fmt::format("secret {}", i)));
    CHECK(report.may_be_lost.find("items.token") == std::string::npos);
    CHECK(report.to_text().find("taken from the damaged database") != std::string::npos);
}

TEST_CASE("heal of a sound database on demand: the rows of its FTS tables are taken from it, an FTS index over "
          "an archived table is rebuilt from that table",
          "[heal]") {
    if (!has_fts5()) return;
    test::temp_dir dir;
    const auto path = dir / "app.db";
    HealDb db{path};
    db.exec_script("CREATE VIRTUAL TABLE docs USING fts5(body); "
                   "CREATE VIRTUAL TABLE item_search USING fts5(name, content='items', content_rowid='id')");
    const auto add = [&](int from, int to) {
        insert_items(db, from, to);
        for (int i = from; i <= to; ++i) {
            db.exec("INSERT INTO docs(rowid, body) VALUES(?, ?)", i, fmt::format("doc {} text", i));
            db.exec("INSERT INTO item_search(rowid, name) VALUES(?, ?)", i, fmt::format("item {}", i));
        }
    };
    add(1, 5);
    static_cast<void>(db.backup_now());
    add(6, 10);
    const auto report = db.heal();
    INFO(report.to_text());
    CHECK(report.healed);
    CHECK(rows_of(path) == expected_rows(1, 10));
    CHECK(db.query_one<int>("SELECT count(*) FROM docs") == 10);
    CHECK(db.query_one<std::string>("SELECT body FROM docs WHERE docs MATCH 'doc AND 8'") == "doc 8 text");
    CHECK(db.query_one<std::int64_t>("SELECT rowid FROM item_search WHERE item_search MATCH '9'") == 9);
    CHECK(report.may_be_lost.find("docs") == std::string::npos);
    CHECK(report.may_be_lost.find("item_search") == std::string::npos);
}

TEST_CASE("heal from a backup of a database with an FTS index over an archived table: the index is rebuilt, it "
          "finds the rows written after the backup",
          "[heal]") {
    if (!has_fts5()) return;
    test::temp_dir dir;
    const auto path = dir / "app.db";
    {
        HealDb db{path};
        db.exec_script("CREATE VIRTUAL TABLE item_search USING fts5(name, content='items', content_rowid='id')");
        insert_items(db, 1, 10);
        db.exec("INSERT INTO item_search(item_search) VALUES('rebuild')");
        static_cast<void>(db.backup_now());
        insert_items(db, 11, 20);
        db.exec("INSERT INTO item_search(item_search) VALUES('rebuild')");
    }
    damage_header(path);  // unreadable: nothing to take from it
    HealDb db{path};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    CHECK(db.query_one<std::int64_t>("SELECT rowid FROM item_search WHERE item_search MATCH '17'") == 17);
    CHECK(report->may_be_lost.find("item_search") == std::string::npos);
}

TEST_CASE("heal of a readable database that fails its integrity check: no secret is taken from it, the "
          "placeholders are named",
          "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    {
        HealDb db{path};
        db.exec_script("CREATE INDEX items_by_name ON items(name)");
        insert_items(db, 1, 10);
        static_cast<void>(db.backup_now());
        insert_items(db, 11, 20);
    }
    REQUIRE(resilite::testing::swap_index_definition(path) == "items_by_name");
    REQUIRE_FALSE(integrity_ok(path));
    HealDb db{path};
    const auto report = db.heal();
    INFO(report.to_text());
    CHECK(report.healed);
    CHECK(rows_of(path) == expected_rows(1, 20));
    CHECK(db.get<Item>(5)->token == "secret 5");  // from the backup
    CHECK(db.get<Item>(15)->token != "secret 15");  // a placeholder: never archived, not taken from a damaged file
    CHECK(report.may_be_lost.find("items.token") != std::string::npos);
    CHECK(integrity_ok(path));
}

TEST_CASE("heal of a database with a virtual table (not archived): the report names it as what may be lost, never "
          "that nothing committed is missing",
          "[heal]") {
    if (!has_fts5()) return;  // (an SQLite built without FTS5: nothing to test)
    test::temp_dir dir;
    const auto path = dir / "app.db";
    {
        HealDb db{path};
        db.exec_script("CREATE VIRTUAL TABLE docs USING fts5(body)");
        db.exec("INSERT INTO docs VALUES('before the backup')");
        insert_items(db, 1, 10);
        static_cast<void>(db.backup_now());
        db.exec("INSERT INTO docs VALUES('after the backup')");  // committed, but not archived
        insert_items(db, 11, 20);
    }
    damage_header(path);
    HealDb db{path};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    const auto text = report->to_text();
    INFO(text);
    CHECK(report->healed);
    CHECK(rows_of(path) == expected_rows(1, 20));
    CHECK(report->may_be_lost.find("virtual table docs") != std::string::npos);
    CHECK(text.find("nothing committed is missing") == std::string::npos);
}

// A database file older than its archive that no restore put there: its -wal lost after a crash,
// or an older copy copied over it by hand. (The copy below is the main file after a truncating
// checkpoint, which is what a crash leaves once its -wal is gone.)
template <class Db>
std::filesystem::path behind_its_archive(const std::filesystem::path& path) {
    const auto older = path.parent_path() / "older-copy.db";
    {
        Db db{path};
        insert_items(db, 1, 10);
        static_cast<void>(db.backup_now());
        insert_items(db, 11, 15);
        static_cast<void>(db.checkpoint(resilite::checkpoint_mode::truncate));
        std::filesystem::copy_file(path, older);
        insert_items(db, 16, 30);  // acknowledged and archived: not in the older file
    }
    std::filesystem::copy_file(older, path, std::filesystem::copy_options::overwrite_existing);
    for (const char* suffix : {"-wal", "-shm"})
        std::filesystem::remove(path.string() + suffix);
    return older;
}

std::uintmax_t archive_bytes(const std::filesystem::path& dir) {
    std::uintmax_t n = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
        if (e.is_regular_file()) n += e.file_size();
    return n;
}

TEST_CASE("archive: a database behind its archive (its -wal lost, an older copy put back by hand) is refused at "
          "open, and the archive keeps the commits it lacks for a replay",
          "[heal][archive]") {
    // Before: the open took it for a copy restored on purpose and wrote a snapshot after the
    // archive's records, so the 15 acknowledged commits it lacked were gone from every rebuild
    // too, without a word beyond a warning.
    test::temp_dir dir;
    const auto path = dir / "app.db";
    static_cast<void>(behind_its_archive<ArchivedDb>(path));
    const auto archive_dir = dir / "app.db.archive";
    const auto before = archive_bytes(archive_dir);
    REQUIRE(rows_of(path) == expected_rows(1, 15));
    resilite::inspect_options compare;
    compare.live_database = path;
    compare.excluded_columns = {"items.token"};  // a secret: never archived
    const auto inspected = resilite::inspect_archive(archive_dir, compare);
    INFO(inspected.to_text());
    CHECK(inspected.status() == resilite::schema_status::critical);  // it said: equal to live
    CHECK(inspected.reproduces_live == false);
    CHECK_THAT(inspected.to_text(), Catch::Contains("behind its archive"));
    try {
        ArchivedDb db{path};
        FAIL("opened a database that lacks acknowledged commits its archive holds");
    } catch (const resilite::error& e) {
        INFO(e.what());
        CHECK(e.klass() == error_class::corrupt);
        CHECK_THAT(e.what(), Catch::Contains("behind its archive"));
        CHECK_THAT(e.what(), Catch::Contains("archive replay"));
    }
    CHECK(archive_bytes(archive_dir) == before);  // no snapshot over the records it lacks
    const auto replayed = resilite::replay_archive(archive_dir, path);
    INFO(replayed.to_text());
    CHECK(rows_of(path) == expected_rows(1, 30));
    test::event_log log;
    ArchivedDb db{path, logged<ArchivedDb>(log)};
    for (const auto& e : log.events()) CHECK(e.result == resilite::outcome::ok);
    insert_items(db, 31, 31);
    CHECK(db.check_archive().reproduces_live == true);
}

TEST_CASE("archive: a database older than its archive with no high-water mark above it is taken as a copy put "
          "back on purpose, as the command's checks take it",
          "[heal][archive]") {
    // The mark is what says the later records committed (without it, after a power cut under
    // relaxed durability, say, nothing does): the open and the command must agree.
    test::temp_dir dir;
    const auto path = dir / "app.db";
    static_cast<void>(behind_its_archive<ArchivedDb>(path));
    std::filesystem::remove(resilite::detail::archive::high_water_path(path));
    CHECK_FALSE(resilite::detail::archive::behind_its_archive(path, dir / "app.db.archive"));
    test::event_log log;
    ArchivedDb db{path, logged<ArchivedDb>(log)};
    CHECK(rows_of(path) == expected_rows(1, 15));
    bool said = false;
    for (const auto& e : log.events())
        said = said || e.detail.find("no high-water mark saying they committed") != std::string::npos;
    CHECK(said);
}

TEST_CASE("heal at open: a database behind its archive gets the commits it lacks back, and says so", "[heal][archive]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    static_cast<void>(behind_its_archive<HealDb>(path));
    HealDb db{path};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    CHECK_THAT(report->found, Catch::Contains("behind its archive"));
    CHECK(rows_of(path) == expected_rows(1, 30));
    // Its own number is older than the mark: no exact evidence, so no "nothing is missing" from it.
    CHECK_FALSE(report->committed_exact);
    CHECK(report->to_text().find("the last one the damaged database holds") == std::string::npos);
    // What it cannot give back is named: the secrets of rows the older file did not have.
    CHECK(report->may_be_lost.find("committed") == std::string::npos);
    CHECK_THAT(report->may_be_lost, Catch::Contains("secret columns"));
}

// Runs `work(db)` in a child process that is then killed with the Database open (no destructor,
// no close: no drain, no checkpoint), and removes the -wal and -shm it left: a crash, then its
// -wal lost.
template <class Db, class F>
void killed_then_wal_lost(const std::filesystem::path& path, F&& work) {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        try {
            Db db{path};
            work(db);
            ::_exit(0);  // (inside the Database's scope: its destructor would drain and close)
        } catch (...) {
            ::_exit(3);
        }
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    for (const char* suffix : {"-wal", "-shm"})
        std::filesystem::remove(path.string() + suffix);
}

TEST_CASE("heal at open: a batched archive's database that lost its -wal after a drain names the batched window, "
          "never that nothing committed is missing",
          "[heal][archive]") {
    // Before: "nothing committed is missing" from the outbox count of a file that had lost the
    // drain's settle and the commits after it with its -wal (a helper's finding: 62-138 of the
    // last commits gone, may_be_lost empty).
    using BatchedHealDb =
        resilite::Database<resilite::schema<items, logs>, resilite::archive<resilite::flush_every_ms<1000>>,
                           backups_on_demand, resilite::healing<resilite::accept_loss_since_backup>, common,
                           manual_durability, resilite::manual_clock>;
    test::temp_dir dir;
    const auto path = dir / "app.db";
    killed_then_wal_lost<BatchedHealDb>(path, [](BatchedHealDb& db) {
        insert_items(db, 1, 10);
        static_cast<void>(db.backup_now());
        insert_items(db, 11, 15);
        static_cast<void>(db.drain_archive());
        static_cast<void>(db.checkpoint(resilite::checkpoint_mode::truncate));  // the file holds that record
        insert_items(db, 16, 20);
        static_cast<void>(db.drain_archive());  // a record whose number the file holds only in its -wal
        insert_items(db, 21, 25);               // acknowledged, in the outbox, never archived
    });
    BatchedHealDb db{path};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    CHECK(rows_of(path) == expected_rows(1, 20));  // what the backup and the archive hold
    CHECK(report->to_text().find("nothing committed is missing") == std::string::npos);
    CHECK_THAT(report->may_be_lost, Catch::Contains("batched") && Catch::Contains("lost its latest commits"));
    CHECK_FALSE(report->committed_exact);
}

TEST_CASE("heal at open: a database whose -wal was removed before its first checkpoint (its file holds no table) "
          "is emptied and healed from the archive, not refused as another database",
          "[heal][archive]") {
    // Before: "not the database resilite keeps here ... new, emptied or another database", class
    // corrupt, at every open; resilite heal --dry-run said a heal would refuse (a helper's finding).
    test::temp_dir dir;
    const auto path = dir / "app.db";
    killed_then_wal_lost<HealDb>(path, [](HealDb& db) {
        insert_items(db, 1, 10);  // every commit in the -wal: no checkpoint yet
    });
    const auto found = resilite::check_health(path, resilite::check_level::header);
    INFO(found.detail);
    CHECK(found.result == resilite::health_report::finding::emptied);
    HealDb db{path};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    CHECK_THAT(report->found, Catch::Contains("no table"));
    CHECK(rows_of(path) == expected_rows(1, 10));
}

TEST_CASE("heal after resilite::restore() of an older backup: the commits the restore rolled back stay rolled back",
          "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    std::filesystem::path older;
    {
        HealDb db{path};
        insert_items(db, 1, 5);
        older = db.backup_now().path;
        insert_items(db, 6, 10);  // archived, then rolled back by the restore below
    }
    static_cast<void>(resilite::restore(older, path));
    {
        test::event_log log;
        HealDb db{path, logged<HealDb>(log)};
        CHECK(rows_of(path) == expected_rows(1, 5));
        // The sidecar's note served once: a later loss of the -wal is not the same rollback.
        CHECK(resilite::detail::read_marker(path).rolled_back_to == -1);
        insert_items(db, 11, 11);
        db.exec("DELETE FROM items WHERE id = 1");
        const auto report = db.check_archive();  // the archive alone gives this database again
        INFO(report.to_text());
        CHECK(report.reproduces_live == true);
        // The snapshot this takes says why: the copy is older than its archive (no record failed).
        bool said = false;
        for (const auto& e : log.events()) {
            CHECK(e.detail.find("could not be made durable") == std::string::npos);
            said = said || e.detail.find("older than its archive") != std::string::npos;
        }
        CHECK(said);
    }
    auto expected = expected_rows(2, 5);
    expected[11] = "item 11";
    damage_header(path);
    HealDb db{path};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    CHECK(rows_of(path) == expected);
}

TEST_CASE("heal from the archive alone of a database with a virtual table: created again from a sound damaged "
          "database with its rows, named as what may be lost when the damaged database fails its check",
          "[heal]") {
    if (!has_fts5()) return;
    test::temp_dir dir;
    const auto path = dir / "app.db";
    const bool sound = GENERATE(true, false);
    {
        HealDb db{path};
        db.exec_script("CREATE VIRTUAL TABLE docs USING fts5(body); CREATE INDEX items_by_name ON items(name)");
        db.exec("INSERT INTO docs VALUES('only in the database')");
        insert_items(db, 1, 10);
    }
    if (!sound) REQUIRE(resilite::testing::swap_index_definition(path) == "items_by_name");
    HealDb db{path};
    const auto report = db.heal();  // no backup: the archive alone; the database in place is readable
    const auto text = report.to_text();
    INFO(text);
    CHECK(report.healed);
    CHECK(rows_of(path) == expected_rows(1, 10));
    if (sound) {
        CHECK(db.query_one<std::string>("SELECT body FROM docs WHERE docs MATCH 'only'") == "only in the database");
        CHECK(report.may_be_lost.empty());
        CHECK(text.find("virtual table docs created again from the damaged database") != std::string::npos);
    } else {
        CHECK(report.may_be_lost.find("virtual table docs") != std::string::npos);
        CHECK(text.find("nothing committed is missing") == std::string::npos);
    }
}

TEST_CASE("heal after OR REPLACE deleted rows through a unique index: the rows in the way are gone again, an "
          "updated row keeps the secret its backup holds",
          "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    {
        HealDb db{path};
        db.exec_script("CREATE UNIQUE INDEX items_by_name ON items(name)");
        insert_items(db, 1, 5);
        static_cast<void>(db.backup_now());
        db.exec("UPDATE OR REPLACE items SET name = 'item 1' WHERE id = 2");  // row 1 goes
        db.exec("INSERT OR REPLACE INTO items(id, name, score, token) VALUES(6, 'item 3', 0, 't6')");  // row 3 goes
    }
    damage_header(path);
    HealDb db{path};
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    INFO(report->to_text());
    CHECK(report->healed);
    REQUIRE(report->backup_used.has_value());
    CHECK(rows_of(path) ==
          std::map<std::int64_t, std::string>{{2, "item 1"}, {4, "item 4"}, {5, "item 5"}, {6, "item 3"}});
    CHECK(db.get<Item>(2)->token == "secret 2");  // updated in place, not replaced
}

TEST_CASE("heal: no healing policy keeps the refusal", "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    history_with_backup<ItemsBackupDb>(path);
    damage_header(path);
    CHECK_THROWS_AS(ItemsBackupDb(path), resilite::error);
    CHECK(quarantined(dir.path()).empty());
    CHECK(std::filesystem::exists(path));
}

TEST_CASE("heal turned off in the settings is honoured: damage at open and at run time is refused, not healed, "
          "until it is turned on again",
          "[heal][settings]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    history_with_backup<HealDb>(path);
    damage_header(path);
    auto off = HealDb::options{};
    auto s = HealDb::default_settings();
    s.healing.enabled = false;
    off.settings = s;
    CHECK_THROWS_AS(HealDb(path, off), resilite::error);  // refused as with no_healing
    CHECK(quarantined(dir.path()).empty());
    {
        HealDb db{path};  // on again (the policy's default): healed at open
        REQUIRE(db.last_heal().has_value());
        CHECK(db.last_heal()->healed);
        CHECK(quarantined(dir.path()).size() == 1);
        // Off at run time: damage met by a call is not healed by the next one, nor on demand.
        auto now_off = db.current_settings();
        now_off.healing.enabled = false;
        db.reconfigure(now_off);
        for (int i = 41; i <= 300; ++i)
            db.insert(Item{i, std::string(200, 'q'), i * 1.0, "t"});
        static_cast<void>(db.checkpoint(resilite::checkpoint_mode::truncate));
        db.with_connection([](auto& c) { sqlite3_db_release_memory(c.native_handle()); });
        zero_root_page(path, "items");
        CHECK_THROWS_AS(static_cast<void>(db.select<Item>()), resilite::error);
        CHECK_THROWS_AS(static_cast<void>(db.select<Item>()), resilite::error);  // not healed first
        try {
            static_cast<void>(db.heal());
            FAIL("healed while healing is turned off");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == error_class::invalid_setting);
        }
        CHECK(quarantined(dir.path()).size() == 1);
        // On again: the next call heals first.
        auto on = db.current_settings();
        on.healing.enabled = true;
        db.reconfigure(on);
        CHECK(db.select<Item>().size() == 300);
        CHECK(quarantined(dir.path()).size() == 2);
    }
    // A Database type without healing cannot have it turned on at run time.
    ItemsBackupDb plain{dir / "plain.db"};
    auto on = plain.current_settings();
    on.healing.enabled = true;
    CHECK_THROWS_AS(plain.reconfigure(on), resilite::error);
}

TEST_CASE("P13 corruption recovery", "[heal][property][P13]") {
    test::temp_dir dir;
    int case_number = 0;
    rc::prop("any history x corruption x with or without a backup heals to every committed row", [&] {
        const int ops = *rc::gen::inRange(2, 60);
        const bool with_backup = *rc::gen::arbitrary<bool>();
        const int damage = *rc::gen::element(0, 1, 2, 3, 4, 5, 6);  // uniform, unlike inRange at small sizes
        const auto seed = *rc::gen::arbitrary<std::uint64_t>();
        std::mt19937_64 rng{seed};
        const auto path = dir / fmt::format("p13-{}.db", ++case_number);
        // The history, decided up front: the model is what every committed transaction left.
        struct op {
            bool erase;
            std::int64_t id;
            std::string name;
        };
        std::vector<op> history;
        std::map<std::int64_t, std::string> model;
        for (int i = 0; i < ops; ++i) {
            const auto id = static_cast<std::int64_t>(rng() % 25);
            if (rng() % 3 == 2) {
                history.push_back({true, id, {}});
                model.erase(id);
            } else {
                history.push_back({false, id, fmt::format("v{}-{}", i, std::string(rng() % 300, 'x'))});
                model[id] = history.back().name;
            }
        }
        RC_PRE(damage != 6 || !model.empty());  // an empty table's index matches whatever it names
        const int backup_at = with_backup ? static_cast<int>(rng() % static_cast<unsigned>(ops)) : -1;
        const auto run_history = [&](bool crash_at_end) {
            HealDb db{path};
            if (damage == 6) db.exec("CREATE INDEX IF NOT EXISTS items_by_name ON items(name)");
            for (int i = 0; i < ops; ++i) {
                if (history[i].erase) {
                    db.erase<Item>(history[i].id);
                } else {
                    db.upsert(Item{history[i].id, history[i].name, 0, "t"});
                }
                if (i == backup_at) static_cast<void>(db.backup_now());
            }
            if (crash_at_end) ::_exit(0);  // no close, no checkpoint: the WAL stays
        };
        const bool crash = damage == 5;  // the WAL operator needs the log a crash leaves behind
        if (crash) {
            const pid_t child = ::fork();
            RC_ASSERT(child >= 0);
            if (child == 0) {
                try {
                    run_history(true);
                } catch (...) {
                    ::_exit(3);
                }
                ::_exit(0);
            }
            int status = 0;
            ::waitpid(child, &status, 0);
            RC_ASSERT(WIFEXITED(status));
        } else {
            run_history(false);
        }
        switch (damage) {
            case 0:
                resilite::testing::overwrite_header(path, rng);
                break;
            case 1:
                resilite::testing::truncate_file(path, resilite::testing::truncation::half);
                break;
            case 2:
                resilite::testing::truncate_file(path, resilite::testing::truncation::fifty_bytes);
                break;
            case 3:
                resilite::testing::truncate_file(path, resilite::testing::truncation::zero);
                break;
            case 4:  // the table's root page: seen at run time, by the first read of it
                zero_root_page(path, "items");
                break;
            case 6:  // an index that no longer matches its table: only integrity_check sees it
                static_cast<void>(resilite::testing::swap_index_definition(path));
                break;
            default: {  // a frame of any transaction but the last (what a torn write cannot be)
                const auto commits = resilite::testing::wal_commit_frames(path);
                RC_PRE(commits.size() >= 2);
                resilite::testing::flip_wal_byte(path, 1 + static_cast<std::uint32_t>(rng() % commits[commits.size() - 2]),
                                                 rng);
            }
        }
        RC_TAG(damage);  // (the distribution is printed: every operator is exercised)
        HealDb db{path};
        if (damage == 6) {  // as the scheduled integrity check would: damage, and the next call heals
            RC_ASSERT(db.check(resilite::check_level::full).result == resilite::health_report::finding::corrupt);
        }
        try {
            static_cast<void>(db.select<Item>());
        } catch (const resilite::error& e) {
            RC_ASSERT(e.klass() == error_class::corrupt);  // and the next call heals first
        }
        std::map<std::int64_t, std::string> got;
        for (const auto& item : db.select<Item>())
            got[item.id] = item.name;
        RC_ASSERT(got == model);
        RC_ASSERT(integrity_ok(path));
        const auto report = db.last_heal();
        RC_ASSERT(report.has_value());
        RC_ASSERT(report->healed);
        RC_ASSERT(report->attempt <= 3);
        RC_ASSERT(!report->quarantine.empty());
        RC_ASSERT(std::filesystem::exists(report->quarantine));
    });
}

// Undeclared tables, a cut archive tail, a planted backup, a batched archive: every acknowledged
// commit is back, or the report names the loss.
TEST_CASE("P13 corruption recovery: adversarial histories", "[heal][property][P13][archive]") {
    using BatchedHealDb =
        resilite::Database<resilite::schema<items, logs>, resilite::archive<resilite::flush_every_ms<1000>>,
                           backups_on_demand, resilite::healing<resilite::accept_loss_since_backup>, common,
                           manual_durability, resilite::manual_clock>;
    test::temp_dir dir;
    int case_number = 0;
    rc::prop("the report never says nothing is missing when something is", [&] {
        const int ops = *rc::gen::inRange(4, 40);
        // 0 plain, 1 the archive's tail cut, 2 a trigger planted in the newest backup,
        // 3 batched archive, the writer killed and the file lost with its outbox
        const int variant = *rc::gen::element(0, 1, 2, 3);
        const auto seed = *rc::gen::arbitrary<std::uint64_t>();
        std::mt19937_64 rng{seed};
        const auto path = dir / fmt::format("p13x-{}.db", ++case_number);
        std::map<std::int64_t, std::string> items_model, notes_model;
        struct op {
            bool note, erase;
            std::int64_t id;
            std::string text;
        };
        std::vector<op> history;
        for (int i = 0; i < ops; ++i) {
            const bool note = rng() % 2 == 0;
            const auto id = static_cast<std::int64_t>(rng() % 12);
            auto& model = note ? notes_model : items_model;
            if (rng() % 4 == 3) {
                history.push_back({note, true, id, {}});
                model.erase(id);
            } else {
                history.push_back({note, false, id, fmt::format("v{}-{}", i, std::string(rng() % 80, 'x'))});
                model[id] = history.back().text;
            }
        }
        const int backup_at = static_cast<int>(rng() % static_cast<unsigned>(ops));
        // The archive record each acknowledged operation ended at (flush on commit: it is written
        // before the commit returns), so a loss can be checked against exactly the operations lost.
        std::vector<std::int64_t> seq_after(static_cast<std::size_t>(ops), 0);
        const auto run = [&](auto& db) {
            db.exec_script("CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL)");
            for (int i = 0; i < ops; ++i) {
                const auto& h = history[static_cast<std::size_t>(i)];
                if (h.note && h.erase) db.exec("DELETE FROM notes WHERE id = ?", h.id);
                if (h.note && !h.erase)
                    db.exec("INSERT INTO notes(id, body) VALUES(?, ?) ON CONFLICT(id) DO UPDATE SET body = excluded.body",
                            h.id, h.text);
                if (!h.note && h.erase) db.template erase<Item>(h.id);
                if (!h.note && !h.erase) db.upsert(Item{h.id, h.text, 0, "t"});
                if (i == backup_at) static_cast<void>(db.backup_now());
                if constexpr (std::is_same_v<std::remove_cvref_t<decltype(db)>, AcceptingDb>)
                    seq_after[static_cast<std::size_t>(i)] = db.drain_archive();
            }
        };
        if (variant == 3) {
            const pid_t child = ::fork();
            RC_ASSERT(child >= 0);
            if (child == 0) {
                try {
                    BatchedHealDb::options o;
                    BatchedHealDb db{path, o};
                    run(db);
                    ::_exit(0);  // killed: no close, no drain of the last batch (a destructor would drain)
                } catch (...) {
                    ::_exit(3);
                }
            }
            int status = 0;
            ::waitpid(child, &status, 0);
            RC_ASSERT(WIFEXITED(status));
            RC_ASSERT(WEXITSTATUS(status) == 0);
            resilite::sqlite::file_set{path}.remove_side_files();  // the file and its log lost with the disk
            resilite::testing::truncate_file(path, resilite::testing::truncation::zero);
        } else {
            {
                AcceptingDb db{path};
                run(db);
            }
            if (variant == 1) {
                const auto archive = std::filesystem::path{path.string() + ".archive"};
                for (const auto& name : resilite::detail::archive::list_segments(archive)) {
                    const auto text = read_all(archive / name);
                    write_all(archive / name, text.substr(0, text.size() * (30 + rng() % 60) / 100));
                }
            }
            if (variant == 2) {
                std::filesystem::path newest;
                for (const auto& e : std::filesystem::directory_iterator(path.string() + ".backups"))
                    if (e.path().extension() == ".db" && e.path() > newest) newest = e.path();
                resilite::sqlite::connection c{newest, SQLITE_OPEN_READWRITE};
                c.exec_script("CREATE TRIGGER planted AFTER INSERT ON items BEGIN DELETE FROM items; END");
            }
            resilite::testing::overwrite_header(path, rng);
        }
        RC_TAG(variant);
        std::optional<resilite::heal_report> report;
        std::map<std::int64_t, std::string> got_items, got_notes;
        const auto read_back = [&](auto& db) {
            report = db.last_heal();
            for (const auto& item : db.template select<Item>())
                got_items[item.id] = item.name;
            for (auto& [id, body] : db.template query<std::int64_t, std::string>("SELECT id, body FROM notes"))
                got_notes[id] = body;
            RC_ASSERT(db.template query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = 'planted'") == 0);
        };
        try {
            if (variant == 3) {
                BatchedHealDb::options o;
                BatchedHealDb db{path, o};
                read_back(db);
            } else {
                AcceptingDb db{path};
                read_back(db);
            }
        } catch (const resilite::error& e) {
            RC_FAIL(fmt::format("the heal failed: {}\n{}", e.what(), e.technical().report));
        }
        RC_ASSERT(report.has_value());
        RC_ASSERT(report->healed);
        const auto text = report->to_text();
        if (got_items == items_model && got_notes == notes_model) return;
        // Something is missing: the report must say so, never "nothing committed is missing".
        RC_ASSERT(text.find("nothing committed is missing") == std::string::npos);
        RC_ASSERT(!report->may_be_lost.empty());
        if (variant == 3) {  // the batched window: named as such, not as record numbers
            RC_ASSERT(report->may_be_lost.find("batched") != std::string::npos);
            return;
        }
        // Exactly the operations after the healed record are missing, and the report names that
        // range: the result equals the history cut after the last operation the heal reached,
        // and the evidence knows the last acknowledged record.
        RC_ASSERT(report->healed_seq.has_value());
        RC_ASSERT(report->committed_seq.has_value());
        const auto healed = *report->healed_seq;
        RC_ASSERT(*report->committed_seq == seq_after.back());
        std::map<std::int64_t, std::string> prefix_items, prefix_notes;
        int kept_ops = 0;
        for (int i = 0; i < ops; ++i) {
            const auto& h = history[static_cast<std::size_t>(i)];
            if (seq_after[static_cast<std::size_t>(i)] > healed) break;
            ++kept_ops;
            auto& model = h.note ? prefix_notes : prefix_items;
            if (h.erase) {
                model.erase(h.id);
            } else {
                model[h.id] = h.text;
            }
        }
        RC_TAG(kept_ops == 0 ? "nothing kept" : "a prefix kept");
        RC_ASSERT(got_items == prefix_items);
        RC_ASSERT(got_notes == prefix_notes);
        RC_ASSERT(report->may_be_lost.find(fmt::format("archive records {} to {} are missing", healed + 1,
                                                       *report->committed_seq)) != std::string::npos);
    });
}

// Another process opens the database at `path`, heals it, then does `after` with it; the heal must
// have succeeded.
void heal_in_another_process(const std::filesystem::path& path, const std::function<void(HealDb&)>& after = {}) {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        try {
            HealDb b{path};
            const auto r = b.heal();
            if (after) after(b);
            ::_exit(r.healed ? 0 : 2);
        } catch (...) {
            ::_exit(3);
        }
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
}

// A Database with 30 items, a backup taken after the first 20, and its events logged.
struct backed_up_items {
    test::temp_dir dir;
    std::filesystem::path path = dir / "app.db";
    test::event_log log;
    HealDb a{path, logged<HealDb>(log)};
    backed_up_items() {
        insert_items(a, 1, 20);
        static_cast<void>(a.backup_now());
        insert_items(a, 21, 30);
    }
};

TEST_CASE("heal by another process: a Database that has the file open reopens the healed one before its next "
          "write, which lands in the live database",
          "[heal]") {
    backed_up_items f;
    auto& [dir, path, log, a] = f;

    heal_in_another_process(path);  // on demand: the operator's `heal`
    REQUIRE_FALSE(quarantined(dir.path()).empty());

    a.insert(Item{31, "item 31", 0, "t"});  // after the swap: must reach the healed file
    CHECK(log.count("reopen") == 1);
    CHECK(a.query_one<int>("SELECT count(*) FROM items") == 31);
    CHECK(rows_of(path) == expected_rows(1, 31));
    // The quarantined copy never sees it.
    const auto q = quarantined(dir.path()).front() / "app.db";
    CHECK(rows_of(q).count(31) == 0);
}

// The heal count in the gate file's first 8 bytes (core/detail/file_gate.hpp).
std::uint64_t heal_count(const std::filesystem::path& db) {
    std::uint64_t n = 0;
    std::ifstream in{resilite::detail::gate_path(db), std::ios::binary};
    in.read(reinterpret_cast<char*>(&n), sizeof n);
    return in ? n : 0;
}

TEST_CASE("heal by another process: a read notices it by the gate's heal count, reads the healed file, "
          "and each heal counts twice: when it takes the gate and when its file is in place",
          "[heal]") {
    backed_up_items f;
    auto& [dir, path, log, a] = f;
    const auto before = heal_count(path);

    heal_in_another_process(path, [](HealDb& b) { b.insert(Item{31, "item 31", 0, "t"}); });  // in the healed file
    CHECK(heal_count(path) == before + 2);
    // The first call after the heal is a read: it reopens first, and sees the healed file (the
    // file it had open, now quarantined, holds 30 rows).
    CHECK(a.query_one<int>("SELECT count(*) FROM items") == 31);
    CHECK(log.count("reopen") == 1);
    CHECK(a.query_one<int>("SELECT count(*) FROM items") == 31);
    CHECK(log.count("reopen") == 1);  // once: the count it saw is the count now
}

TEST_CASE("healing: a file replaced by hand, not by a heal, is followed at the next write (the commit looks at the "
          "file), and a read before it still reads the file this Database opened",
          "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    test::event_log log;
    HealDb a{path, logged<HealDb>(log)};
    insert_items(a, 1, 10);
    const auto side = dir / "side.db";
    {
        resilite::sqlite::connection c{path};
        c.exec("VACUUM INTO ?", side.string());  // the same database (its identity), another file
    }
    {
        resilite::sqlite::connection c{side};
        c.exec_script("INSERT INTO items(id, name, score, token) VALUES(99, 'by hand', 0, 't')");
    }
    // The -wal at the path is the old file's: emptied first, as anyone replacing a WAL database
    // by hand must (SQLite would apply its frames to the new file).
    static_cast<void>(a.checkpoint(resilite::checkpoint_mode::truncate));
    std::filesystem::rename(side, path);
    const auto heals = heal_count(path);
    // Documented (docs/healing.md): a read costs no system call, so it learns of a replacement
    // only from a heal's count; nothing counted here.
    CHECK(a.query_one<int>("SELECT count(*) FROM items") == 10);
    CHECK(log.count("reopen") == 0);
    a.insert(Item{11, "item 11", 0, "t"});  // the commit hook sees the file changed: refused, retried on it
    CHECK(log.count("reopen") == 1);
    CHECK(a.query_one<int>("SELECT count(*) FROM items") == 12);
    CHECK(rows_of(path).count(99) == 1);
    CHECK(rows_of(path).count(11) == 1);
    CHECK(heal_count(path) == heals);
}

namespace {

void touch(const std::filesystem::path& p) { std::ofstream{p} << "x"; }

// Waits (polling the file system) until one of the files exists; returns its index. Counts
// nothing but the files: however slow the machine, the other process gets there. If the other
// process ends first (a failure there), returns the number of files instead of hanging.
std::size_t wait_for_any(std::initializer_list<std::filesystem::path> files, pid_t other) {
    const bool other_is_parent = ::getppid() == other;
    for (;;) {
        std::size_t i = 0;
        for (const auto& f : files) {
            if (std::filesystem::exists(f)) return i;
            ++i;
        }
        const bool gone = other_is_parent ? ::getppid() != other
                                          : ::waitpid(other, nullptr, WNOHANG) == other || ::kill(other, 0) != 0;
        if (gone) return i;
        std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
}

}  // namespace

TEST_CASE("heal by another process: a write this process started before the heal reached its files lands in "
          "the healed database, never only in the quarantined copy",
          "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    const auto ready = dir / "child-ready", go = dir / "go", waiting = dir / "heal-waits",
               moved = dir / "heal-moved", committed = dir / "committed", retrying = dir / "write-retried";
    {
        HealDb a{path};
        insert_items(a, 1, 20);
        static_cast<void>(a.backup_now());
        insert_items(a, 21, 30);
    }
    const pid_t parent = ::getpid();
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {  // another process heals on demand once told to
        try {
            HealDb::options o;
            o.observer = resilite::callback_observer{[&](const resilite::event& e) {
                if (e.name == "heal_progress" && e.detail.find("waiting for") != std::string_view::npos) touch(waiting);
            }};
            o.inject_failure = [&](std::string_view op, int) {
                if (op == "heal:quarantine:moved") touch(moved);
                // The write ends first, or is held back (its commit refused, then retried).
                if (op == "heal:swap") static_cast<void>(wait_for_any({committed, retrying}, parent));
                return SQLITE_OK;
            };
            HealDb b{path, o};
            touch(ready);
            if (wait_for_any({go}, parent) != 0) ::_exit(4);
            const auto r = b.heal();
            ::_exit(r.healed ? 0 : 2);
        } catch (...) {
            ::_exit(3);
        }
    }
    REQUIRE(wait_for_any({ready}, child) == 0);
    // This process archives in batches: its commit waits in the database's outbox, which the heal
    // drains before it moves the files (a commit in the quarantined copy would be lost).
    using BatchedHealDb = resilite::Database<resilite::schema<items, logs>,
                                             resilite::archive<resilite::flush_every_ms<60000>>, backups_on_demand,
                                             resilite::healing<>, common, manual_durability>;
    BatchedHealDb::options o;
    o.observer = resilite::callback_observer{[&](const resilite::event& e) {
        if (e.name == "retry") touch(retrying);
    }};
    // The insert has begun (its check of the file is behind it) when the other process starts to
    // heal; it goes on once the heal waits for it or has moved the files.
    o.inject_failure = [&](std::string_view op, int attempt) {
        if (op == "insert" && attempt == 1 && !std::filesystem::exists(go)) {
            touch(go);
            static_cast<void>(wait_for_any({waiting, moved}, child));
        }
        return SQLITE_OK;
    };
    BatchedHealDb a{path, o};
    // Either the heal waited for the write (committed, then healed with it), or the gate refused
    // its commit: with fail_fast (the default degradation) that is class degraded at once, and
    // nothing was committed anywhere.
    bool acknowledged = true;
    try {
        a.insert(Item{31, "item 31", 0, "t"});
    } catch (const resilite::error& e) {
        CHECK(e.klass() == error_class::degraded);
        acknowledged = false;
        touch(retrying);
    }
    touch(committed);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    CHECK((std::filesystem::exists(retrying) || std::filesystem::exists(waiting)));
    const int last = acknowledged ? 31 : 30;
    CHECK(a.query_one<int>("SELECT count(*) FROM items") == last);
    CHECK(rows_of(path) == expected_rows(1, last));
}

TEST_CASE("heal by another process after both saw the damage: the second does not heal the healed database again",
          "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    {
        HealDb db{path};
        insert_items(db, 1, 20);
        static_cast<void>(db.backup_now());
        insert_items(db, 21, 30);
    }
    HealDb a{path};
    HealDb b{path};  // (two Databases of one path behave as two processes do)
    zero_root_page(path, "items");
    for (auto* db : {&a, &b}) {
        try {
            static_cast<void>(db->select<Item>());
            FAIL("read a damaged page");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == error_class::corrupt);
        }
    }
    CHECK(b.select<Item>().size() == 30);  // b heals first
    REQUIRE(quarantined(dir.path()).size() == 1);
    CHECK(a.select<Item>().size() == 30);  // a takes up b's heal
    CHECK(quarantined(dir.path()).size() == 1);
    REQUIRE(a.last_heal().has_value());
    CHECK(a.last_heal()->sources.front().source == "another process");
    CHECK(a.health().healthy);
    CHECK(rows_of(path) == expected_rows(1, 30));
}

TEST_CASE("heal of what another program wrote around the library: db.heal() of a sound database keeps its table, "
          "a heal at open names the table and the changes no source held, never 'nothing missing'",
          "[heal][archive]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    const auto another_program = [&] {
        resilite::sqlite::connection c{path, SQLITE_OPEN_READWRITE};
        c.exec_script("CREATE TABLE extra(k INTEGER PRIMARY KEY, v TEXT); INSERT INTO extra VALUES(1, 'a'), (2, 'b');"
                      "INSERT INTO logs(msg) VALUES('around 1'), ('around 2');");
    };
    SECTION("db.heal() of a sound database") {
        HealDb db{path};
        for (int i = 1; i <= 20; ++i)
            db.insert(Item{i, "n", 0, "t"});
        static_cast<void>(db.backup_now());
        another_program();
        const auto report = db.heal();
        INFO(report.to_text());
        CHECK(db.query_one<int>("SELECT count(*) FROM extra") == 2);
        CHECK(db.query_one<int>("SELECT count(*) FROM logs") == 2);
        CHECK(db.query_one<int>("SELECT count(*) FROM items") == 20);
    }
    SECTION("db.heal() of a sound database through a Database without the archive (the operator's command) is "
            "refused, nothing moved or counted, when it holds changes the archive has not received") {
        {
            HealDb db{path};
            for (int i = 1; i <= 20; ++i)
                db.insert(Item{i, "n", 0, "t"});
            static_cast<void>(db.backup_now());
        }
        {
            resilite::sqlite::connection c{path, SQLITE_OPEN_READWRITE};  // captured by the triggers
            c.exec_script("DELETE FROM items WHERE id <= 3; UPDATE items SET name = 'changed' WHERE id = 12;");
        }
        BackupOnlyHealDb tool{path};
        try {
            static_cast<void>(tool.heal());
            FAIL("a heal threw away changes a sound database held");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == error_class::aborted);
            CHECK_THAT(e.technical().note, Catch::Contains("4 captured changes its archive has not received") &&
                                               Catch::Contains("nothing was moved"));
        }
        // Nothing counted toward the circuit breaker, nothing quarantined.
        CHECK(resilite::detail::read_marker(path).heal_attempts == 0);
        CHECK_FALSE(std::filesystem::exists(dir / "quarantine"));
        CHECK(tool.query_one<int>("SELECT count(*) FROM items") == 17);
        CHECK(tool.query_one<std::string>("SELECT name FROM items WHERE id = 12") == "changed");
    }
    SECTION("healed at open after an unclean close") {
        const pid_t child = ::fork();
        if (child == 0) {
            try {
                HealDb db{path};
                for (int i = 1; i <= 300; ++i)
                    db.insert(Item{i, std::string(200, 'n'), 0, "t"});
                static_cast<void>(db.backup_now());
                static_cast<void>(db.checkpoint(resilite::checkpoint_mode::truncate));
                ::_exit(0);  // no close: still listed in the sidecar
            } catch (...) {
                ::_exit(3);
            }
        }
        int status = 0;
        ::waitpid(child, &status, 0);
        REQUIRE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
        another_program();
        std::uint32_t leaf = 0;
        {
            resilite::sqlite::connection c{path, SQLITE_OPEN_READWRITE};
            c.exec_script("PRAGMA wal_checkpoint(TRUNCATE)");
            leaf = static_cast<std::uint32_t>(
                c.query_one<std::int64_t>("SELECT pageno FROM dbstat WHERE name = 'items' AND pagetype = 'leaf' "
                                          "ORDER BY pageno DESC LIMIT 1")
                    .value_or(0));
        }
        REQUIRE(leaf > 1);
        resilite::testing::zero_page(path, leaf);
        HealDb db{path};
        const auto report = db.last_heal();
        REQUIRE(report.has_value());
        INFO(report->to_text());
        CHECK(report->healed);
        CHECK(db.query_one<int>("SELECT count(*) FROM items") == 300);
        CHECK(report->may_be_lost.find("the table extra") != std::string::npos);
        CHECK(report->may_be_lost.find("changes captured in the damaged database were never archived") !=
              std::string::npos);
        CHECK(report->to_text().find("nothing committed is missing") == std::string::npos);
    }
}

TEST_CASE("heal at open after an unclean close: a quick_check finds a damaged page, a clean restart skips it",
          "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    const auto build = [&](bool crash) {
        for (const char* suffix : {"", "-wal", "-shm", "-resilite"})
            std::filesystem::remove(path.string() + suffix);
        std::filesystem::remove_all(path.string() + ".archive");
        std::filesystem::remove_all(path.string() + ".backups");
        const pid_t child = ::fork();
        if (child == 0) {
            try {
                HealDb db{path};
                for (int i = 1; i <= 300; ++i)
                    db.insert(Item{i, std::string(200, 'n'), 0, "t"});
                static_cast<void>(db.checkpoint(resilite::checkpoint_mode::truncate));
                if (crash) ::_exit(0);  // no close: still listed in the sidecar
            } catch (...) {
                ::_exit(3);
            }
            ::_exit(0);
        }
        int status = 0;
        ::waitpid(child, &status, 0);
        REQUIRE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
        // A leaf page of items (not the root): only a b-tree check or a read of it sees it.
        std::uint32_t leaf = 0;
        {
            resilite::sqlite::connection c{path, SQLITE_OPEN_READONLY};
            leaf = static_cast<std::uint32_t>(
                c.query_one<std::int64_t>("SELECT pageno FROM dbstat WHERE name = 'items' AND pagetype = 'leaf' "
                                          "ORDER BY pageno DESC LIMIT 1")
                    .value_or(0));
        }
        REQUIRE(leaf > 1);
        resilite::testing::zero_page(path, leaf);
    };

    SECTION("crashed: healed at open") {
        build(true);
        HealDb db{path};
        const auto report = db.last_heal();
        REQUIRE(report.has_value());
        CHECK(report->detected_by == "open: quick_check after an unclean close");
        CHECK(report->healed);
        CHECK(db.query_one<int>("SELECT count(*) FROM items") == 300);
    }
    SECTION("closed cleanly: no check at open, the damage is met (and healed) by the first read of it") {
        build(false);
        HealDb db{path};
        CHECK_FALSE(db.last_heal().has_value());
        CHECK_THROWS_AS(static_cast<void>(db.select<Item>()), resilite::error);
        CHECK(db.select<Item>().size() == 300);
        REQUIRE(db.last_heal().has_value());
        CHECK(db.last_heal()->detected_by.find("run time") != std::string::npos);
    }
}

TEST_CASE("heal time limit: a heal that takes longer than its limit stops there, between sources or inside an "
          "archive replay, says so, swaps nothing in, deletes nothing",
          "[heal]") {
    // Where the time runs out: "six minutes" pass there, counted on the manual clock, not waited
    // for. The replay has a tail of 190 records to apply after the backup.
    const bool in_replay = GENERATE(false, true);
    const std::string phase = in_replay ? "heal:replay" : "heal:quarantine";
    const int last = in_replay ? 200 : 10;
    INFO(phase);
    test::temp_dir dir;
    const auto path = dir / "app.db";
    resilite::manual_clock clock;
    const auto with_clock = [&] {
        ClockedDb::options o;
        o.clock = clock;
        return o;
    };
    {
        ClockedDb db{path, with_clock()};
        insert_items(db, 1, 10);
        static_cast<void>(db.backup_now());
        insert_items(db, 11, last);
    }
    damage_header(path);
    auto o = with_clock();
    o.inject_failure = [clock, phase](std::string_view operation, int) {
        if (operation == phase) clock.advance(std::chrono::minutes{6});
        return SQLITE_OK;
    };
    try {
        ClockedDb db{path, o};
        FAIL("healed past the heal's time limit");
    } catch (const resilite::error& e) {
        INFO(e.technical().report);
        CHECK(e.klass() == error_class::corrupt);
        CHECK(e.technical().report.find("longer than its limit of 300 s") != std::string::npos);
        if (in_replay) CHECK(e.technical().report.find("nothing was applied") != std::string::npos);
    }
    CHECK_FALSE(std::filesystem::exists(path));  // nothing swapped in
    const auto q = quarantined(dir.path());
    REQUIRE(q.size() == 1);
    CHECK(std::filesystem::exists(q.front() / "app.db"));
    // Within its limit, the next open heals.
    ClockedDb db{path, with_clock()};
    CHECK(rows_of(path) == expected_rows(1, last));
}

TEST_CASE("heal at open when SQLite meets damage the header check cannot see: a zeroed page of resilite's own "
          "table after a clean close",
          "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    history_with_backup<HealDb>(path);
    zero_root_page(path, "resilite_identity");
    HealDb db{path};
    REQUIRE(db.last_heal().has_value());
    CHECK(db.last_heal()->healed);
    CHECK(db.last_heal()->detected_by == "open: SQLite met the damage");
    CHECK(rows_of(path) == expected_rows(1, 40));
    CHECK(integrity_ok(path));
}

TEST_CASE("heal of damage a check found and the Database closed before healing: the next open heals it",
          "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    {
        HealDb db{path};
        db.exec("CREATE INDEX items_by_name ON items(name)");
        insert_items(db, 1, 20);
        static_cast<void>(db.backup_now());
        insert_items(db, 21, 30);
    }
    static_cast<void>(resilite::testing::swap_index_definition(path));
    {
        HealDb db{path};  // a quick_check does not see it; a full check does
        REQUIRE(db.check(resilite::check_level::full).result == resilite::health_report::finding::corrupt);
    }  // closed before any call healed it
    HealDb db{path};
    REQUIRE(db.last_heal().has_value());
    CHECK(db.last_heal()->found.find("damage seen before the last close") != std::string::npos);
    CHECK(integrity_ok(path));
    CHECK(rows_of(path) == expected_rows(1, 30));
}

TEST_CASE("heal on demand of a sound database that runs out of time: the database is put back, unchanged, and "
          "stays open",
          "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    resilite::manual_clock clock;
    ClockedDb::options o;
    o.clock = clock;
    o.inject_failure = [clock](std::string_view operation, int) {
        if (operation == "heal:replay") clock.advance(std::chrono::minutes{6});
        return SQLITE_OK;
    };
    ClockedDb db{path, o};
    insert_items(db, 1, 10);
    static_cast<void>(db.backup_now());
    insert_items(db, 11, 50);
    try {
        static_cast<void>(db.heal());
        FAIL("healed past the heal's time limit");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == error_class::aborted);
        CHECK(std::string{e.what()}.find("put back where it was") != std::string::npos);
    }
    REQUIRE(std::filesystem::exists(path));
    CHECK(rows_of(path) == expected_rows(1, 50));
    CHECK(db.select<Item>().size() == 50);  // still open, on the same database
    insert_items(db, 51, 51);
    CHECK(rows_of(path) == expected_rows(1, 51));
}

TEST_CASE("heal not needed for a declared index whose definition was swapped: schema sync rebuilds it from the "
          "table at open",
          "[heal]") {
    using indexed_items = resilite::table<"items", Item, resilite::primary_key<"id">, resilite::secret<"token">,
                                          resilite::index<"items_by_name", "name">>;
    using IndexedDb = resilite::Database<resilite::schema<indexed_items, logs>, resilite::archive<>, backups_on_demand,
                                         resilite::healing<>, common, manual_durability>;
    test::temp_dir dir;
    const auto path = dir / "app.db";
    {
        IndexedDb db{path};
        insert_items(db, 1, 30);
    }
    REQUIRE(resilite::testing::swap_index_definition(path) == "items_by_name");
    REQUIRE_FALSE(integrity_ok(path));  // the index no longer matches its table
    IndexedDb db{path};
    CHECK(db.sync_report().actions.size() == 1);
    CHECK(integrity_ok(path));
    CHECK(db.check(resilite::check_level::full).ok());
    CHECK_FALSE(db.last_heal().has_value());  // the table held every row: nothing to heal from
    CHECK(rows_of(path) == expected_rows(1, 30));
    CHECK(db.query_one<std::string>("SELECT name FROM items INDEXED BY items_by_name WHERE name = 'item 7'") ==
          "item 7");
}

TEST_CASE("restore drill: backup plus archive tail equals the live database, health shows the verdict", "[heal][drill]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    test::event_log log;
    HealDb db{path, logged<HealDb>(log)};
    insert_items(db, 1, 20);
    static_cast<void>(db.backup_now());
    insert_items(db, 21, 30);
    db.erase<Item>(3);

    const auto r = db.drill();
    INFO(r.to_text());
    CHECK(r.ok);
    CHECK(r.backup_used.has_value());
    REQUIRE(r.tables.size() == 2);
    CHECK(r.tables[0].name == "items");
    CHECK(r.tables[0].live_rows == 29);
    CHECK(r.tables[0].matches);
    CHECK(log.count("drill") == 1);
    const auto h = db.health();
    CHECK(h.last_drill_ok == true);
    CHECK(h.last_drill_time.has_value());
    CHECK(h.to_json().find("\"last_drill_ok\":true") != std::string::npos);
    // No scratch file left behind.
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
        CHECK(e.path().filename().string().find("resilite-drill") == std::string::npos);
}

TEST_CASE("restore drill: never past the record the live database holds (another process's record written "
          "ahead of its COMMIT)",
          "[heal][drill]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    {
        ArchivedDb db{path};
        insert_items(db, 1, 10);
        static_cast<void>(db.backup_now());
        insert_items(db, 11, 15);
    }
    // The record the next commit writes ahead, made for real, then everything put back as it was.
    test::temp_dir saved;
    std::filesystem::copy(dir.path(), saved.path(), std::filesystem::copy_options::recursive);
    { ArchivedDb other{path}; insert_items(other, 16, 16); }
    const auto segments = resilite::detail::archive::list_segments(dir / "app.db.archive");
    REQUIRE(segments.size() == 1);
    const auto written = read_all(dir / "app.db.archive" / segments.front());
    const auto at = written.find("'item 16'");
    REQUIRE(at != std::string::npos);
    const auto from = written.rfind("-- txn ", at);
    const auto trailer = written.find(" crc32 ", at);
    REQUIRE(trailer != std::string::npos);
    const auto ahead = written.substr(from, written.find('\n', trailer) + 1 - from);
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
        std::filesystem::remove_all(e.path());
    std::filesystem::copy(saved.path(), dir.path(), std::filesystem::copy_options::recursive);

    auto o = ArchivedDb::options{};
    o.settings = ArchivedDb::default_settings();
    o.settings->busy_timeout = std::chrono::milliseconds{50};  // (the drill's drains meet the writer below)
    ArchivedDb db{path, o};
    // Another writer appended it and has not committed yet: it holds the write lock, and the
    // live database ends at item 15.
    sqlite3* writer = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &writer) == SQLITE_OK);
    REQUIRE(sqlite3_exec(writer, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
    const auto segment = dir / "app.db.archive" / segments.front();
    write_all(segment, read_all(segment) + ahead);
    const auto r = db.drill();
    sqlite3_exec(writer, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(writer);
    INFO(r.to_text());
    CHECK(r.ok);
    REQUIRE(r.tables.size() == 2);
    CHECK(r.tables[0].live_rows == 15);
    CHECK(r.tables[0].restored_rows == 15);
}

TEST_CASE("restore drill passed over a backup that fails its manifest check: the report and its event name it",
          "[heal][drill]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    test::event_log log;
    HealDb db{path, logged<HealDb>(log)};
    insert_items(db, 1, 10);
    const auto older = db.backup_now().path;
    insert_items(db, 11, 20);
    const auto newest = db.backup_now().path;
    { std::ofstream{newest, std::ios::app} << 'x'; }  // no longer what its manifest entry says
    const auto r = db.drill();
    INFO(r.to_text());
    CHECK(r.ok);  // the older backup and the archive still give the database
    CHECK(r.backup_used == older);
    REQUIRE(r.skipped_backups.size() == 1);
    CHECK(r.skipped_backups.front().find(newest.filename().string()) != std::string::npos);
    CHECK(r.to_text().find("skipped") != std::string::npos);
    const auto events = log.events();
    const auto drill = std::find_if(events.rbegin(), events.rend(), [](const auto& e) { return e.name == "drill"; });
    REQUIRE(drill != events.rend());
    CHECK(drill->result == resilite::outcome::warning);
    CHECK(drill->detail.find(newest.filename().string()) != std::string::npos);
}

TEST_CASE("restore drill passes over another database's backup in a shared backup directory (same file name): "
          "named as skipped, the database's own backup used",
          "[heal][drill]") {
    test::temp_dir dir;
    std::filesystem::create_directories(dir / "a");
    std::filesystem::create_directories(dir / "b");
    const auto shared = dir / "backups";
    const auto options = [&] {
        HealDb::options o;
        o.settings = HealDb::default_settings();
        o.settings->backup.directory = shared.string();
        return o;
    };
    HealDb a{dir / "a" / "app.db", options()};
    insert_items(a, 1, 10);
    const auto own = a.backup_now().path;
    {
        HealDb b{dir / "b" / "app.db", options()};
        insert_items(b, 1, 3);
        static_cast<void>(b.backup_now());  // the newest in the directory, another database's
    }
    const auto r = a.drill();
    INFO(r.to_text());
    CHECK(r.ok);
    CHECK(r.backup_used == own);
    REQUIRE(r.skipped_backups.size() == 1);
    CHECK(r.skipped_backups.front().find("a backup of another database") != std::string::npos);
}

TEST_CASE("restore drill fails, as an error event, when the backups and the archive could not heal the database",
          "[heal][drill]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    SECTION("a backup without archive lacks the later commits") {
        test::event_log log;
        BackupOnlyHealDb db{path, logged<BackupOnlyHealDb>(log)};
        insert_items(db, 1, 5);
        static_cast<void>(db.backup_now());
        insert_items(db, 6, 8);
        const auto r = db.drill();
        INFO(r.to_text());
        CHECK_FALSE(r.ok);
        CHECK(r.problem.find("no archive") != std::string::npos);
        CHECK(db.health().last_drill_ok == false);
        const auto events = log.events();
        const auto drill = std::find_if(events.begin(), events.end(), [](const auto& e) { return e.name == "drill"; });
        REQUIRE(drill != events.end());
        CHECK(drill->result == resilite::outcome::failed);
    }
    SECTION("an archive with a segment cut short cannot be replayed") {
        ArchiveOnlyHealDb db{path};
        insert_items(db, 1, 30);
        static_cast<void>(db.drain_archive());
        for (const auto& e : std::filesystem::directory_iterator(dir / "app.db.archive")) {
            if (e.path().extension() != ".sql") continue;
            const auto text = read_all(e.path());
            write_all(e.path(), text.substr(0, text.size() / 2) + "garbage in the middle\n" + text.substr(text.size() / 2));
        }
        const auto r = db.drill();
        INFO(r.to_text());
        CHECK_FALSE(r.ok);
    }
}

TEST_CASE("restore drill beside another process that writes: compared at one commit, never a false alarm",
          "[heal][drill][archive]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    const auto started = dir / "writer-started";
    const auto stop = dir / "writer-stop";
    test::event_log log;
    HealDb db{path, logged<HealDb>(log)};
    insert_items(db, 1, 10);
    static_cast<void>(db.backup_now());
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        int code = 0;
        try {
            HealDb writer{path};
            for (int i = 1000; !std::filesystem::exists(stop); ++i) {
                writer.insert(Item{i, fmt::format("w {}", i), 0, "t"});
                if (i == 1005) write_all(started, "yes");
            }
        } catch (...) {
            code = 1;
        }
        ::_exit(code);
    }
    while (!std::filesystem::exists(started)) std::this_thread::yield();  // the writer has committed
    int ok = 0;
    for (int round = 0; round < 5; ++round) {
        const auto r = db.drill();
        INFO(r.to_text());
        ok += r.ok ? 1 : 0;
    }
    write_all(stop, "stop");
    int status = 0;
    ::waitpid(child, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(ok == 5);
    CHECK(db.health().healthy);
    for (const auto& e : log.events())
        CHECK(e.error != resilite::error_class::corrupt);
}

TEST_CASE("restore drill on a schedule, counted on the manual clock", "[heal][drill]") {
    using DrilledDb = resilite::Database<resilite::schema<items, logs>, resilite::archive<>, backups_on_demand,
                                         resilite::healing<>, common, manual_durability, resilite::manual_clock>;
    test::temp_dir dir;
    resilite::manual_clock clock;
    test::event_log log;
    DrilledDb::options o;
    o.clock = clock;
    o.observer = log.observer();
    o.settings = DrilledDb::default_settings();
    o.settings->healing.drill_interval = std::chrono::seconds{60};
    DrilledDb db{dir / "app.db", o};
    insert_items(db, 1, 3);
    static_cast<void>(db.maintain());
    CHECK(log.count("drill") == 0);
    clock.advance(std::chrono::seconds{61});
    CHECK(db.maintain());
    CHECK(log.count("drill") == 1);
    CHECK(db.health().last_drill_ok == true);
}

TEST_CASE("heal with the disk full: a clear error, nothing deleted, with room again the next open heals", "[heal]") {
    test::temp_dir dir;
    const test::small_volume volume{dir.path(), "8m"};
    if (!volume.mounted()) {
        WARN("cannot mount a small tmpfs here (needs root): the full-disk heal is not exercised");
        return;
    }
    const auto path = volume.path() / "app.db";
    {
        HealDb db{path};
        db.transaction([](auto& tx) {
            for (int i = 1; i <= 200; ++i)
                tx.insert(Item{i, std::string(300, 'f'), 0, "t"});
        });
        static_cast<void>(db.backup_now());
        insert_items(db, 201, 210);
    }
    damage_header(path);
    // Fill the volume, leaving room for the sidecar but not for a restored copy.
    struct statvfs fs {};
    REQUIRE(::statvfs(volume.path().c_str(), &fs) == 0);
    const auto free_bytes = static_cast<std::int64_t>(fs.f_bavail) * static_cast<std::int64_t>(fs.f_frsize);
    const auto filler = volume.path() / "filler";
    {
        std::ofstream out(filler, std::ios::binary);
        const std::string block(4096, 'x');
        for (std::int64_t n = 0; n + 16 * 4096 < free_bytes; n += 4096)
            out << block;
    }
    try {
        HealDb db{path};
        FAIL("healed on a full volume");
    } catch (const resilite::error& e) {
        INFO(e.technical().report);
        CHECK(e.klass() == error_class::full);  // not damage: out of room, and what to do about it
        CHECK(e.technical().report.find("free space and open again") != std::string::npos);
        CHECK(e.technical().report.find("to recover by hand") != std::string::npos);
    }
    // Nothing deleted: the damaged file is in quarantine, the backup and archive are intact.
    std::vector<std::filesystem::path> q;
    for (const auto& e : std::filesystem::directory_iterator(volume.path() / "quarantine"))
        q.push_back(e.path());
    REQUIRE(q.size() == 1);
    CHECK(std::filesystem::exists(q.front() / "app.db"));

    std::filesystem::remove(filler);
    HealDb db{path};
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 210);
    REQUIRE(db.last_heal().has_value());
    CHECK(db.last_heal()->attempt == 2);
}

TEST_CASE("heal at run time on the background thread: damage seen by a call is healed without another call",
          "[heal]") {
    using BackgroundDb =
        resilite::Database<resilite::schema<items, logs>, resilite::archive<>, backups_on_demand, resilite::healing<>,
                           common, resilite::wal_durability<resilite::synchronous::full, 60, 64, true>,
                           resilite::manual_clock>;
    test::temp_dir dir;
    const auto path = dir / "app.db";
    resilite::manual_clock clock;
    test::event_log log;
    BackgroundDb::options o;
    o.clock = clock;
    o.observer = log.observer();
    BackgroundDb db{path, o};
    insert_items(db, 1, 50);
    static_cast<void>(db.backup_now());
    insert_items(db, 51, 60);
    static_cast<void>(db.checkpoint(resilite::checkpoint_mode::truncate));
    db.with_connection([](auto& c) { sqlite3_db_release_memory(c.native_handle()); });
    zero_root_page(path, "items");

    CHECK_THROWS_AS(static_cast<void>(db.select<Item>()), resilite::error);
    REQUIRE(log.wait_for("heal_finished", 1));  // counted, not timed: the thread reports it
    const auto report = db.last_heal();
    REQUIRE(report.has_value());
    CHECK(report->healed);
    CHECK(report->detected_by.find("background") != std::string::npos);
    CHECK(db.health().healthy);
    CHECK(rows_of(path) == expected_rows(1, 60));
}

TEST_CASE("heal after a persistent I/O error on a file that fails its quick_check, not for an I/O error alone",
          "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    bool failing = false;
    HealDb::options o;
    o.settings = HealDb::default_settings();
    o.settings->retry.max_attempts = 3;
    o.inject_failure = [&](std::string_view operation, int) { return failing && operation == "query" ? SQLITE_IOERR : SQLITE_OK; };
    HealDb db{path, o};
    insert_items(db, 1, 40);
    static_cast<void>(db.backup_now());
    insert_items(db, 41, 50);

    failing = true;  // the volume answers with I/O errors, the file is sound: no heal
    CHECK_THROWS_AS(static_cast<void>(db.query<int>("SELECT count(*) FROM items")), resilite::error);
    CHECK(db.health().healthy);

    static_cast<void>(db.checkpoint(resilite::checkpoint_mode::truncate));
    db.with_connection([](auto& c) { sqlite3_db_release_memory(c.native_handle()); });
    zero_root_page(path, "items");  // now the file is damaged too
    CHECK_THROWS_AS(static_cast<void>(db.query<int>("SELECT count(*) FROM items")), resilite::error);
    CHECK_FALSE(db.health().healthy);
    failing = false;
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 50);  // healed first
    REQUIRE(db.last_heal().has_value());
    CHECK(db.last_heal()->found.find("persistent I/O error") != std::string::npos);
}

TEST_CASE("heal of another process in progress (its gate held, the file moved aside): an open waits as busy, never "
          "calls the file missing, and opens once the heal is over",
          "[heal]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    { HealDb db{path}; insert_items(db, 1, 5); }
    const auto aside = dir / "moved-by-the-heal.db";
    HealDb::options o;
    o.settings = HealDb::default_settings();
    o.settings->retry.max_attempts = 3;
    {
        resilite::detail::exclusive_gate heal{path};  // what a heal holds from before it moves the file
        REQUIRE(heal.try_take());
        std::filesystem::rename(path, aside);
        try {
            HealDb db{path, o};
            FAIL("opened while a heal held the gate");
        } catch (const resilite::error& e) {
            INFO(e.what());
            CHECK((e.klass() == resilite::error_class::busy || e.klass() == resilite::error_class::retry_exhausted));
            CHECK(std::string{e.what()}.find("missing") == std::string::npos);
        }
        std::filesystem::rename(aside, path);  // the heal puts its database in place
    }
    HealDb db{path, o};
    CHECK(rows_of(path) == expected_rows(1, 5));
}

TEST_CASE("archive: a new database created where the one an archive describes was lost never takes that archive "
          "over (a snapshot of nothing after its records): the open fails, the archive is untouched",
          "[archive][identity]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    { HealDb db{path}; insert_items(db, 1, 30); }
    const auto archive = std::filesystem::path{path.string() + ".archive"};
    // What a new machine is left with after a fetch from off the machine that did not heal: the
    // archive without its IDENTITY, no database, no sidecar.
    std::filesystem::remove(resilite::detail::archive_identity_path(archive));
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
        if (e.path() != archive) std::filesystem::remove_all(e.path());
    const auto segments = resilite::detail::archive::list_segments(archive);
    REQUIRE(segments.size() == 1);
    const auto before = read_all(archive / segments.front());
    try {
        ArchivedDb db{path};
        FAIL("a new database took over an archive of 30 commits");
    } catch (const resilite::error& e) {
        INFO(e.what());
        CHECK(e.klass() == resilite::error_class::archive);
        CHECK(std::string{e.what()}.find("move the archive directory aside") != std::string::npos);
    }
    CHECK(read_all(archive / segments.front()) == before);
    // The archive still rebuilds the database it describes.
    static_cast<void>(resilite::rebuild(archive, dir / "rebuilt.db"));
    CHECK(rows_of(dir / "rebuilt.db") == expected_rows(1, 30));
}

}  // namespace heal_healing_tests
