// resilite::repair_archive: what cannot be used is set aside byte for byte, every valid record
// is kept byte for byte, the gap left is named, and with the live database a snapshot makes the
// archive rebuild everything again, proved by a trial rebuild.
#include "archive_support.hpp"

#include <resilite/archive/repair_archive.hpp>
#include <resilite/archive/rebuild.hpp>

#include <catch2/catch.hpp>
#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include <algorithm>
#include <string>
#include <vector>

namespace archive_repair_tests {

using namespace test::archive;
namespace a = resilite::detail::archive;

namespace {

struct damaged_archive {
    std::filesystem::path segment;
    std::vector<std::string> kept;        // the text of each valid record that must survive
    std::vector<std::string> set_aside;   // pieces that must be in the kept file
    std::int64_t damaged_seq = 0;
};

// 30 items, one commit each; then, in the segment: garbage after the 5th record, a byte of the
// 10th record's body changed, a second copy of the 15th with other content after the 16th, and a
// torn record at the end.
damaged_archive damage(const std::filesystem::path& db) {
    {
        ItemsDb d{db};
        for (int i = 1; i <= 30; ++i)
            d.insert(Item{i, fmt::format("item {}", i), i * 0.5, "secret"});
    }
    const auto dir = std::filesystem::path{db.string() + ".archive"};
    const auto names = a::list_segments(dir);
    REQUIRE(names.size() == 1);
    damaged_archive out;
    out.segment = dir / names.front();
    const auto text = read_all(out.segment);
    const auto contents = a::read_segment(text, names.front());
    REQUIRE(contents.problems.empty());
    REQUIRE(contents.records.size() >= 20);
    std::string damaged = text.substr(0, a::record_start(text, contents.records.front()));
    for (std::size_t i = 0; i < contents.records.size(); ++i) {
        const auto& r = contents.records[i];
        const auto start = a::record_start(text, r);
        auto piece = text.substr(start, r.end - start);
        if (i == 9) {
            const auto at = piece.find("item ");
            REQUIRE(at != std::string::npos);
            piece[at] = 'I';  // the CRC-32 no longer matches
            out.damaged_seq = r.header.seq;
            out.set_aside.push_back(piece);
        } else {
            out.kept.push_back(piece);
        }
        damaged += piece;
        if (i == 4) {
            const std::string garbage = "this line was written by something else\nand so was this one\n";
            damaged += garbage;
            out.set_aside.push_back(garbage);
        }
        if (i == 15) {
            // Record 15 again, re-framed with a valid CRC-32 but other content: a conflicting copy.
            const auto& r15 = contents.records[14];
            std::string body{r15.body};
            const auto at = body.find("item ");
            body.replace(at, 5, "ITEM ");
            const auto copy = a::format_record(r15.header, body);
            damaged += copy;
            out.set_aside.push_back(copy);
        }
    }
    const std::string torn = fmt::format("-- txn {} {} changes outbox 1-1 bytes 500\nBEGIN;\nINSERT INTO",
                                         contents.records.back().header.seq + 1, contents.records.back().header.utc);
    damaged += torn;
    out.set_aside.push_back(torn);
    write_all(out.segment, damaged);
    return out;
}

std::string aside_text(const resilite::repair_report& r) {
    std::string all;
    for (const auto& s : r.repaired)
        all += read_all(s.set_aside);
    return all;
}

}  // namespace

TEST_CASE("archive repair: damaged, torn and garbage records are set aside byte for byte, every valid record kept, "
          "the gap named, and with the database a snapshot makes the archive rebuild everything again",
          "[archive]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    const auto archive = dir / "app.db.archive";
    const auto d = damage(db);
    const auto before = resilite::inspect_archive(archive);
    REQUIRE_FALSE(before.rebuildable());

    // Without the database: the segment is cleaned, the gap stays, and the report says so.
    resilite::repair_options stopped;
    stopped.writers_stopped = true;
    auto r = resilite::repair_archive(archive, stopped);
    REQUIRE(r.repaired.size() == 1);
    CHECK(r.repaired[0].removed_spans == 4);
    CHECK_FALSE(r.snapshot_seq);
    CHECK(r.exit_code() == 1);
    // The second copy of record 15 differs: set aside, named, and not called proved.
    REQUIRE(r.conflicts.size() == 1);
    CHECK(r.to_text().find("NOT proved which copy was right") != std::string::npos);
    CHECK_FALSE(r.after.rebuildable());
    const bool gap_named = std::any_of(r.after.problems.begin(), r.after.problems.end(), [&](const auto& p) {
        return p.what == resilite::archive_problem::kind::gap && p.fatal &&
               p.message.find(fmt::format("txn {} to {}", d.damaged_seq, d.damaged_seq)) != std::string::npos;
    });
    CHECK(gap_named);
    CHECK(r.to_text().find("STILL cannot rebuild") != std::string::npos);
    const auto repaired = read_all(d.segment);
    const auto contents = a::read_segment(repaired, d.segment.filename().string());
    CHECK(contents.problems.empty());
    std::string expected_records;
    for (const auto& k : d.kept)
        expected_records += k;
    CHECK(repaired.find(expected_records) != std::string::npos);  // byte for byte, in order
    CHECK(contents.records.size() == d.kept.size());
    const auto aside = aside_text(r);
    for (const auto& piece : d.set_aside)
        CHECK(aside.find(piece) != std::string::npos);
    // A second repair finds nothing more to cut.
    r = resilite::repair_archive(archive, stopped);
    CHECK(r.repaired.empty());

    // With the database, while the application has it open: a snapshot, proved by a trial
    // rebuild that equals the live tables.
    {
        ItemsDb app{db};
        app.insert(Item{31, "item 31", 15.5, "secret"});  // (its writer has read the archive's end)
        resilite::repair_options live;
        live.live_database = db;
        r = resilite::repair_archive(archive, live);
        REQUIRE(r.snapshot_seq);
        CHECK(r.after.rebuildable());
        CHECK(r.after.reproduces_live == true);
        CHECK(r.after.baseline_seq == *r.snapshot_seq);
        CHECK(r.exit_code() == 2);
        // It goes on writing to the repaired archive (its idea of the archive's end is stale).
        for (int i = 32; i <= 35; ++i)
            app.insert(Item{i, fmt::format("item {}", i), i * 0.5, "secret"});
        CHECK(app.check_archive().exit_code() != 1);
    }
    resilite::repair_options live;
    live.live_database = db;
    const auto rebuilt = dir / "rebuilt.db";
    const auto rb = resilite::rebuild(archive, rebuilt);
    CHECK(rb.rebuildable());
    CHECK(table_hash(rebuilt, "items", {"id", "name", "score"}) == table_hash(db, "items", {"id", "name", "score"}));
    CHECK(table_hash(rebuilt, "items", {"id"}).first == 35);

    // Nothing left to repair: no snapshot is written.
    r = resilite::repair_archive(archive, live);
    CHECK(r.repaired.empty());
    CHECK_FALSE(r.snapshot_seq);
    CHECK(r.exit_code() == 0);
}

TEST_CASE("archive repair refuses, changing nothing: no way to keep the writers out, a database a writer holds, a "
          "damaged database, an archive of another database",
          "[archive]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    const auto archive = dir / "app.db.archive";
    const auto d = damage(db);
    const auto original = read_all(d.segment);
    const auto refuses = [&](const resilite::repair_options& o, resilite::error_class k) {
        try {
            static_cast<void>(resilite::repair_archive(archive, o));
            FAIL("the repair went ahead");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == k);
            CHECK(std::string{e.what()}.find('\n') == std::string::npos);
        }
        CHECK(read_all(d.segment) == original);
        CHECK(set_aside_files(archive, ".repaired-").empty());
    };
    refuses({}, resilite::error_class::misuse);

