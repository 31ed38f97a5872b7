// The archive's reading side: rebuild, replay and inspect; damaged and hostile archives; the
// state machine that checks a rebuild from archives alone against the live database.

#include "archive_support.hpp"

#include <resilite/archive/detail/archive_format.hpp>
#include <resilite/archive/detail/archive_writer.hpp>
#include <resilite/core/detail/crc32.hpp>

#include <boost/crc.hpp>

#include <catch2/catch.hpp>
#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <tuple>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace archive_rebuild_tests {

using namespace test::archive;
namespace fmtr = resilite::detail::archive;

namespace {

using BatchedV2Db = resilite::Database<resilite::schema<items_v2, logs, tags>,
                                       resilite::archive<resilite::flush_every_ms<1000>>, common,
                                       test::manual_durability, resilite::manual_clock>;

// One live database (first with the V1 table, after add_column with V2), batched archiving so
// that commits wait in the outbox until a drain, the interval or the close.
class live_database {
public:
    explicit live_database(const test::temp_dir& dir) : path_(dir / "live.db"), dir_(dir.path()) { open(); }

    template <class F>
    void with(F&& f) {
        if (v2_) {
            f(*v2_);
        } else {
            f(*v1_);
        }
    }
    [[nodiscard]] bool upgraded() const { return static_cast<bool>(v2_); }
    [[nodiscard]] std::filesystem::path archive() const { return path_.string() + ".archive"; }
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }
    resilite::manual_clock& clock() { return clock_; }

    void add_column() {
        if (v2_) return;
        v1_.reset();
        upgrade_ = true;
        open();
    }

    // The files as a power cut would leave them: committed data in the database and WAL, the
    // outbox not yet drained; with `lose_archive_tail` the archive loses what the close appended.
    void crash(bool lose_archive_tail) {
        const auto saved = dir_ / "crash";
        std::filesystem::remove_all(saved);
        snapshot_database(path_, saved);
        if (lose_archive_tail) std::filesystem::copy(archive(), saved / "archive");
        v1_.reset();
        v2_.reset();
        restore_database(saved, path_);
        if (lose_archive_tail) {
            std::filesystem::remove_all(archive());
            std::filesystem::copy(saved / "archive", archive());
        }
        open();
    }

private:
    void open() {
        if (upgrade_) {
            BatchedV2Db::options o;
            o.clock = clock_;
            v2_ = std::make_unique<BatchedV2Db>(path_, o);
        } else {
            BatchedDb::options o;
            o.clock = clock_;
            v1_ = std::make_unique<BatchedDb>(path_, o);
        }
    }

    std::filesystem::path path_, dir_;
    resilite::manual_clock clock_;
    bool upgrade_ = false;
    std::unique_ptr<BatchedDb> v1_;
    std::unique_ptr<BatchedV2Db> v2_;
};

// Text a person might store: quotes, semicolons, comment markers, newlines, non-ASCII.
rc::Gen<std::string> gen_text() {
    return rc::gen::container<std::string>(rc::gen::elementOf(std::string{"ab Z9'\";-\n\t/*%_\\"}));
}

rc::Gen<double> gen_score() {
    return rc::gen::suchThat(rc::gen::arbitrary<double>(), [](double d) { return std::isfinite(d); });
}

std::vector<std::string> archived_item_columns(bool v2) {
    return v2 ? std::vector<std::string>{"id", "name", "score", "note"}
              : std::vector<std::string>{"id", "name", "score"};
}

}  // namespace

TEST_CASE("archive state machine: a rebuild from archives alone equals the live database, table by table",
          "[archive][property]") {
    rc::prop("insert / update / delete / add-column / crash-reopen / drain", [] {
        test::temp_dir dir;
        live_database live{dir};
        const int steps = *rc::gen::inRange(1, 40);
        for (int step = 0; step < steps; ++step) {
            const int what = *rc::gen::inRange(0, 100);
            const auto id = *rc::gen::inRange<std::int64_t>(0, 12);
            if (what < 30) {
                const auto name = *gen_text();
                const auto score = *gen_score();
                live.with([&](auto& db) {
                    db.exec("INSERT OR REPLACE INTO items(id, name, score, token) VALUES(?, ?, ?, ?)", id,
                            name, score, fmt::format("SECRET-{}", id));
                });
            } else if (what < 45) {
                const auto name = *gen_text();
                live.with([&](auto& db) {
                    db.exec("UPDATE items SET name = ?, score = score + 1 WHERE id = ?", name, id);
                });
                if (live.upgraded())
                    live.with([&](auto& db) { db.exec("UPDATE items SET note = ? WHERE id = ?", name, id); });
            } else if (what < 55) {
                live.with([&](auto& db) { db.exec("DELETE FROM items WHERE id = ?", id); });
            } else if (what < 65) {
                const auto msg = *gen_text();
                const bool commit = *rc::gen::inRange(0, 4) != 0;
                live.with([&](auto& db) {
                    try {
                        db.transaction([&](auto& tx) {
                            tx.exec("INSERT INTO logs(msg) VALUES(?)", msg);
                            tx.exec("UPDATE items SET token = 'SECRET-tx', score = -score WHERE id = ?", id);
                            tx.exec("DELETE FROM logs WHERE rowid = ?", id);
                            if (!commit) throw std::runtime_error("rolled back on purpose");
                        });
                    } catch (const std::runtime_error&) {
                    }
                });
            } else if (what < 70) {
                live.add_column();
            } else if (what < 80) {
                live.crash(*rc::gen::arbitrary<bool>());
            } else if (what < 90) {
                live.with([&](auto& db) { static_cast<void>(db.drain_archive()); });
            } else {
                live.clock().advance(std::chrono::milliseconds{*rc::gen::inRange(0, 2000)});
                live.with([&](auto& db) { static_cast<void>(db.maintain()); });
            }
        }
        resilite::archive_report report;
        live.with([&](auto& db) { report = db.check_archive(); });
        RC_LOG() << report.to_text();
        RC_ASSERT(report.reproduces_live == std::optional<bool>{true});
        RC_ASSERT(report.problems.empty());
        const auto rebuilt = dir / "rebuilt.db";
        const auto r = resilite::rebuild(live.archive(), rebuilt);
        const auto cols = archived_item_columns(live.upgraded());
        RC_ASSERT(table_hash(rebuilt, "items", cols) == table_hash(live.path(), "items", cols));
        RC_ASSERT(table_hash(rebuilt, "logs", {"msg"}) == table_hash(live.path(), "logs", {"msg"}));
        RC_ASSERT(segments_text(live.archive()).find("SECRET") == std::string::npos);
    });
}

namespace {

// An archive of five inserts (plus the schema record): txn 1 schema, txn 2..6 rows r1..r5.
std::filesystem::path five_inserts(const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir);
    {
        ItemsDb db{dir / "app.db", items_options()};
        for (int i = 1; i <= 5; ++i)
            db.insert(Item{i, fmt::format("r{}", i), 0, "t"});
    }
    // The month of the system clock: one segment (unless the test runs across a month's end).
    const auto segments = resilite::detail::archive::list_segments(dir / "app.db.archive");
    REQUIRE(segments.size() == 1);
    return dir / "app.db.archive" / segments.front();
}

std::string segment_of(const std::filesystem::path& seg) {
    return read_all(seg);
}

std::size_t record_start(const std::string& text, int seq) {
    return text.find(fmt::format("-- txn {} ", seq));
}

std::string record_text(const std::string& text, int seq) {
    const auto start = record_start(text, seq);
    const auto end = text.find('\n', text.find(fmt::format("COMMIT; -- txn {} ", seq))) + 1;
    return text.substr(start, end - start);
}

int line_of(const std::string& text, std::size_t offset) {
    return 1 + static_cast<int>(
                   std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(offset), '\n'));
}

bool has_problem(const resilite::archive_report& r, resilite::archive_problem::kind k, int line, bool fatal,
                 const std::string& segment = "2026_11.sql") {
    return std::any_of(r.problems.begin(), r.problems.end(), [&](const resilite::archive_problem& p) {
        return p.what == k && p.line == line && p.fatal == fatal && p.segment == segment;
    });
}

}  // namespace

TEST_CASE(
    "archive damaged: torn, garbage, duplicate and tampered records are handled deterministically and "
    "reported",
    "[archive]") {
    using K = resilite::archive_problem::kind;
    test::temp_dir dir;
    const auto seg = five_inserts(dir.path());
    const auto original = segment_of(seg);
    const auto name = seg.filename().string();
    const auto rebuild_rows = [&](resilite::rebuild_options o = {}) {
        const auto target = dir / "rebuilt.db";
        std::filesystem::remove(target);
        const auto r = resilite::rebuild(seg.parent_path(), target, o);
        resilite::sqlite::connection c{target};
        return std::pair{r, c.query_all<std::string>("SELECT name FROM items ORDER BY id")};
    };
    const auto twice_same = [&] {
        const auto a = resilite::inspect_archive(seg.parent_path()).to_text();
        const auto b = resilite::inspect_archive(seg.parent_path()).to_text();
        CHECK(a == b);
    };

    SECTION("a torn last record is skipped with a warning: it was never acknowledged") {
        const auto start = record_start(original, 6);
        write_all(seg, original.substr(0, start + 40));
        const auto [r, names] = rebuild_rows();
        CHECK(names == std::vector<std::string>{"r1", "r2", "r3", "r4"});
        CHECK(has_problem(r, K::torn_tail, line_of(original, start), false, name));
        CHECK(r.status() == resilite::schema_status::warnings);
        twice_same();
    }
    SECTION("garbage between records is reported with its line and skipped") {
        const auto at = record_start(original, 4);
        write_all(seg, original.substr(0, at) + "this is not SQL\nneither is this\n" + original.substr(at));
        const auto [r, names] = rebuild_rows();
        CHECK(names.size() == 5);
        CHECK(has_problem(r, K::garbage, line_of(original, at), false, name));
        twice_same();
    }
    SECTION("a duplicated record is skipped") {
        write_all(seg, original + record_text(original, 3));
        const auto [r, names] = rebuild_rows();
        CHECK(names.size() == 5);
        CHECK(has_problem(r, K::duplicate, line_of(original, original.size()), false, name));
        twice_same();
    }
    SECTION("a tampered value fails its checksum: the rebuild refuses, or with keep_going reports the loss") {
        auto tampered = original;
        const auto at = tampered.find("'r3'");
        REQUIRE(at != std::string::npos);
        tampered[at + 2] = '9';
        write_all(seg, tampered);
        CHECK_THROWS_AS(resilite::rebuild(seg.parent_path(), dir / "refused.db"), resilite::error);
        CHECK_FALSE(std::filesystem::exists(dir / "refused.db"));
        resilite::rebuild_options o;
        o.keep_going = true;
        const auto [r, names] = rebuild_rows(o);
        CHECK(names == std::vector<std::string>{"r1", "r2", "r4", "r5"});
        CHECK(has_problem(r, K::checksum, line_of(original, record_start(original, 4)), true, name));
        CHECK_FALSE(r.rebuildable());
        CHECK(r.exit_code() == 1);
        twice_same();
    }
    SECTION("a changed sequence number fails the checksum too, and the hole is a gap") {
        auto tampered = original;
        const auto at = record_start(tampered, 5);
        tampered.replace(at, 8, "-- txn 9");
        write_all(seg, tampered);
        const auto r = resilite::inspect_archive(seg.parent_path());
        CHECK_FALSE(r.rebuildable());
        CHECK(std::any_of(r.problems.begin(), r.problems.end(),
                          [](const auto& p) { return p.what == K::damaged || p.what == K::checksum; }));
        twice_same();
    }
    SECTION("a point in time: the records up to it, damage after it costs nothing, a gap just before it refuses") {
        resilite::rebuild_options o;
        o.until_seq = 4;  // (record 4 inserts r3, as the tampered-value section shows)
        auto [r, names] = rebuild_rows(o);
        CHECK(names == std::vector<std::string>{"r1", "r2", "r3"});
        CHECK(r.last_seq == 4);
        CHECK(r.rebuildable());
        // A tampered record after the point is not needed.
        auto tampered = original;
        tampered[tampered.find("'r5'") + 2] = '9';
        write_all(seg, tampered);
        std::tie(r, names) = rebuild_rows(o);
        CHECK(names == std::vector<std::string>{"r1", "r2", "r3"});
        CHECK(r.rebuildable());
        // Record 5 missing and the point at 5: the result would silently be the state at 4.
        const auto rec = record_text(original, 5);
        auto removed = original;
        removed.erase(removed.find(rec), rec.size());
        write_all(seg, removed);
        o.until_seq = 5;
        try {
            static_cast<void>(resilite::rebuild(seg.parent_path(), dir / "refused.db", o));
            FAIL("a point in time with a record missing just before it was rebuilt");
        } catch (const resilite::error& e) {
            CHECK(e.technical().report.find("txn 5 to 5, before the point in time asked, are missing") !=
                  std::string::npos);
        }
        CHECK_FALSE(std::filesystem::exists(dir / "refused.db"));
    }
    SECTION("a missing record is a gap") {
        const auto rec = record_text(original, 4);
        auto removed = original;
        removed.erase(removed.find(rec), rec.size());
        write_all(seg, removed);
        const auto r = resilite::inspect_archive(seg.parent_path());
        CHECK(std::any_of(r.problems.begin(), r.problems.end(), [](const auto& p) {
            return p.what == K::gap && p.fatal && p.message.find("txn 4 to 4") != std::string::npos;
        }));
        CHECK_THROWS_AS(resilite::rebuild(seg.parent_path(), dir / "refused.db"), resilite::error);
    }
    SECTION("the same number with other content is a conflicting duplicate") {
        auto other = record_text(original, 4);  // the insert of r3
        const auto at = other.find("'r3'");
        REQUIRE(at != std::string::npos);
        other[at + 2] = '8';
        const auto body_start = other.find("BEGIN;\n") + 7;
        const auto body_end = other.find("COMMIT; -- txn");
        const auto body = other.substr(body_start, body_end - body_start);
        const auto header = *fmtr::parse::header(other.substr(0, other.find('\n')));
        write_all(seg, original + fmtr::format_record(header, body));
        const auto r = resilite::inspect_archive(seg.parent_path());
        CHECK(std::any_of(r.problems.begin(), r.problems.end(),
                          [](const auto& p) { return p.what == K::conflicting_duplicate && p.fatal; }));
    }
}