    resilite::repair_options live;
    live.live_database = db;
    live.lock_timeout = std::chrono::milliseconds{20};
    {
        resilite::sqlite::connection writer{db};
        writer.exec_script("BEGIN IMMEDIATE");  // held until the repair has given up
        refuses(live, resilite::error_class::busy);
        writer.exec_script("ROLLBACK");
    }

    // Another database (its own identity) is never snapshotted into this archive.
    const auto other = dir / "other.db";
    {
        ItemsDb o{other};
        o.insert(Item{1, "other", 1.0, "secret"});
    }
    live.live_database = other;
    refuses(live, resilite::error_class::misuse);

    // A damaged database: its snapshot would carry the damage into the archive.
    {
        resilite::sqlite::connection c{db};
        c.exec_script("PRAGMA wal_checkpoint(TRUNCATE)");
    }
    resilite::testing::zero_page(db, 2);
    live.live_database = db;
    try {
        static_cast<void>(resilite::repair_archive(archive, live));
        FAIL("a damaged database was snapshotted");
    } catch (const resilite::error& e) {
        CHECK((e.klass() == resilite::error_class::corrupt || e.klass() == resilite::error_class::not_a_database));
    }
    CHECK(read_all(d.segment) == original);
}

TEST_CASE("archive repair keeps exactly the records a reader accepts, byte for byte, and sets everything else aside "
          "(property)",
          "[archive][property]") {
    test::temp_dir base;
    const auto db = base / "app.db";
    {
        ItemsDb d{db};
        for (int i = 1; i <= 12; ++i)
            d.insert(Item{i, fmt::format("item {}", i), i * 0.5, "secret"});
    }
    const auto original_dir = std::filesystem::path{db.string() + ".archive"};
    const auto name = a::list_segments(original_dir).front();
    const auto original = read_all(original_dir / name);
    int case_number = 0;
    rc::prop("random damage, then repair", [&] {
        const auto dir = base / fmt::format("case-{}", case_number++);
        std::filesystem::create_directories(dir);
        auto text = original;
        const auto steps = *rc::gen::inRange(1, 6);
        for (int k = 0; k < steps; ++k) {
            const auto at = *rc::gen::inRange<std::size_t>(0, text.size());
            switch (*rc::gen::inRange(0, 5)) {
                case 0:  // a byte changed
                    text[at] = static_cast<char>(text[at] ^ (1 + *rc::gen::inRange(0, 126)));
                    break;
                case 1:  // text inserted (a line, or a header-looking line)
                    text.insert(at, *rc::gen::element(std::string{"garbage\n"}, std::string{"-- txn 7 junk\n"},
                                                      std::string{"BEGIN;\n"}, std::string{"x"}));
                    break;
                case 2:  // cut short
                    text.resize(at);
                    break;
                case 3: {  // a span copied elsewhere (a duplicate record, or part of one)
                    const auto from = *rc::gen::inRange<std::size_t>(0, text.size());
                    const auto len = *rc::gen::inRange<std::size_t>(0, std::min<std::size_t>(400, text.size() - from));
                    const auto piece = text.substr(from, len);
                    text.insert(std::min(at, text.size()), piece);
                    break;
                }
                default:  // bytes removed
                    text.erase(at, *rc::gen::inRange<std::size_t>(0, 60));
                    break;
            }
            if (text.empty()) text = "x";
        }
        write_all(dir / name, text);
        // What a reader accepts, before the repair: the unique valid records, in order.
        const auto before = a::read_archive(dir);
        std::vector<std::pair<std::int64_t, std::uint32_t>> accepted;
        for (const auto& r : before.records)
            accepted.emplace_back(r.header.seq, r.crc);
        resilite::repair_options stopped;
        stopped.writers_stopped = true;
        const auto rep = resilite::repair_archive(dir, stopped);
        if (a::read_segment(text, name).unknown_format) {  // another format version: never rewritten
            RC_ASSERT(!rep.left_alone.empty());
            RC_ASSERT(read_all(dir / name) == text);
            std::filesystem::remove_all(dir);
            return;
        }
        const auto repaired = read_all(dir / name);
        const auto after = a::read_segment(repaired, name);
        // Nothing left to skip, and the same records as before.
        RC_ASSERT(after.problems.empty());
        std::vector<std::pair<std::int64_t, std::uint32_t>> kept;
        for (const auto& r : after.records)
            kept.emplace_back(r.header.seq, r.crc);
        std::sort(kept.begin(), kept.end());
        RC_ASSERT(kept == accepted);
        // Every kept record is byte for byte as it was in the damaged text.
        for (const auto& r : after.records) {
            const auto start = a::record_start(repaired, r);
            RC_ASSERT(text.find(repaired.substr(start, r.end - start)) != std::string::npos);
        }
        // Nothing was thrown away: every byte not kept is in the set-aside file.
        std::uintmax_t removed = 0;
        for (const auto& s : rep.repaired)
            removed += s.removed_bytes;
        const auto first_line = text.find('\n');
        const bool preamble_kept = text.starts_with(a::format_line) && first_line != std::string::npos &&
                                   (first_line == a::format_line.size() || text[a::format_line.size()] == ' ');
        const auto new_preamble = preamble_kept ? 0 : repaired.find('\n') + 1;  // (a new one, written)
        RC_ASSERT(repaired.size() - new_preamble + removed == text.size());
        // A second repair finds nothing more.
        RC_ASSERT(resilite::repair_archive(dir, stopped).repaired.empty());
        std::filesystem::remove_all(dir);
    });
}

}  // namespace archive_repair_tests