namespace {
// A segment of hand-made records with valid checksums, as an attacker who knows the format
// would write them.
void write_records(const std::filesystem::path& dir, const std::vector<std::string>& bodies) {
    std::filesystem::create_directories(dir);
    std::string text = fmtr::segment_preamble("evil.db", "2026_11.sql");
    std::int64_t seq = 0;
    for (const auto& body : bodies) {
        ++seq;
        text += fmtr::format_record(
            {seq, "2026-11-22T10:00:00.000Z", fmtr::record_kind::changes, seq, seq, body.size()}, body);
    }
    write_all(dir / "2026_11.sql", text);
}
}  // namespace

TEST_CASE(
    "archive injection: statements other than row changes and additive DDL are refused with segment and line",
    "[archive][injection]") {
    test::temp_dir dir;
    const auto archive = dir / "evil.archive";
    const std::vector<std::string> bodies = {
        "CREATE TABLE IF NOT EXISTS \"t\"(\"id\" INTEGER PRIMARY KEY, \"v\" TEXT);\n",  // txn 1: allowed
        "DROP TABLE \"t\";\n",
        fmt::format("ATTACH DATABASE '{}' AS x;\n", (dir / "other.db").string()),
        "PRAGMA writable_schema=ON;\n",
        "INSERT INTO \"t\"(\"id\",\"v\") VALUES(50, load_extension('/tmp/evil.so'));\n",
        "INSERT INTO \"t\"(\"id\",\"v\") VALUES(51,'ok') ON CONFLICT(\"id\") DO NOTHING;\nUPDATE sqlite_master SET "
        "sql = 'x' WHERE name = 't';\n",
        "INSERT INTO resilite_archive_state(id, last_seq, last_id, format) VALUES(2, 0, 0, 1);\n",
        "CREATE TEMP TRIGGER \"x\" AFTER INSERT ON \"t\" BEGIN SELECT 1; END;\n",
        "ALTER TABLE \"t\" RENAME TO \"u\";\n",
        "INSERT INTO \"t\"(\"id\",\"v\") VALUES(52,'ok') ON CONFLICT(\"id\") DO NOTHING;\nBEGIN;\n",
        "CREATE TABLE sqlite_stat9(x);\n",
        "INSERT INTO \"t\"(\"id\",\"v\") VALUES(1,'kept') ON CONFLICT(\"id\") DO UPDATE SET "
        "\"v\"=excluded.\"v\";\n",
    };
    write_records(archive, bodies);
    // Each record's statement lines: header at 2 + 4 * (n - 1) for one-line bodies; computed
    // from the text instead, so the test says where each one is.
    const auto text = read_all(archive / "2026_11.sql");
    const auto statement_line = [&](int seq, std::string_view statement) {
        const auto at = text.find(std::string{statement}, record_start(text, seq));
        return line_of(text, at);
    };

    CHECK_THROWS_AS(resilite::rebuild(archive, dir / "refused.db"), resilite::error);
    CHECK_FALSE(std::filesystem::exists(dir / "refused.db"));

    resilite::rebuild_options o;
    o.keep_going = true;
    const auto r = resilite::rebuild(archive, dir / "rebuilt.db", o);
    INFO(r.to_text());
    using K = resilite::archive_problem::kind;
    CHECK(has_problem(r, K::refused, statement_line(2, "DROP TABLE"), true));
    CHECK(has_problem(r, K::refused, statement_line(3, "ATTACH"), true));
    CHECK(has_problem(r, K::refused, statement_line(4, "PRAGMA"), true));
    CHECK(has_problem(r, K::refused, statement_line(5, "INSERT"), true));
    CHECK(has_problem(r, K::refused, statement_line(6, "UPDATE sqlite_master"), true));
    CHECK(has_problem(r, K::refused, statement_line(7, "INSERT INTO resilite"), true));
    CHECK(has_problem(r, K::refused, statement_line(8, "CREATE TEMP"), true));
    CHECK(has_problem(r, K::refused, statement_line(9, "ALTER TABLE"), true));
    CHECK(has_problem(r, K::refused, statement_line(10, "NOTHING;\nBEGIN") + 1, true));
    CHECK(has_problem(r, K::refused, statement_line(11, "CREATE TABLE sqlite_stat9"), true));
    CHECK(r.problems.size() == 10);
    CHECK(r.applied_records == 2);
    const auto refused_text = r.to_text();
    CHECK(refused_text.find("DROP TABLE is not a statement the archive writer produces") != std::string::npos);

    resilite::sqlite::connection c{dir / "rebuilt.db"};
    // The table survived, the partly valid records left nothing behind, nothing was attached.
    CHECK(c.query_all<std::int64_t>("SELECT id FROM t ORDER BY id") == std::vector<std::int64_t>{1});
    CHECK(c.query_one<int>("SELECT count(*) FROM resilite_archive_state") == 1);
    CHECK_FALSE(std::filesystem::exists(dir / "other.db"));
}

TEST_CASE(
    "archive replay is idempotent: replaying again applies nothing, re-applying every record changes nothing",
    "[archive]") {
    test::temp_dir dir;
    {
        ItemsDb db{dir / "app.db", items_options()};
        for (int i = 1; i <= 30; ++i)
            db.insert(Item{i, fmt::format("r{}", i), i * 0.5, "t"});
        db.exec("DELETE FROM items WHERE id % 3 = 0");
        db.exec("UPDATE items SET name = name || '!' WHERE id % 2 = 0");
        db.exec("INSERT INTO logs(msg) VALUES('a'), ('b')");
    }
    const auto archive = dir / "app.db.archive";
    const auto rebuilt = dir / "rebuilt.db";
    const auto first = resilite::rebuild(archive, rebuilt);
    const std::vector<std::string> cols{"id", "name", "score"};
    const auto expected = table_hash(dir / "app.db", "items", cols);
    CHECK(table_hash(rebuilt, "items", cols) == expected);
    const auto again = resilite::replay_archive(archive, rebuilt);
    CHECK(again.applied_records == 0);
    CHECK(table_hash(rebuilt, "items", cols) == expected);
    {
        resilite::sqlite::connection c{rebuilt};
        const auto items_row = std::find_if(again.tables.begin(), again.tables.end(),
                                            [](const auto& t) { return t.name == "items"; });
        REQUIRE(items_row != again.tables.end());
        CHECK(items_row->rows == c.query_one<std::int64_t>("SELECT count(*) FROM items"));
    }
    resilite::replay_options no_counts;
    no_counts.count_rows = false;
    CHECK(resilite::replay_archive(archive, rebuilt, no_counts).tables.empty());
    {
        resilite::sqlite::connection c{rebuilt};
        c.exec("UPDATE resilite_archive_state SET last_seq = 0");  // forget what was applied
    }
    const auto all = resilite::replay_archive(archive, rebuilt);
    CHECK(all.applied_records == first.applied_records);
    CHECK(table_hash(rebuilt, "items", cols) == expected);
    CHECK(table_hash(rebuilt, "logs", {"msg"}) == table_hash(dir / "app.db", "logs", {"msg"}));
}

TEST_CASE("archive rebuild never writes over a database and leaves no temporary file behind", "[archive]") {
    test::temp_dir dir;
    static_cast<void>(five_inserts(dir.path()));
    const auto archive = dir / "app.db.archive";
    CHECK_THROWS_AS(resilite::rebuild(archive, dir / "app.db"), resilite::error);
    CHECK_THROWS_AS(resilite::rebuild(dir / "no-such-archive", dir / "x.db"), resilite::error);
    resilite::rebuild_options o;
    o.replace = true;
    const auto target = dir / "again.db";
    static_cast<void>(resilite::rebuild(archive, target));
    const auto r = resilite::rebuild(archive, target, o);
    CHECK(r.applied_records == 6);
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
        CHECK(e.path().filename().string().find("rebuild") == std::string::npos);
}

TEST_CASE("archive rebuild into the path of a lost database refuses while its write-ahead log is left there (SQLite "
          "would apply it to the rebuilt file)",
          "[archive][rebuild]") {
    test::temp_dir dir;
    static_cast<void>(five_inserts(dir.path()));
    const auto archive = dir / "app.db.archive";
    // A database killed with commits in its WAL, then removed without its -wal.
    const auto lost = dir / "lost.db";
    std::filesystem::copy_file(dir / "app.db", lost);
    sqlite3* c = nullptr;
    REQUIRE(sqlite3_open(lost.c_str(), &c) == SQLITE_OK);
    REQUIRE(sqlite3_exec(c, "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; "
                            "INSERT INTO items(id, name, score, token) VALUES (100, 'in the log', 0, 't')",
                         nullptr, nullptr, nullptr) == SQLITE_OK);
    const auto wal = std::filesystem::path{lost.string() + "-wal"};
    const auto left = read_all(wal);  // (before the close checkpoints it)
    REQUIRE_FALSE(left.empty());
    sqlite3_close(c);
    std::filesystem::remove(lost);
    write_all(wal, left);
    try {
        static_cast<void>(resilite::rebuild(archive, lost));
        FAIL("rebuilt beside another database's write-ahead log");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == resilite::error_class::misuse);
        CHECK_THAT(e.what(), Catch::Contains("lost.db-wal") && Catch::Contains("move it aside"));
    }
    CHECK_FALSE(std::filesystem::exists(lost));
    CHECK(read_all(wal) == left);
    // Moved aside, the rebuild is whole and sound.
    std::filesystem::rename(wal, dir / "kept-wal");
    CHECK(resilite::rebuild(archive, lost).applied_records == 6);
    CHECK(resilite::check_health(lost, resilite::check_level::full).ok());
}

namespace {
// What a progress_fn was told, step by step.
struct progress_log {
    struct call {
        std::string operation, step, unit;
        std::uint64_t done, total;
    };
    std::vector<call> calls;
    resilite::progress_fn fn() {
        return [this](const resilite::progress& p) {
            calls.push_back({std::string{p.operation}, std::string{p.step}, std::string{p.unit}, p.done, p.total});
        };
    }
    // Each step: told at its start (0) and its end (done == total), never backwards, at most
    // once per whole percent (a known total) in between.
    void check_step(const std::string& operation, const std::string& step) const {
        std::vector<call> mine;
        for (const auto& c : calls)
            if (c.operation == operation && c.step == step) mine.push_back(c);
        INFO(operation << ": " << step);
        REQUIRE(mine.size() >= 2);
        CHECK(mine.front().done == 0);
        CHECK(mine.back().done == mine.back().total);
        CHECK(mine.back().total > 0);
        for (std::size_t i = 1; i < mine.size(); ++i)
            CHECK(mine[i].done >= mine[i - 1].done);
        if (mine.front().total > 0) CHECK(mine.size() <= 102);
    }
};
}  // namespace

TEST_CASE("archive progress: a rebuild and a replay tell the records applied and the integrity check's steps, "
          "from 0 to the total",
          "[archive]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    {
        ItemsDb d{db};
        for (int i = 1; i <= 250; ++i)
            d.insert(Item{i, fmt::format("item {}", i), i * 0.5, "secret"});
    }
    const auto archive = dir / "app.db.archive";
    progress_log log;
    resilite::rebuild_options o;
    o.on_progress = log.fn();
    const auto r = resilite::rebuild(archive, dir / "rebuilt.db", o);
    log.check_step("rebuild", "applying records");
    log.check_step("rebuild", "checking integrity");
    const auto applying = std::find_if(log.calls.begin(), log.calls.end(),
                                       [](const auto& c) { return c.step == "applying records"; });
    CHECK(applying->total == static_cast<std::uint64_t>(r.applied_records));
    CHECK(applying->unit == "records");
    CHECK(log.calls.back().step == "checking integrity");  // in order: records, then the check

    // A replay into a copy that holds the first records applies the rest, and says so.
    resilite::replay_options ro;
    progress_log replay_log;
    ro.on_progress = replay_log.fn();
    ro.until_seq = 0;
    const auto copy = dir / "copy.db";
    {
        resilite::rebuild_options partial;
        partial.until_seq = 100;
        static_cast<void>(resilite::rebuild(archive, copy, partial));
    }
    const auto rr = resilite::replay_archive(archive, copy, ro);
    replay_log.check_step("replay", "applying records");
    CHECK(replay_log.calls.back().total == static_cast<std::uint64_t>(rr.applied_records));
    CHECK(rr.applied_records > 100);

    // A full check counts SQLite's steps (no total known in advance): its end is still told.
    progress_log check_log;
    CHECK(resilite::check_health(db, resilite::check_level::full, check_log.fn()).ok());
    REQUIRE_FALSE(check_log.calls.empty());
    CHECK(check_log.calls.front().total == 0);
    CHECK(check_log.calls.back().done == check_log.calls.back().total);

    // A callback that throws never fails the work.
    resilite::rebuild_options throwing;
    throwing.on_progress = [](const resilite::progress&) { throw std::runtime_error("display gone"); };
    CHECK(resilite::rebuild(archive, dir / "again.db", throwing).rebuildable());
}

TEST_CASE("archive segments are plain SQL: the sqlite3 shell replays them to the same rows", "[archive]") {
    test::temp_dir dir;
    const auto seg = five_inserts(dir.path());
    if (std::system("command -v sqlite3 > /dev/null 2>&1") != 0) {
        WARN("sqlite3 shell not installed; skipped");
        return;
    }
    const auto shell_db = dir / "shell.db";
    const auto command = fmt::format("sqlite3 '{}' < '{}'", shell_db.string(), seg.string());
    REQUIRE(std::system(command.c_str()) == 0);
    const std::vector<std::string> cols{"id", "name", "score"};
    CHECK(table_hash(shell_db, "items", cols) == table_hash(dir / "app.db", "items", cols));

    // Text with a carriage return: the shell drops a CR before a line feed inside a literal, so
    // such text is written in hex (as text with NUL bytes is).
    const auto crlf = dir / "crlf";
    std::filesystem::create_directories(crlf);
    {
        ItemsDb db{crlf / "app.db", items_options()};
        db.insert(Item{1, "line\r\nnext", 0, "t"});
        db.insert(Item{2, "ends in CR\r", 0, "t"});
        db.insert(Item{3, "\r\n\r\n", 0, "t"});
    }
    const auto segments = resilite::detail::archive::list_segments(crlf / "app.db.archive");
    REQUIRE(segments.size() == 1);
    const auto crlf_shell = crlf / "shell.db";
    REQUIRE(std::system(fmt::format("sqlite3 '{}' < '{}'", crlf_shell.string(),
                                    (crlf / "app.db.archive" / segments.front()).string())
                            .c_str()) == 0);
    CHECK(table_hash(crlf_shell, "items", cols) == table_hash(crlf / "app.db", "items", cols));
    CHECK(read_all(crlf / "app.db.archive" / segments.front()).find('\r') == std::string::npos);
}

TEST_CASE("archive inspect: a change the archive never saw makes the report say the live database differs",
          "[archive]") {
    test::temp_dir dir;
    {
        ItemsDb db{dir / "app.db", items_options()};
        db.insert(Item{1, "a", 0, "t"});
    }
    {  // changed where no Database drains (a drain would see the trigger gone and write a snapshot)
        resilite::sqlite::connection c{dir / "app.db", SQLITE_OPEN_READWRITE};
        c.exec_script("DROP TRIGGER resilite_archive_items_update");
        c.exec("UPDATE items SET name = 'unseen' WHERE id = 1");
    }
    resilite::inspect_options o;
    o.live_database = dir / "app.db";
    o.excluded_columns = {"items.token"};
    const auto r = resilite::inspect_archive(dir / "app.db.archive", o);
    INFO(r.to_text());
    CHECK(r.reproduces_live == false);
    CHECK(r.exit_code() == 1);
    CHECK(r.to_text().find("DIFFERS from live") != std::string::npos);
}

TEST_CASE("archive inspect with another database's archive says so, even when their rows are equal", "[archive]") {
    test::temp_dir dir;
    for (const char* name : {"a.db", "b.db"}) {
        ItemsDb db{dir / name, items_options()};
        for (int i = 1; i <= 3; ++i)
            db.insert(Item{i, fmt::format("item {}", i), i * 0.5, "t"});
    }
    resilite::inspect_options o;
    o.live_database = dir / "b.db";
    o.excluded_columns = {"items.token"};
    const auto r = resilite::inspect_archive(dir / "a.db.archive", o);
    INFO(r.to_text());
    CHECK(r.reproduces_live == false);
    CHECK(r.exit_code() == 1);
    CHECK_THAT(r.to_text(), Catch::Contains("belongs to another database"));
    o.live_database = dir / "a.db";  // its own database: the same rows reproduce it
    const auto own = resilite::inspect_archive(dir / "a.db.archive", o);
    INFO(own.to_text());
    CHECK(own.reproduces_live == true);
    CHECK(own.exit_code() == 0);
}

TEST_CASE("archive inspect compares at one point: records of commits after the point the database holds (a writer "
          "committing now) are not a difference",
          "[archive]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    const auto then = dir / "then.db";
    {
        ItemsDb db{path, items_options()};
        for (int i = 1; i <= 10; ++i)
            db.insert(Item{i, fmt::format("item {}", i), i * 0.5, "t"});
    }
    std::filesystem::copy_file(path, then);  // the database as it was at record 10 (closed: no -wal)
    ItemsDb db{path, items_options()};
    for (int i = 11; i <= 15; ++i)  // records the copy does not hold, as a writer's record is written before its COMMIT
        db.insert(Item{i, fmt::format("item {}", i), i * 0.5, "t"});
    resilite::inspect_options o;
    o.live_database = then;
    o.excluded_columns = {"items.token"};
    const auto r = resilite::inspect_archive(db.archive_directory(), o);
    INFO(r.to_text());
    CHECK(r.reproduces_live == true);
    CHECK(r.exit_code() != 1);
    const auto now = db.check_archive();  // and at the database's own point now
    INFO(now.to_text());
    CHECK(now.reproduces_live == true);
}

TEST_CASE("archive inspect of a batched archive that lags: a warning, not critical", "[archive]") {
    test::temp_dir dir;
    resilite::manual_clock clock;
    BatchedDb db{dir / "app.db", batched_options(clock)};
    db.insert(Item{1, "a", 0, "t"});
    static_cast<void>(db.drain_archive());
    db.insert(Item{2, "b", 0, "t"});  // in the outbox until the next drain
    resilite::inspect_options o;
    o.live_database = dir / "app.db";
    o.excluded_columns = {"items.token"};
    const auto r = resilite::inspect_archive(db.archive_directory(), o);
    INFO(r.to_text());
    CHECK(r.reproduces_live == false);
    CHECK(r.unarchived_changes == 1);
    CHECK(r.exit_code() == 2);
    CHECK(r.to_text().find("does not reproduce the live database yet: 1 change waits") != std::string::npos);
    CHECK(r.to_text().find("does NOT reproduce") == std::string::npos);
}

TEST_CASE("archive validation: time order, foreign keys and format versions are checked", "[archive]") {
    using K = resilite::archive_problem::kind;
    test::temp_dir dir;
    SECTION("a record older than the one before it is a warning") {
        const auto archive = dir / "a";
        std::filesystem::create_directories(archive);
        std::string text = fmtr::segment_preamble("x.db", "2026_11.sql");
        const std::string ddl = "CREATE TABLE IF NOT EXISTS \"t\"(\"id\" INTEGER PRIMARY KEY);\n";
        const std::string row = "INSERT INTO \"t\"(\"id\") VALUES(1) ON CONFLICT(\"id\") DO NOTHING;\n";
        text += fmtr::format_record(
            {1, "2026-11-22T10:00:00.000Z", fmtr::record_kind::changes, 1, 1, ddl.size()}, ddl);
        text += fmtr::format_record(
            {2, "2026-11-22T09:00:00.000Z", fmtr::record_kind::changes, 2, 2, row.size()}, row);
        write_all(archive / "2026_11.sql", text);
        const auto r = resilite::inspect_archive(archive);
        CHECK(std::any_of(r.problems.begin(), r.problems.end(),
                          [](const auto& p) { return p.what == K::time_order && !p.fatal; }));
        CHECK(r.rebuildable());
        CHECK(r.exit_code() == 2);
    }
    SECTION("rows that refer to missing rows are reported after the trial rebuild") {
        const auto archive = dir / "b";
        write_records(
            archive,
            {"CREATE TABLE IF NOT EXISTS \"parent\"(\"id\" INTEGER PRIMARY KEY);\n"
             "CREATE TABLE IF NOT EXISTS \"child\"(\"id\" INTEGER PRIMARY KEY, \"parent\" INTEGER "
             "REFERENCES \"parent\"(\"id\"));\n",
             "INSERT INTO \"child\"(\"id\",\"parent\") VALUES(1,42) ON CONFLICT(\"id\") DO NOTHING;\n"});
        const auto r = resilite::inspect_archive(archive);
        INFO(r.to_text());
        CHECK(std::any_of(r.problems.begin(), r.problems.end(), [](const auto& p) {
            return p.what == K::foreign_key && p.message.find("child row 1") != std::string::npos;
        }));
    }
    SECTION("a segment in an unknown format version is not read, and nothing is appended to it") {
        const auto seg = five_inserts(dir.path());
        auto text = read_all(seg);
        text.replace(0, std::string{"-- resilite archive v1"}.size(), "-- resilite archive v2");
        write_all(seg, text);
        const auto r = resilite::inspect_archive(seg.parent_path());
        CHECK(r.records == 0);
        CHECK(std::any_of(r.problems.begin(), r.problems.end(), [](const auto& p) {
            return p.what == K::damaged && p.fatal && p.message.find("format v2") != std::string::npos;
        }));
        CHECK_THROWS_AS((ItemsDb{dir / "app.db", items_options()}), resilite::error);
        CHECK(read_all(seg) == text);
    }
}

TEST_CASE(
    "archive tail: the last record is read from the end of the segment, anything unusual reads it whole",
    "[archive]") {
    test::temp_dir dir;
    const auto seg = five_inserts(dir.path());
    const auto text = read_all(seg);
    const auto name = seg.filename().string();
    const auto tail = fmtr::read_last_record(seg, text.size(), name);
    REQUIRE(tail.has_value());
    CHECK(tail->seq == 6);
    CHECK(tail->first_id == tail->last_id);
    write_all(seg, text.substr(0, text.size() - 5));  // torn
    CHECK_FALSE(fmtr::read_last_record(seg, text.size() - 5, name).has_value());
    write_all(seg, text + "garbage\n");
    CHECK_FALSE(fmtr::read_last_record(seg, text.size() + 8, name).has_value());
    auto v2 = text;
    v2[std::string{"-- resilite archive v"}.size()] = '2';
    write_all(seg, v2);
    CHECK_FALSE(fmtr::read_last_record(seg, v2.size(), name).has_value());
}

namespace {
// A segment whose second record claims a body length that wraps around: read naively, its end
// lands on the first record's trailer and the reader goes round in circles.
std::string wrapping_segment(bool valid_record_after) {
    const std::string ddl = "CREATE TABLE IF NOT EXISTS \"t\"(\"id\" INTEGER PRIMARY KEY, \"v\" TEXT);\n";
    std::string text = fmtr::segment_preamble("evil.db", "2026_11.sql");
    text += fmtr::format_record({1, "2026-11-22T10:00:00.000Z", fmtr::record_kind::changes, 1, 1, 0}, ddl);
    const auto trailer = text.rfind(fmtr::trailer_prefix);
    const std::string head_without_bytes = "-- txn 1 2026-11-22T10:00:00.000Z changes outbox 1-1 bytes ";
    // The body would start after the header (whose length depends on the number) and "BEGIN;\n".
    std::uint64_t bytes = 0;
    for (int digits = 1; digits <= 20; ++digits) {
        const auto body_start = text.size() + head_without_bytes.size() + static_cast<std::size_t>(digits) + 1 + 7;
        bytes = static_cast<std::uint64_t>(trailer) - static_cast<std::uint64_t>(body_start);  // wraps
        if (fmt::format("{}", bytes).size() == static_cast<std::size_t>(digits)) break;
    }
    text += fmt::format("{}{}\nBEGIN;\nINSERT INTO \"t\"(\"id\",\"v\") VALUES(1,'x') ON CONFLICT(\"id\") DO "
                        "UPDATE SET \"v\"=excluded.\"v\";\nCOMMIT; -- txn 1 crc32 00000000\n",
                        head_without_bytes, bytes);
    if (valid_record_after) {
        const std::string row =
            "INSERT INTO \"t\"(\"id\",\"v\") VALUES(2,'kept') ON CONFLICT(\"id\") DO UPDATE SET "
            "\"v\"=excluded.\"v\";\n";
        text += fmtr::format_record({2, "2026-11-22T10:00:01.000Z", fmtr::record_kind::changes, 2, 2, 0}, row);
    }
    return text;
}
}  // namespace

TEST_CASE("hostile archive: a record length that wraps around is refused, nothing hangs or exhausts memory",
          "[archive][hostile]") {
    using K = resilite::archive_problem::kind;
    test::temp_dir dir;
    const auto archive = dir / "evil.archive";
    std::filesystem::create_directories(archive);
    const auto text = wrapping_segment(true);
    write_all(archive / "2026_11.sql", text);
    const int hostile_line = line_of(text, text.find("\n-- txn 1 ", text.find("COMMIT; -- txn 1")) + 1);
    resilite::rebuild_options o;
    o.keep_going = true;
    const auto r = resilite::rebuild(archive, dir / "rebuilt.db", o);
    INFO(r.to_text());
    CHECK(has_problem(r, K::damaged, hostile_line, true));
    CHECK(r.applied_records == 2);
    CHECK_THROWS_AS(resilite::rebuild(archive, dir / "refused.db"), resilite::error);
    CHECK_FALSE(resilite::inspect_archive(archive).rebuildable());

    // The writer reads the same segment when it is the current one: opening must work.
    const auto app = dir / "app";
    std::filesystem::create_directories(app / "app.db.archive");
    write_all(app / "app.db.archive" / "2026_11.sql", wrapping_segment(false));
    resilite::manual_clock clock;
    BatchedDb db{app / "app.db", batched_options(clock)};
    db.insert(Item{1, "after", 0, "t"});
    CHECK(db.drain_archive() > 0);
}

namespace {
const std::string hostile_table = "CREATE TABLE IF NOT EXISTS \"t\"(\"id\" INTEGER PRIMARY KEY, \"v\" TEXT);\n";
const std::string upsert_tail = " ON CONFLICT(\"id\") DO UPDATE SET \"v\"=excluded.\"v\";\n";

std::vector<std::filesystem::path> rebuild_temp_files(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> out;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().filename().string().find("rebuild") != std::string::npos) out.push_back(e.path());
    return out;
}
}  // namespace

TEST_CASE("hostile archive: only the statement shapes the writer produces are replayed, refusals name "
          "segment and line",
          "[archive][hostile]") {
    using K = resilite::archive_problem::kind;
    test::temp_dir dir;
    const auto archive = dir / "evil.archive";
    const std::vector<std::string> refused = {
        "INSERT INTO \"t\"(\"id\",\"v\") SELECT 1,'x';\n",
        "INSERT INTO \"t\"(\"id\",\"v\") VALUES((SELECT 5),'x')" + upsert_tail,
        "INSERT INTO \"t\"(\"id\",\"v\") VALUES(7,upper('x'))" + upsert_tail,
        "INSERT INTO \"t\"(\"id\",\"v\") VALUES(8,?)" + upsert_tail,
        "INSERT INTO \"t\"(\"id\",\"v\") VALUES(9,'x');\n",
        "INSERT INTO \"t\"(\"id\",\"v\") VALUES(10,'x') ON CONFLICT(\"id\") DO UPDATE SET \"v\"=(SELECT 'z');\n",
        "INSERT INTO \"t\"(\"id\",\"v\") VALUES(11,'x') ON CONFLICT(\"id\") DO UPDATE SET \"v\"=excluded.\"id\";\n",
        "REPLACE INTO \"t\"(\"id\",\"v\") VALUES(12,'x');\n",
        "UPDATE \"t\" SET \"v\" = 'y';\n",
        "DELETE FROM \"t\";\n",
        "DELETE FROM \"t\" WHERE \"id\" IN (SELECT \"id\" FROM \"t\");\n",
        "CREATE VIEW \"w\" AS SELECT * FROM \"t\";\n",
        "CREATE TABLE IF NOT EXISTS \"u\" AS SELECT 1 AS x;\n",
        "CREATE INDEX IF NOT EXISTS \"i\" ON \"t\"(\"v\") WHERE \"v\" IN (SELECT 1);\n",
        "WITH c(x) AS (SELECT 1) INSERT INTO \"t\"(\"id\",\"v\") SELECT x, 'x' FROM c;\n",
        "SELECT 1;\n",
    };
    std::vector<std::string> bodies = {hostile_table};
    bodies.insert(bodies.end(), refused.begin(), refused.end());
    // The writer's own shapes: every kind of literal, a delete by key, additive DDL.
    bodies.push_back("INSERT INTO \"t\"(\"id\",\"v\") VALUES(-3,CAST(X'6100' AS TEXT))" + upsert_tail +
                     "INSERT INTO \"t\"(\"id\",\"v\") VALUES(4,'it''s; -- not a comment')" + upsert_tail +
                     "INSERT INTO \"t\"(\"id\",\"v\") VALUES(5,X'00FF')" + upsert_tail +
                     "INSERT INTO \"t\"(\"id\",\"v\") VALUES(6,-9.0e+999)" + upsert_tail +
                     "INSERT INTO \"t\"(\"id\",\"v\") VALUES(13,1.5e-07)" + upsert_tail +
                     "INSERT INTO \"t\"(\"id\",\"v\") VALUES(14,NULL) ON CONFLICT(\"id\") DO NOTHING;\n"
                     "DELETE FROM \"t\" WHERE \"id\" IS 5;\n"
                     "ALTER TABLE \"t\" ADD COLUMN \"n\" TEXT NOT NULL DEFAULT 'none';\n"
                     "CREATE INDEX IF NOT EXISTS \"t_v\" ON \"t\"(\"v\");\n");
    write_records(archive, bodies);
    const auto text = read_all(archive / "2026_11.sql");
    resilite::rebuild_options o;
    o.keep_going = true;
    const auto r = resilite::rebuild(archive, dir / "rebuilt.db", o);
    INFO(r.to_text());
    for (std::size_t i = 0; i < refused.size(); ++i) {
        const int seq = static_cast<int>(i) + 2;
        INFO("txn " << seq << ": " << refused[i]);
        CHECK(has_problem(r, K::refused, line_of(text, record_start(text, seq)) + 2, true));
    }
    CHECK(r.problems.size() == refused.size());
    CHECK(r.applied_records == 2);
    resilite::sqlite::connection c{dir / "rebuilt.db"};
    CHECK(c.query_all<std::int64_t>("SELECT id FROM t ORDER BY id") == std::vector<std::int64_t>{-3, 4, 6, 13, 14});
    CHECK(c.query_one<std::string>("SELECT v FROM t WHERE id = 4") == "it's; -- not a comment");
    CHECK(c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE name IN ('w', 'u', 'i')") == 0);
    CHECK(c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = 't_v'") == 1);
}

TEST_CASE("hostile archive: an INSERT ... SELECT over an unbounded recursive CTE is refused at once and leaves no "
          "temporary file",
          "[archive][hostile]") {
    using K = resilite::archive_problem::kind;
    test::temp_dir dir;
    const auto archive = dir / "evil.archive";
    write_records(archive, {hostile_table,
                            "INSERT INTO \"t\"(\"id\",\"v\") WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                            "FROM c) SELECT x, randomblob(1000) FROM c;\n"});
    const auto text = read_all(archive / "2026_11.sql");
    std::filesystem::create_directories(dir / "out");
    CHECK_THROWS_AS(resilite::rebuild(archive, dir / "out" / "refused.db"), resilite::error);
    CHECK(rebuild_temp_files(dir / "out").empty());
    resilite::rebuild_options o;
    o.keep_going = true;
    const auto r = resilite::rebuild(archive, dir / "out" / "rebuilt.db", o);
    INFO(r.to_text());
    CHECK(has_problem(r, K::refused, line_of(text, record_start(text, 2)) + 2, true));
    CHECK(rebuild_temp_files(dir / "out").empty());
}

TEST_CASE("hostile archive: a trigger in an archive is never created, so it cannot run inside the application",
          "[archive][hostile]") {
    using K = resilite::archive_problem::kind;
    test::temp_dir dir;
    const auto archive = dir / "evil.archive";
    write_records(archive,
                  {hostile_table,
                   "CREATE TRIGGER IF NOT EXISTS \"wipe\" AFTER INSERT ON \"t\" BEGIN DELETE FROM \"t\"; "
                   "SELECT CASE WHEN 1 THEN 2 END; END;\nINSERT INTO \"t\"(\"id\",\"v\") VALUES(1,'a')" +
                       upsert_tail});
    const auto text = read_all(archive / "2026_11.sql");
    const auto r = resilite::rebuild(archive, dir / "rebuilt.db");  // a warning, not a failure
    INFO(r.to_text());
    CHECK(has_problem(r, K::refused, line_of(text, record_start(text, 2)) + 2, false));
    CHECK(r.applied_records == 2);
    resilite::sqlite::connection c{dir / "rebuilt.db"};
    CHECK(c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'") == 0);
    c.exec("INSERT INTO t(id, v) VALUES(2, 'b')");  // the application's next insert
    CHECK(c.query_one<int>("SELECT count(*) FROM t") == 2);

    // Replayed into an existing database: the same.
    write_records(archive, {hostile_table, "INSERT INTO \"t\"(\"id\",\"v\") VALUES(1,'a')" + upsert_tail,
                            "CREATE TRIGGER IF NOT EXISTS \"wipe\" AFTER INSERT ON \"t\" BEGIN DELETE FROM \"t\"; END;\n"});
    {
        resilite::sqlite::connection e{dir / "existing.db"};
        e.exec_script(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE log(n); CREATE TRIGGER mine AFTER "
            "INSERT ON t BEGIN INSERT INTO log VALUES(1); END;");
    }
    static_cast<void>(resilite::replay_archive(archive, dir / "existing.db"));
    resilite::sqlite::connection e{dir / "existing.db"};
    CHECK(e.query_all<std::string>("SELECT name FROM sqlite_master WHERE type = 'trigger'") ==
          std::vector<std::string>{"mine"});
    CHECK(e.query_one<int>("SELECT count(*) FROM log") == 0);  // held back while rows were replayed
}

TEST_CASE("hostile archive: the work of a replayed statement is bounded, counted in steps, not time",
          "[archive][hostile]") {
    namespace a = resilite::detail::archive;
    test::temp_dir dir;
    resilite::sqlite::connection c{dir / "x.db"};
    c.exec_script("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); BEGIN;");
    for (int i = 0; i < 5000; ++i)
        c.exec("INSERT INTO t(id, v) VALUES(?, 'x')", i);
    c.exec_script("COMMIT; BEGIN;");
    const std::string body = "CREATE INDEX IF NOT EXISTS \"t_v\" ON \"t\"(\"v\");\n";
    // Field by field: g++ 12 at -O3 warns (wrongly) that the nested aggregate's string may be used
    // uninitialized.
    a::record r;
    r.header.seq = 1;
    r.header.utc = "2026-11-22T10:00:00.000Z";
    r.header.first_id = r.header.last_id = 1;
    r.header.bytes = body.size();
    r.body = body;
    r.segment = "2026_11.sql";
    r.line = 2;
    std::vector<resilite::archive_problem> problems;
    {
        // SQLite rolls back the whole transaction of an interrupted statement: the replay stops
        // with an error that names the statement.
        a::replayer tight{c, {"t"}, a::replay_budget{1000, 0}};
        CHECK_THROWS_WITH(tight.apply(r, problems), Catch::Contains("2026_11.sql:4: txn 1") &&
                                                        Catch::Contains("steps"));
    }
    CHECK(problems.empty());
    CHECK(c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = 't_v'") == 0);
    c.exec_script("BEGIN");
    a::replayer normal{c, {"t"}};
    CHECK(normal.apply(r, problems));
    CHECK(problems.empty());
    CHECK(c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = 't_v'") == 1);
}

TEST_CASE("archive errors say the archive is the problem, and every failure of rebuild, replay and inspect is "
          "a resilite::error",
          "[archive]") {
    test::temp_dir dir;
    const auto seg = five_inserts(dir.path());
    const auto archive = seg.parent_path();
    const auto is_archive_error = [](const resilite::error& e) {
        INFO(e.what());
        CHECK(resilite::name(e.klass()) == "archive");
        CHECK_THAT(std::string{e.user_message()}, Catch::Contains("archive"));
    };
    auto tampered = read_all(seg);
    tampered[tampered.find("'r3'") + 2] = '9';
    write_all(seg, tampered);
    for (const auto& attempt : std::vector<std::function<void()>>{
             [&] { static_cast<void>(resilite::rebuild(archive, dir / "refused.db")); },
             [&] {  // a database behind the damaged record needs it (one past it does not)
                 { resilite::sqlite::connection empty{dir / "behind.db"}; }
                 static_cast<void>(resilite::replay_archive(archive, dir / "behind.db"));
             },
             [&] { static_cast<void>(resilite::rebuild(dir / "no-such-archive", dir / "x.db")); },
         }) {
        try {
            attempt();
            FAIL("no error");
        } catch (const resilite::error& e) {
            is_archive_error(e);
        }
    }

    // Long file names: 250 bytes is a valid name (the temporary file must not make it longer
    // than the file system allows); 300 bytes is not, and says so as a resilite::error.
    static_cast<void>(five_inserts(dir / "ok"));
    const auto good = dir.path() / "ok" / "app.db.archive";
    const auto long_name = dir / std::string(250, 'n');
    CHECK(resilite::rebuild(good, long_name).applied_records == 6);
    CHECK(std::filesystem::exists(long_name));
    for (const auto& attempt : std::vector<std::function<void()>>{
             [&] { static_cast<void>(resilite::rebuild(good, dir / std::string(300, 'n'))); },
             [&] { static_cast<void>(resilite::replay_archive(good, dir / std::string(300, 'n'))); },
             [&] { static_cast<void>(resilite::rebuild(good, dir / std::string(300, 'd') / "x.db")); },
             [&] { static_cast<void>(resilite::rebuild(dir / std::string(300, 'a'), dir / "y.db")); },
         }) {
        CHECK_THROWS_AS(attempt(), resilite::error);
    }
}

namespace {
// The id of a process that has ended (and been reaped).
pid_t dead_pid() {
    const pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    int status = 0;
    ::waitpid(child, &status, 0);
    return child;
}
}  // namespace

TEST_CASE("archive temporary files of a killed rebuild or inspect are removed by the next one, a live "
          "process's are kept",
          "[archive]") {
    test::temp_dir dir;
    static_cast<void>(five_inserts(dir.path()));
    const auto archive = dir / "app.db.archive";
    const auto dead = dead_pid();
    const auto out = dir / "out";
    std::filesystem::create_directories(out);
    const auto stale = out / fmt::format(".target.db.rebuild-{}", dead);
    const auto stale_journal = out / fmt::format(".other.db.rebuild-{}-journal", dead);
    const auto live = out / fmt::format(".other.db.rebuild-{}", ::getpid());
    const auto unrelated = out / fmt::format("notes.rebuild-{}", dead);
    for (const auto& p : {stale, stale_journal, live, unrelated})
        write_all(p, "left behind");
    static_cast<void>(resilite::rebuild(archive, out / "target.db"));
    CHECK_FALSE(std::filesystem::exists(stale));
    CHECK_FALSE(std::filesystem::exists(stale_journal));
    CHECK(std::filesystem::exists(live));  // may be another thread's rebuild in progress
    CHECK(std::filesystem::exists(unrelated));

    // inspect's scratch directories live in the temporary directory.
    const auto tmp = dir / "tmp";
    std::filesystem::create_directories(tmp);
    const auto stale_scratch = tmp / fmt::format("resilite-inspect-{}-0", dead);
    const auto live_scratch = tmp / fmt::format("resilite-inspect-{}-999999", ::getpid());
    for (const auto& p : {stale_scratch, live_scratch}) {
        std::filesystem::create_directories(p);
        write_all(p / "trial.db", "left behind");
    }
    const char* old = std::getenv("TMPDIR");
    const std::string saved = old != nullptr ? old : "";
    ::setenv("TMPDIR", tmp.c_str(), 1);
    const auto report = resilite::inspect_archive(archive);
    if (old != nullptr) {
        ::setenv("TMPDIR", saved.c_str(), 1);
    } else {
        ::unsetenv("TMPDIR");
    }
    CHECK(report.rebuildable());
    CHECK_FALSE(std::filesystem::exists(stale_scratch));
    CHECK(std::filesystem::exists(live_scratch));
}

TEST_CASE("archive checksums: the sliced CRC-32 gives Boost's crc_32_type values, so records, backups and "
          "queues written before still check",
          "[archive]") {
    resilite::detail::crc32 known;
    known.process("123456789");
    CHECK(known.checksum() == 0xCBF43926u);  // the standard check value of CRC-32
    CHECK(resilite::detail::crc32{}.checksum() == 0u);
    std::mt19937 gen{20261205};
    std::string bytes(70'000, '\0');
    for (auto& b : bytes)
        b = static_cast<char>(gen());
    for (int i = 0; i < 2'000; ++i) {
        // Every start alignment, lengths around the 8-byte steps, and input fed in two pieces.
        const std::size_t start = gen() % 64;
        const std::size_t length = i < 200 ? static_cast<std::size_t>(i) : gen() % 65'000;
        const std::size_t split = length == 0 ? 0 : gen() % (length + 1);
        boost::crc_32_type reference;
        reference.process_bytes(bytes.data() + start, length);
        resilite::detail::crc32 sliced;
        sliced.process_bytes(bytes.data() + start, split);
        sliced.process_bytes(bytes.data() + start + split, length - split);
        INFO("start " << start << ", length " << length << ", split " << split);
        REQUIRE(sliced.checksum() == reference.checksum());
    }
}


TEST_CASE(
    "archive replay after a restore reads only the tail: the records the database holds are walked over "
    "unread, a problem anywhere in what it reads reads everything again, reported at its exact line",
    "[archive]") {
    test::temp_dir dir;
    {
        ItemsDb db{dir / "app.db", items_options()};
        for (int i = 1; i <= 40; ++i)
            db.insert(Item{i, fmt::format("r{}", i), i * 0.5, "t"});
    }
    const auto archive = dir / "app.db.archive";
    const auto segments = resilite::detail::archive::list_segments(archive);
    REQUIRE(segments.size() == 1);
    const auto segment = archive / segments.front();
    const auto original = read_all(segment);
    const auto last = resilite::detail::archive::read_archive(archive).records.back().header.seq;
    const std::vector<std::string> cols{"id", "name", "score"};
    const auto expected = table_hash(dir / "app.db", "items", cols);
    // A copy holding the first records, as a restored backup does.
    const auto restored = [&](const std::string& name) {
        const auto copy = dir / name;
        resilite::rebuild_options partial;
        partial.until_seq = 20;
        static_cast<void>(resilite::rebuild(archive, copy, partial));
        return copy;
    };
    // Records again, from the one holding item r`first` to the one before r`end`, with other names
    // and right checksums: a fork that only the numbers tell.
    const auto fork_of = [&](int first, int end) {
        namespace a = resilite::detail::archive;
        const auto from = original.rfind("\n-- txn ", original.find(fmt::format("'r{}'", first))) + 1;
        const auto to = original.rfind("\n-- txn ", original.find(fmt::format("'r{}'", end))) + 1;
        const auto records = original.substr(from, to - from);  // (the records point into it)
        std::string out;
        for (const auto& r : a::read_segment(records, "fork").records) {
            std::string body{r.body};
            for (auto at = body.find("'r"); at != std::string::npos; at = body.find("'r", at + 1))
                body[at + 1] = 'f';
            a::append_record(out, r.header, body);
        }
        REQUIRE(out.find(fmt::format("'f{}'", first)) != std::string::npos);
        return out;
    };
    const auto refused_as_in_full = [&](const std::filesystem::path& copy, const std::filesystem::path& second) {
        resilite::replay_options o;
        o.keep_going = true;
        const auto r = resilite::replay_archive(archive, copy, o);
        INFO(r.to_text());
        CHECK(r.not_read_records == 0);  // read in full
        CHECK(std::any_of(r.problems.begin(), r.problems.end(), [](const auto& p) {
            return p.what == resilite::archive_problem::kind::conflicting_duplicate && p.fatal;
        }));
        CHECK_THROWS_AS(resilite::replay_archive(archive, second), resilite::error);
    };
    // The line of the header of the record holding `text`, counted as an editor does.
    const auto header_line = [](const std::string& segment_text, std::string_view text) {
        const auto at = segment_text.find(text);
        const auto header = segment_text.rfind("\n-- txn ", at) + 1;
        return static_cast<int>(std::count(
                   segment_text.begin(), segment_text.begin() + static_cast<std::ptrdiff_t>(header), '\n')) +
               1;
    };

    SECTION("a record the database already holds is damaged: never read, the replay is whole") {
        const auto copy = restored("copy.db");  // (before the damage, as a backup is)
        auto text = original;
        text[text.find("'r5'") + 1] = 'X';
        write_all(segment, text);
        const auto r = resilite::replay_archive(archive, copy);
        INFO(r.to_text());
        CHECK(r.not_read_through == 20);
        CHECK(r.not_read_records == 20);
        CHECK(r.problems.empty());
        CHECK(r.first_seq == 21);
        CHECK(r.last_seq == last);
        CHECK(r.to_text().find("20 records up to txn 20 not read") != std::string::npos);
        CHECK(table_hash(copy, "items", cols) == expected);
        // Read in full (a database holding nothing), the same damage is there to see.
        CHECK_THROWS_AS(resilite::rebuild(archive, dir / "whole.db"), resilite::error);
    }
    SECTION("a record after them is damaged: read again in full, the problem at its exact line") {
        const auto copy = restored("copy.db");
        const auto second = restored("refused.db");
        auto text = original;
        text[text.find("'r35'") + 1] = 'X';
        write_all(segment, text);
        resilite::replay_options o;
        o.keep_going = true;
        const auto r = resilite::replay_archive(archive, copy, o);
        INFO(r.to_text());
        CHECK(r.not_read_records == 0);
        const auto damaged = std::find_if(r.problems.begin(), r.problems.end(), [](const auto& p) {
            return p.what == resilite::archive_problem::kind::checksum;
        });
        REQUIRE(damaged != r.problems.end());
        CHECK(damaged->line == header_line(text, "'X35'"));
        CHECK(damaged->fatal);
        CHECK_THROWS_AS(resilite::replay_archive(archive, second), resilite::error);
    }
    SECTION("two copies of records it holds, with other content (a fork): refused, as a full read refuses") {
        const auto copy = restored("copy.db");
        const auto second = restored("refused.db");
        auto text = original;
        // Records 6 to 11 again (items r5 to r10) among the records the copy holds (up to 20; item
        // rN is in record N + 1): the walk meets numbers that do not rise.
        text.insert(text.rfind("\n-- txn ", text.find("'r20'")) + 1, fork_of(5, 11));
        write_all(segment, text);
        refused_as_in_full(copy, second);
    }
    SECTION("the fork after the first record it lacks: read, seen as copies, refused as in full") {
        const auto copy = restored("copy.db");
        const auto second = restored("refused.db");
        auto text = original;
        // Records 2 to 20 again after record 22: the walk stops at 21, the copies are read.
        text.insert(text.rfind("\n-- txn ", text.find("'r22'")) + 1, fork_of(1, 20));
        write_all(segment, text);
        refused_as_in_full(copy, second);
    }
    SECTION("the fork in a later segment: its numbers do not rise above the walk of the one before") {
        const auto copy = restored("copy.db");
        const auto second = restored("refused.db");
        namespace a = resilite::detail::archive;
        const auto later = archive / "2099_01.sql";
        write_all(later, a::segment_preamble("app", "2099_01.sql") + fork_of(5, 11));
        REQUIRE(a::list_segments(archive).size() == 2);
        refused_as_in_full(copy, second);
    }
    SECTION("nothing after the records it holds: nothing read, nothing applied, the report says so") {
        const auto copy = restored("copy.db");
        static_cast<void>(resilite::replay_archive(archive, copy));
        const auto r = resilite::replay_archive(archive, copy);
        INFO(r.to_text());
        CHECK(r.applied_records == 0);
        CHECK(r.not_read_through == last);
        CHECK(r.last_seq == last);
        CHECK(r.problems.empty());
        CHECK(r.to_text().find("txn 0") == std::string::npos);
        CHECK(r.to_text().find(fmt::format("after txn {}", last)) != std::string::npos);
    }
    SECTION(
        "text that is no record among the records it holds: the walk stops there, the warning has its line") {
        const auto copy = restored("copy.db");
        auto text = original;
        const auto at = text.rfind("\n-- txn ", text.find("'r10'")) + 1;
        text.insert(at, "not a record\n");
        write_all(segment, text);
        const auto r = resilite::replay_archive(archive, copy);
        INFO(r.to_text());
        CHECK(r.not_read_records == 0);
        REQUIRE(r.problems.size() == 1);
        CHECK(r.problems.front().what == resilite::archive_problem::kind::garbage);
        CHECK(
            r.problems.front().line ==
            static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n')) +
                1);
        CHECK(table_hash(copy, "items", cols) == expected);
    }
}

TEST_CASE("archive last record larger than the first window read from the end: found from the end (it was not "
          "found, and the whole segment read at every open, once it passed 64 KiB)",
          "[archive]") {
    test::temp_dir dir;
    {
        ItemsDb db{dir / "app.db", items_options()};
        for (int i = 1; i <= 20; ++i)  // 2 MB before it
            db.insert(Item{i, std::string(100'000, 'a'), 1, "t"});
        // A record of 300 kB, past 64 KiB, holding the text of its own header after a newline.
        db.insert(Item{100, "x\n-- txn 22 " + std::string(300'000, 'x'), 2, "t"});
    }
    namespace a = resilite::detail::archive;
    const auto archive = dir / "app.db.archive";
    const auto name = a::list_segments(archive).front();
    const auto path = archive / name;
    const auto t = a::read_last_record(path, std::filesystem::file_size(path), name);
    REQUIRE(t.has_value());
    REQUIRE(t->seq == 22);  // (the number its text names: the line that reads like its header)
    const auto text = read_all(path);
    const auto contents = a::read_segment(text, name);
    REQUIRE_FALSE(contents.records.empty());
    CHECK(t->seq == contents.records.back().header.seq);
    CHECK(t->crc == contents.records.back().crc);
    // The walk over the records a replay does not need passes over that one too, by its framing.
    const auto tail = a::read_segment_after(path, t->seq);
    CHECK(tail.skipped.last_seq == t->seq);
    CHECK(tail.skipped.offset == std::filesystem::file_size(path));
    CHECK(tail.text.view().empty());
    CHECK_FALSE(tail.skipped.disordered);
}

}  // namespace archive_rebuild_tests

namespace archive_rebuild_tests {

namespace {
// What a read of the archive found, in a form two reads can be compared by.
std::string read_summary(const resilite::detail::archive::archive_contents& a) {
    std::string out;
    for (const auto& r : a.records)
        out += fmt::format("txn {} crc {} {}:{} body at {} ({} bytes) end {}\n", r.header.seq, r.crc, r.segment, r.line,
                           r.body_at, r.header.bytes, r.end);
    for (const auto& p : a.problems)
        out += fmt::format("problem {} {}:{} fatal {}: {}\n", static_cast<int>(p.what), p.segment, p.line, p.fatal,
                           p.message);
    return out + fmt::format("start {}\n", a.start);
}
}  // namespace

TEST_CASE("archive read in chunks of whole records: records, lines and problems exactly as in one piece, whatever "
          "the archive holds",
          "[archive]") {
    namespace a = resilite::detail::archive;
    test::temp_dir dir;
    const auto seg = five_inserts(dir.path());
    const auto original = segment_of(seg);
    const auto archive = seg.parent_path();
    const auto tampered = [&] {
        auto t = original;
        t[t.find("'r3'") + 2] = '9';
        return t;
    }();
    const auto bad_length = [&] {  // a header whose byte count is off: the framing breaks there
        auto t = original;
        const auto at = record_start(t, 4);
        const auto field = t.find(" bytes ", at);
        REQUIRE(field != std::string::npos);
        t.insert(field + 7, "1");
        return t;
    }();
    const auto at4 = record_start(original, 4);
    const std::vector<std::pair<std::string, std::string>> variants{
        {"as written", original},
        {"comments between records", original.substr(0, at4) + "-- a note\n\n" + original.substr(at4)},
        {"a torn last record", original.substr(0, record_start(original, 6) + 40)},
        {"garbage between records", original.substr(0, at4) + "this is not SQL\n" + original.substr(at4)},
        {"a duplicated record", original + record_text(original, 3)},
        {"a tampered value", tampered},
        {"a broken frame in the middle", bad_length},
    };
    for (const auto& [what, text] : variants) {
        DYNAMIC_SECTION(what) {
            write_all(seg, text);
            const auto whole = read_summary(a::read_archive(archive, {}, 0, std::uintmax_t{1} << 40));
            INFO(whole);
            for (const std::uintmax_t chunk : {std::uintmax_t{1}, std::uintmax_t{300}, a::archive_chunk_bytes}) {
                INFO("chunks of " << chunk << " bytes");
                CHECK(read_summary(a::read_archive(archive, {}, 0, chunk)) == whole);
            }
            // The same rows from a rebuild that reads each body again from the segment.
            resilite::rebuild_options o;
            o.keep_going = true;
            const auto target = dir / "rebuilt.db";
            std::filesystem::remove(target);
            const auto r = resilite::rebuild(archive, target, o);
            INFO(r.to_text());
            resilite::sqlite::connection c{target};
            const auto names = c.query_all<std::string>("SELECT name FROM items ORDER BY id");
            CHECK(names.size() >= 3);
            CHECK(r.applied_records == static_cast<std::int64_t>(names.size()) + 1);  // + the schema record
        }
    }
}

TEST_CASE("archive walk by framing stays within the size taken at the start: a record completed after it is not "
          "passed",
          "[archive]") {
    namespace a = resilite::detail::archive;
    test::temp_dir dir;
    const auto seg = five_inserts(dir.path());
    const auto text = segment_of(seg);
    std::uintmax_t size = 0;
    const auto fd = a::open_segment(seg, size);
    REQUIRE(size == text.size());
    const auto huge = std::uintmax_t{1} << 40;
    CHECK(a::whole_records_end(fd.get(), size, 0, huge) == size);
    // As if the file had been this long when the read began: the last record's trailer unfinished.
    const auto cut = text.find("COMMIT; -- txn 6 ") + 5;
    CHECK(a::whole_records_end(fd.get(), cut, 0, huge) == cut);  // (the rest read whole: a torn tail)
    const auto skipped = a::skip_records_through(fd.get(), cut, 100, 0);
    CHECK(skipped.last_seq == 5);
    CHECK(skipped.offset <= cut);
}

TEST_CASE("archive segment changed between the read and the apply: the rebuild fails, nothing else is applied",
          "[archive]") {
    namespace a = resilite::detail::archive;
    test::temp_dir dir;
    const auto seg = five_inserts(dir.path());
    const auto original = segment_of(seg);
    const auto contents = a::read_archive(seg.parent_path());
    REQUIRE(contents.records.size() == 6);
    auto changed = original;
    changed[changed.find("'r3'") + 2] = '9';  // same length, other content: only its checksum tells
    write_all(seg, changed);
    resilite::archive_report report;
    try {
        a::build_from_archive(contents, dir / "rebuilt.db", report, false);
        FAIL("a record that changed after it was read was applied");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == resilite::error_class::archive);
        CHECK_THAT(e.technical().note, Catch::Contains("changed while it was read") && Catch::Contains("txn 4"));
    }
}

namespace {
// A record of row changes as the replay reads it from a segment.
resilite::detail::archive::record record_with(std::int64_t seq, const std::string& sql) {
    resilite::detail::archive::record r;
    r.header.seq = seq;
    r.header.utc = "2026-12-06T10:00:00.000Z";
    r.body = sql;
    r.segment = "2026_12.sql";
    r.line = 2;
    return r;
}

// Each value of t as its storage class and exact content (a REAL by its bits), row by row.
std::vector<std::string> exact_rows(resilite::sqlite::connection& c) {
    std::vector<std::string> out;
    auto stmt = c.prepare("SELECT id, u, r, i, s, n FROM t ORDER BY id");
    sqlite3_stmt* h = stmt.native_handle();
    while (stmt.step()) {
        std::string row;
        for (int col = 0; col < 6; ++col) {
            switch (sqlite3_column_type(h, col)) {
                case SQLITE_INTEGER:
                    row += fmt::format("i:{} ", sqlite3_column_int64(h, col));
                    break;
                case SQLITE_FLOAT:
                    row += fmt::format("r:{:016x} ", std::bit_cast<std::uint64_t>(sqlite3_column_double(h, col)));
                    break;
                case SQLITE_NULL:
                    row += "null ";
                    break;
                default: {
                    const auto* p = static_cast<const unsigned char*>(sqlite3_column_blob(h, col));
                    row += sqlite3_column_type(h, col) == SQLITE_TEXT ? "t:" : "b:";
                    for (int k = 0; k < sqlite3_column_bytes(h, col); ++k)
                        row += fmt::format("{:02x}", p[k]);
                    row += ' ';
                }
            }
        }
        out.push_back(std::move(row));
    }
    return out;
}
}  // namespace

TEST_CASE("archive replay by shape: each literal binds as exactly the value SQLite makes of the literal, in "
          "inserts into every affinity and in deletes",
          "[archive]") {
    namespace a = resilite::detail::archive;
    test::temp_dir dir;
    // Off the shape path: an integer beyond 64 bits, a hex integer, a minus before anything but
    // a number; and in a DELETE every REAL (a CAST has an affinity a literal has not).
    const std::vector<std::string> off_path = {"9223372036854775808", "0x10", "-'3'", "-(2.0e-300*1.0e-10)"};
    std::vector<std::string> literals = {
        "0", "-0", "7", "-42", "00012", "9223372036854775807", "-9223372036854775808", "1.5", "-1.5", "12.0", "0.0",
        "-0.0",
        "9.0e+999", "-9.0e+999", "1e5", ".5", "1.", "1.5e-07", "-821182.317727955", "4.9406564584124654e-324",
        "(2.0e-300*1.0e-10)", "'it''s'", "''", "'12'", "' 3.0'", "X''", "X'00FF'", "CAST(X'6100' AS TEXT)", "NULL"};
    const auto reals = std::count_if(literals.begin(), literals.end(),
                                     [](const std::string& l) { return l.find_first_of(".e") != std::string::npos &&
                                                                       l.front() != '\'' && l.front() != 'X'; });
    literals.insert(literals.end(), off_path.begin(), off_path.end());
    const std::vector<std::string> columns = {"u", "r", "i", "s", "n"};
    const auto schema = "CREATE TABLE t(id INTEGER PRIMARY KEY, u, r REAL, i INTEGER, s TEXT, n NUMERIC);";

    resilite::sqlite::connection plain{dir / "plain.db"};  // the statements' own text, run by SQLite
    resilite::sqlite::connection shaped{dir / "shaped.db"};
    plain.exec_script(schema);
    shaped.exec_script(schema);
    // Each record commits on its own (its SAVEPOINT is the transaction): another connection reads
    // the result, since the replayer's authorizer allows no SELECT on its own.
    a::replayer rp{shaped, {"t"}};
    resilite::sqlite::connection reader{dir / "shaped.db"};
    std::vector<resilite::archive_problem> problems;
    std::int64_t seq = 0;
    const auto record_of = [&](const std::string& sql) { return record_with(++seq, sql); };
    const auto apply_both = [&](const std::string& sql) {
        INFO(sql);
        plain.exec_script(sql);
        REQUIRE(rp.apply(record_of(sql), problems));
        REQUIRE(problems.empty());
        REQUIRE(exact_rows(reader) == exact_rows(plain));
    };
    int id = 0;
    for (const auto& lit : literals) {
        for (const auto& col : columns) {
            apply_both(fmt::format("INSERT INTO \"t\"(\"id\",\"{0}\") VALUES({1},{2}) ON CONFLICT(\"id\") DO UPDATE "
                                   "SET \"{0}\"=excluded.\"{0}\";\n",
                                   col, ++id, lit));
        }
    }
    const auto inserts = static_cast<std::int64_t>((literals.size() - off_path.size()) * columns.size());
    CHECK(rp.shaped_runs() == inserts);
    // Per column, a value as ? (NULL too), CAST(? AS REAL), a product of two or CAST(? AS TEXT).
    CHECK(rp.shapes_prepared() == 4 * static_cast<std::int64_t>(columns.size()));
    REQUIRE(exact_rows(plain).size() == literals.size() * columns.size());
    // A NUL byte inside a text literal: SQLite's parser ends the text there, so the statement
    // fails as its own text does (the shape would store text the literal never held).
    const auto with_nul = std::string{"INSERT INTO \"t\"(\"id\",\"s\") VALUES(9999,'a"} + '\0' +
                          "b') ON CONFLICT(\"id\") DO UPDATE SET \"s\"=excluded.\"s\";\n";
    CHECK_FALSE(rp.apply(record_of(with_nul), problems));
    CHECK(problems.size() == 1);
    problems.clear();
    CHECK(rp.shaped_runs() == inserts);
    CHECK(reader.query_one<int>("SELECT count(*) FROM t WHERE id = 9999") == 0);
    // Deletes by every literal on every column, compared after each (a row a literal's value
    // would not match must stay).
    for (const auto& lit : literals) {
        for (const auto& col : columns)
            apply_both(fmt::format("DELETE FROM \"t\" WHERE \"{}\" IS {};\n", col, lit));
    }
    const auto deletes_shaped = static_cast<std::int64_t>(
        (literals.size() - off_path.size() - static_cast<std::size_t>(reals)) * columns.size());
    CHECK(rp.shaped_runs() == inserts + deletes_shaped);
    CHECK(exact_rows(plain).size() < literals.size() * columns.size());  // the deletes did delete
}

TEST_CASE("archive replay by shape: NULLs are bound (one shape per column set, not per set of NULL columns) and "
          "past the kept shapes the least recently used one makes room",
          "[archive]") {
    namespace a = resilite::detail::archive;
    test::temp_dir dir;
    constexpr int wide = 300;  // more columns, so more single-column shapes, than the replay keeps
    std::string schema = "CREATE TABLE n(id INTEGER PRIMARY KEY, a, b, c, d, e, f); CREATE TABLE w(id INTEGER "
                         "PRIMARY KEY";
    for (int i = 0; i < wide; ++i)
        schema += fmt::format(", c{}", i);
    schema += ");";
    resilite::sqlite::connection c{dir / "r.db"};
    c.exec_script(schema);
    a::replayer rp{c, {"n", "w"}};
    resilite::sqlite::connection reader{dir / "r.db"};  // the replayer's authorizer allows no SELECT
    std::vector<resilite::archive_problem> problems;
    std::int64_t seq = 0;
    const auto apply = [&](const std::string& sql) {
        INFO(sql);
        REQUIRE(rp.apply(record_with(++seq, sql), problems));
        REQUIRE(problems.empty());
    };
    // Every combination of NULL and not NULL over six columns: one shape.
    for (int mask = 0; mask < 64; ++mask) {
        std::string values;
        for (int bit = 0; bit < 6; ++bit)
            values += (mask & (1 << bit)) != 0 ? ",NULL" : fmt::format(",{}", bit);
        apply(fmt::format("INSERT INTO \"n\"(\"id\",\"a\",\"b\",\"c\",\"d\",\"e\",\"f\") VALUES({}{}) ON "
                          "CONFLICT(\"id\") DO NOTHING;\n",
                          mask, values));
    }
    CHECK(rp.shapes_prepared() == 1);
    CHECK(rp.shaped_runs() == 64);
    CHECK(reader.query_one<int>("SELECT count(*) FROM n WHERE a IS NULL") == 32);
    CHECK(reader.query_one<int>("SELECT count(*) FROM n WHERE a IS NOT NULL AND b IS NULL AND f IS NULL") == 8);
    // 300 shapes, one per column of w, in turn; the 64-row shape of n is used between each.
    const auto one_column = [&](int col, int id) {
        apply(fmt::format("INSERT INTO \"w\"(\"id\",\"c{0}\") VALUES({1},{0}) ON CONFLICT(\"id\") DO UPDATE SET "
                          "\"c{0}\"=excluded.\"c{0}\";\n",
                          col, id));
        apply(fmt::format("INSERT INTO \"n\"(\"id\",\"a\",\"b\",\"c\",\"d\",\"e\",\"f\") VALUES({},1,2,3,4,5,"
                          "NULL) ON CONFLICT(\"id\") DO NOTHING;\n",
                          1000 + id));
    };
    for (int col = 0; col < wide; ++col)
        one_column(col, col);
    const auto after_all = rp.shapes_prepared();
    // n's insert was never the least recently used: prepared once for good, however many of w's
    // came and went.
    CHECK(after_all == 1 + wide);
    // The newest ones are still prepared; the oldest were finalized and are prepared again.
    for (int col = wide - 10; col < wide; ++col)
        one_column(col, wide + col);
    CHECK(rp.shapes_prepared() == after_all);
    for (int col = 0; col < 10; ++col)
        one_column(col, 2 * wide + col);
    CHECK(rp.shapes_prepared() == after_all + 10);
    CHECK(reader.query_one<int>("SELECT count(*) FROM w") == wide + 20);
    CHECK(reader.query_one<int>("SELECT c299 FROM w WHERE id = 299") == 299);
}


TEST_CASE("archive baselines on demand: write_baseline() archives the outbox, then every table as one record, and a "
          "rebuild from the archive alone starts there and equals the live database",
          "[archive]") {
    test::temp_dir dir;
    const std::vector<std::string> item_cols{"id", "name", "score"};
    std::int64_t baseline = 0;
    test::event_log log;
    {
        auto o = items_options();
        o.observer = log.observer();
        ItemsDb db{dir / "app.db", o};
        for (int i = 1; i <= 30; ++i)
            db.insert(Item{i, fmt::format("r{}", i), i / 4.0, "secret"});
        db.erase<Item>(7);
        db.exec("INSERT INTO logs(msg) VALUES('kept')");
        db.exec_script("CREATE TABLE notes(k TEXT PRIMARY KEY, v)");  // a table the schema does not declare
        db.exec("INSERT INTO notes VALUES('a', 1)");
        log.clear();
        baseline = db.write_baseline();
        CHECK(db.health().archive_seq == baseline);
        for (const auto& e : log.events()) {  // routine: no warning
            INFO(e.name << ": " << e.detail);
            CHECK(e.result == resilite::outcome::ok);
        }
        db.insert(Item{31, "after", 1.0, "s"});
        db.exec("UPDATE notes SET v = 2");
        // Inside a transaction it would wait for itself: refused, and the transaction goes on.
        db.transaction([&](auto& tx) {
            tx.insert(Item{32, "in a transaction", 2.0, "s"});
            try {
                static_cast<void>(db.write_baseline());
                FAIL("write_baseline() inside a transaction was not refused");
            } catch (const resilite::error& e) {
                CHECK(e.klass() == resilite::error_class::misuse);
            }
        });
        const auto r = db.check_archive();
        INFO(r.to_text());
        CHECK(r.baseline_seq == baseline);
        CHECK(r.reproduces_live == true);
        CHECK(r.problems.empty());
    }
    const auto a = fmtr::read_archive(dir / "app.db.archive");
    const auto it = std::find_if(a.records.begin(), a.records.end(),
                                 [&](const fmtr::record& r) { return r.header.seq == baseline; });
    REQUIRE(it != a.records.end());
    CHECK(it->header.kind == fmtr::record_kind::baseline);
    const auto r = resilite::rebuild(dir / "app.db.archive", dir / "rebuilt.db");
    INFO(r.to_text());
    CHECK(r.baseline_seq == baseline);
    CHECK(r.applied_records == r.last_seq - baseline + 1);
    CHECK(table_hash(dir / "rebuilt.db", "items", item_cols) == table_hash(dir / "app.db", "items", item_cols));
    CHECK(table_hash(dir / "rebuilt.db", "notes", {"k", "v"}) == table_hash(dir / "app.db", "notes", {"k", "v"}));
    CHECK(table_hash(dir / "rebuilt.db", "logs", {"msg"}) == table_hash(dir / "app.db", "logs", {"msg"}));

    // Batched: what waits in the outbox is archived first, as records before the baseline.
    resilite::manual_clock clock;
    BatchedDb db{dir / "batched.db", batched_options(clock)};
    for (int i = 1; i <= 5; ++i)
        db.insert(Item{i, "waiting", 0, "s"});
    REQUIRE(db.health().archive_pending > 0);
    const auto b = db.write_baseline();
    CHECK(db.health().archive_pending == 0);
    const auto batched = fmtr::read_archive(dir / "batched.db.archive");
    REQUIRE(batched.records.size() >= 2);
    CHECK(batched.records.back().header.seq == b);
    CHECK(batched.records.back().header.kind == fmtr::record_kind::baseline);
    CHECK(batched.records[batched.records.size() - 2].header.kind == fmtr::record_kind::changes);
}

TEST_CASE("archive baselines on a schedule: a maintenance round writes one as soon as the records since the newest "
          "hold archive.baseline_after_bytes, counted in the database (across a reopen), never below it",
          "[archive]") {
    test::temp_dir dir;
    constexpr std::int64_t limit = 3000;
    test::event_log log;
    const auto open = [&] {
        auto o = items_options();
        o.settings->archive.baseline_after_bytes = limit;
        o.observer = log.observer();
        return std::make_unique<ItemsDb>(dir / "app.db", o);
    };
    auto db = open();
    int id = 0;
    for (int part = 0; part < 3; ++part) {  // reopened between parts: the count is the database's
        for (int i = 0; i < 40; ++i) {
            ++id;
            db->insert(Item{id, std::string(60, 'x') + std::to_string(id), 1.0, "s"});
            static_cast<void>(db->maintain());
        }
        db.reset();
        db = open();
    }
    db.reset();
    const auto a = fmtr::read_archive(dir / "app.db.archive");
    REQUIRE(a.problems.empty());
    std::int64_t since = 0, last_bytes = 0, baselines = 0, newest = 0;
    for (const auto& r : a.records) {
        if (r.header.kind == fmtr::record_kind::baseline) {
            ++baselines;
            newest = r.header.seq;
            CHECK(since >= limit);               // not before the limit
            CHECK(since - last_bytes < limit);   // at the first round after the record that reached it
            since = 0;
            continue;
        }
        since += static_cast<std::int64_t>(r.header.bytes);
        last_bytes = static_cast<std::int64_t>(r.header.bytes);
    }
    CHECK(since < limit);
    CHECK(baselines >= 3);  // 120 records of about 100 bytes
    CHECK(static_cast<std::int64_t>(log.count("baseline")) == baselines);
    for (const auto& e : log.events())
        if (e.name == "baseline") CHECK(e.result == resilite::outcome::ok);
    const auto r = resilite::rebuild(dir / "app.db.archive", dir / "rebuilt.db");
    INFO(r.to_text());
    CHECK(r.baseline_seq == newest);
    const std::vector<std::string> item_cols{"id", "name", "score"};
    CHECK(table_hash(dir / "rebuilt.db", "items", item_cols) == table_hash(dir / "app.db", "items", item_cols));

    // Two writers of one database (two processes, say), both over the limit: one baseline. The
    // count is read again under the write lock.
    {
        log.clear();
        auto a = open();
        auto b = open();
        int added = 0;
        while (log.count("baseline") == 0 && added < 100) {  // a's rounds: a baseline once over the limit
            ++added;
            a->insert(Item{++id, std::string(60, 'z'), 1.0, "s"});
            b->insert(Item{++id, std::string(60, 'z'), 1.0, "s"});  // b's records count too
            static_cast<void>(a->maintain());
        }
        REQUIRE(log.count("baseline") == 1);
        static_cast<void>(b->maintain());  // b last saw the count over the limit, before a's baseline
        CHECK(log.count("baseline") == 1);
    }
    // Off by default: no baseline however much is archived.
    log.clear();
    {
        auto o = items_options();
        o.observer = log.observer();
        ItemsDb plain{dir / "plain.db", o};
        for (int i = 1; i <= 60; ++i) {
            plain.insert(Item{i, std::string(100, 'y'), 1.0, "s"});
            static_cast<void>(plain.maintain());
        }
    }
    CHECK(log.count("baseline") == 0);
}

TEST_CASE("archive rebuild keeps no entry per record: it checks every record, lets those before the newest "
          "baseline go, reads the rest again as it applies them, reports what a full read reports, and fails with "
          "nothing written if the archive changed between the two reads",
          "[archive]") {
    namespace a = resilite::detail::archive;
    test::temp_dir dir;
    const std::vector<std::string> cols{"id", "name", "score"};
    std::int64_t newest = 0;
    {
        ItemsDb db{dir / "app.db", items_options()};
        for (int i = 1; i <= 20; ++i)
            db.insert(Item{i, fmt::format("r{}", i), i * 0.5, "t"});
        static_cast<void>(db.write_baseline());
        for (int i = 21; i <= 30; ++i)
            db.upsert(Item{i % 25 + 1, fmt::format("u{}", i), i * 0.25, "t"});
        newest = db.write_baseline();
        for (int i = 31; i <= 50; ++i)
            db.upsert(Item{i % 25 + 1, fmt::format("u{}", i), i * 0.25, "t"});
    }
    const auto archive = dir / "app.db.archive";
    const auto problems = [](const resilite::archive_report& r) {
        std::vector<std::string> out;
        for (const auto& p : r.problems)
            out.push_back(fmt::format("{} {}:{} {} {}", static_cast<int>(p.what), p.segment, p.line, p.fatal,
                                      p.message));
        return out;
    };
    // The same report as a read that keeps every entry, whatever the chunks, also up to a
    // number or a time (check_archive() reads up to the live database's number).
    const auto same_report_up_to = [&](const char* what, const a::archive_limit& limit) {
        INFO(what << ", up to " << limit.seq << " " << limit.utc);
        const auto full = a::read_archive(archive, limit);
        const auto f = a::start_report(archive, full);
        for (const std::uintmax_t chunk : {std::uintmax_t{1}, std::uintmax_t{4096}, a::archive_chunk_bytes}) {
            INFO("chunk " << chunk);
            const auto streamed = a::read_archive(archive, limit, 0, chunk, true);
            CHECK(streamed.records.empty());
            REQUIRE(streamed.streamed);
            const auto r = a::start_report(archive, streamed);
            CHECK(r.records == f.records);
            CHECK(r.first_seq == f.first_seq);
            CHECK(r.first_time == f.first_time);
            CHECK(r.last_seq == f.last_seq);
            CHECK(r.last_time == f.last_time);
            CHECK(r.baseline_seq == f.baseline_seq);
            CHECK(problems(r) == problems(f));
        }
    };
    const auto whole = a::read_archive(archive);
    REQUIRE(whole.records.back().header.seq == newest + 20);
    const auto same_report = [&](const char* what) {
        same_report_up_to(what, {});
        a::archive_limit by_number, by_time, before_baseline;
        by_number.seq = newest + 5;
        by_time.utc = std::find_if(whole.records.begin(), whole.records.end(), [&](const auto& r) {
                          return r.header.seq == newest + 8;
                      })->header.utc;
        before_baseline.seq = newest - 2;
        for (const auto& limit : {by_number, by_time, before_baseline})
            same_report_up_to(what, limit);
    };
    same_report("whole");
    {
        const auto streamed = a::read_archive(archive, {}, 0, 1, true);
        CHECK(streamed.streamed->first.header.seq == newest);
        CHECK(streamed.history_records + streamed.streamed->count == static_cast<std::int64_t>(whole.records.size()));
    }
    const auto built = resilite::rebuild(archive, dir / "rebuilt.db");
    INFO(built.to_text());
    CHECK(built.baseline_seq == newest);
    CHECK(built.records == static_cast<std::int64_t>(whole.records.size()));
    CHECK(built.applied_records == 21);  // the baseline and the 20 after it
    CHECK(table_hash(dir / "rebuilt.db", "items", cols) == table_hash(dir / "app.db", "items", cols));

    const auto segments = a::list_segments(archive);
    REQUIRE(segments.size() == 1);
    const auto segment = archive / segments.front();
    const auto original = read_all(segment);
    const auto flip_in = [&](std::int64_t seq) {
        auto text = original;
        const auto at = text.find(fmt::format("-- txn {} ", seq));
        REQUIRE(at != std::string::npos);
        const auto body = text.find("BEGIN;\n", at);
        REQUIRE(body != std::string::npos);
        text[body + 7] ^= 0x20;  // the body's first letter
        write_all(segment, text);
    };
    // A damaged record before the baseline costs nothing; one after it is a gap (both reported
    // alike by the two reads).
    flip_in(newest - 3);
    same_report("damaged before the baseline");
    flip_in(newest + 4);
    same_report("damaged after the baseline");
    // The newest baseline's record gone, then both: the start is the baseline before it, then
    // the first record, none let go.
    {
        auto text = original;
        std::vector<std::int64_t> baselines;
        for (const auto& r : whole.records)
            if (r.header.kind == a::record_kind::baseline) baselines.push_back(r.header.seq);
        REQUIRE(baselines.size() == 2);
        for (auto b = baselines.rbegin(); b != baselines.rend(); ++b) {
            const auto from = text.find(fmt::format("-- txn {} ", *b));
            const auto to = text.find(fmt::format("-- txn {} ", *b + 1));
            REQUIRE(to != std::string::npos);
            text.erase(from, to - from);
            write_all(segment, text);
            same_report("a baseline removed");
            const auto streamed = a::read_archive(archive, {}, 0, 1, true);
            if (*b == newest) {
                CHECK(streamed.streamed->first.header.seq == baselines.front());
            } else {
                CHECK(streamed.streamed->first.header.seq == whole.records.front().header.seq);
                CHECK(streamed.history_records == 0);
            }
        }
    }

    // Changed between the two reads: the rebuild fails, nothing applied.
    write_all(segment, original);
    for (const auto& change : {std::string{"cut"}, std::string{"other"}, std::string{"re-signed"}}) {
        INFO(change);
        write_all(segment, original);
        const auto streamed = a::read_archive(archive, {}, 0, 1, true);
        REQUIRE(streamed.streamed);
        if (change == "cut") {
            write_all(segment, original.substr(0, original.find(fmt::format("-- txn {} ", newest + 10))));
        } else if (change == "other") {
            flip_in(newest + 10);
        } else {
            // A valid record in the place of another, as many records as before: only the
            // digest of the numbers and checksums tells the second read from the first.
            auto text = original;
            const auto from = text.find(fmt::format("-- txn {} ", newest + 10));
            const auto to = text.find(fmt::format("-- txn {} ", newest + 11));
            REQUIRE(to != std::string::npos);
            const std::string block = text.substr(from, to - from);
            const auto eol = block.find('\n');
            const auto h = a::parse::header(std::string_view{block}.substr(0, eol));
            REQUIRE(h);
            const auto body_at = eol + 1 + std::string_view{"BEGIN;\n"}.size();
            std::string body = block.substr(body_at, block.rfind(a::trailer_prefix) - body_at);
            body[0] ^= 0x20;  // "INSERT" -> "iNSERT": the same statement, another checksum
            const auto resigned = a::format_record(*h, body);
            REQUIRE(resigned != block);
            text.replace(from, to - from, resigned);
            write_all(segment, text);
            REQUIRE(a::read_archive(archive).problems.empty());  // a valid archive
        }
        resilite::archive_report report;
        const auto target = dir / fmt::format("changed-{}.db", change);
        try {
            a::build_from_archive(streamed, target, report, false);
            FAIL("the rebuild applied an archive that changed while it was read");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == resilite::error_class::archive);
            CHECK_THAT(e.technical().note, Catch::Contains("changed while it was read"));
        }
        CHECK(resilite::sqlite::connection{target}.query_one<std::int64_t>(
                  "SELECT count(*) FROM sqlite_master WHERE name = 'items'") == 0);
    }

    // Segments out of order (two records after the newest baseline moved into a segment named
    // earlier: read first, numbered after it): read again holding an entry per record, none let
    // go (without that, they were lost from the rebuild).
    write_all(segment, original);
    {
        auto text = original;
        const auto from = text.find(fmt::format("-- txn {} ", newest + 1));
        const auto to = text.find(fmt::format("-- txn {} ", newest + 3));
        write_all(archive / "2000_01.sql", a::segment_preamble("app.db", "2000_01.sql") + text.substr(from, to - from));
        text.erase(from, to - from);
        write_all(segment, text);
        const auto moved = a::read_archive(archive, {}, 0, 1, true);
        CHECK_FALSE(moved.streamed);
        CHECK(moved.history_records == 0);
        CHECK(moved.records.size() == whole.records.size());
        resilite::rebuild_options o;
        o.keep_going = true;
        const auto again = resilite::rebuild(archive, dir / "rebuilt-moved.db", o);
        INFO(again.to_text());
        CHECK(table_hash(dir / "rebuilt-moved.db", "items", cols) == table_hash(dir / "app.db", "items", cols));
    }

    // Appended to between the two reads (a live archive grows): what the first read checked is
    // applied, the records after it are not, and the rebuild succeeds.
    std::filesystem::remove(archive / "2000_01.sql");
    write_all(segment, original);
    {
        const auto streamed = a::read_archive(archive, {}, 0, 1, true);
        REQUIRE(streamed.streamed);
        {
            ItemsDb db{dir / "app.db", items_options()};
            db.insert(Item{99, "late", 1.0, "t"});
        }
        REQUIRE(read_all(segment).size() > original.size());
        resilite::archive_report report;
        a::build_from_archive(streamed, dir / "appended.db", report, false);
        CHECK(report.applied_records == streamed.streamed->count);
        CHECK(resilite::sqlite::connection{dir / "appended.db"}.query_one<std::int64_t>(
                  "SELECT count(*) FROM items WHERE id = 99") == 0);
    }
}

TEST_CASE("archive check reports a record missing before the newest baseline as a warning (nothing lost, but no "
          "rebuild to a point before it), and a rebuild to such a point fails naming it",
          "[archive]") {
    namespace a = resilite::detail::archive;
    test::temp_dir dir;
    std::int64_t newest = 0;
    {
        ItemsDb db{dir / "app.db", items_options()};
        for (int i = 1; i <= 12; ++i)
            db.insert(Item{i, fmt::format("r{}", i), i * 0.5, "t"});
        newest = db.write_baseline();
        for (int i = 13; i <= 15; ++i)
            db.insert(Item{i, fmt::format("r{}", i), i * 0.5, "t"});
    }
    const auto archive = dir / "app.db.archive";
    const auto segments = a::list_segments(archive);
    REQUIRE(segments.size() == 1);
    auto text = read_all(archive / segments.front());
    const auto missing = newest - 5;
    const auto from = text.find(fmt::format("-- txn {} ", missing));
    const auto to = text.find(fmt::format("-- txn {} ", missing + 1));
    REQUIRE(to != std::string::npos);
    text.erase(from, to - from);
    write_all(archive / segments.front(), text);

    const auto gap = fmt::format("txn {} to {} are missing", missing, missing);
    const auto report = resilite::inspect_archive(archive);
    INFO(report.to_text());
    CHECK(report.status() == resilite::schema_status::warnings);
    CHECK(report.rebuildable());
    const auto found = std::find_if(report.problems.begin(), report.problems.end(), [&](const auto& p) {
        return p.what == resilite::archive_problem::kind::gap && p.message.find(gap) != std::string::npos;
    });
    REQUIRE(found != report.problems.end());
    CHECK_FALSE(found->fatal);
    CHECK_THAT(found->message, Catch::Contains("no rebuild to a point before it"));
    CHECK_THAT(report.to_text(), Catch::Contains(gap));

    // The newest state rebuilds, and its report says the same.
    const auto built = resilite::rebuild(archive, dir / "rebuilt.db");
    CHECK_THAT(built.to_text(), Catch::Contains(gap));
    CHECK(built.baseline_seq == newest);
    // A point before the baseline needs the missing record.
    resilite::rebuild_options o;
    o.until_seq = newest - 2;
    try {
        static_cast<void>(resilite::rebuild(archive, dir / "before.db", o));
        FAIL("a rebuild to a point after a missing record succeeded");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == resilite::error_class::archive);
        CHECK_THAT(e.technical().report + e.technical().note, Catch::Contains(gap));
    }
}

TEST_CASE("archive rebuild to a point before the first record says so (not that the archive holds no record), and "
          "to a number past the end says the result is the state at the end",
          "[archive]") {
    test::temp_dir dir;
    {
        ItemsDb db{dir / "app.db", items_options()};
        for (int i = 1; i <= 5; ++i)
            db.insert(Item{i, fmt::format("r{}", i), i * 0.5, "t"});
    }
    const auto archive = dir / "app.db.archive";
    resilite::rebuild_options early;
    early.until_utc = "2001-01-01T00:00:00Z";
    try {
        static_cast<void>(resilite::rebuild(archive, dir / "early.db", early));
        FAIL("a rebuild to a point before every record succeeded");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == resilite::error_class::misuse);
        CHECK_THAT(e.technical().note, Catch::Contains("no record of the archive is at or before the point asked") &&
                                           Catch::Contains("its first record is txn 1"));
    }
    CHECK_FALSE(std::filesystem::exists(dir / "early.db"));
    resilite::rebuild_options late;
    late.until_seq = 99999;
    const auto r = resilite::rebuild(archive, dir / "late.db", late);
    INFO(r.to_text());
    CHECK(r.status() == resilite::schema_status::warnings);
    CHECK_THAT(r.to_text(), Catch::Contains("txn 99999 was asked for and the archive ends at txn"));
    const std::vector<std::string> cols{"id", "name", "score"};
    CHECK(table_hash(dir / "late.db", "items", cols) == table_hash(dir / "app.db", "items", cols));
}

}  // namespace archive_rebuild_tests
