#pragma once
// resilite::archive_report: what an archive holds, what a rebuild from it gives, and every
// problem found on the way, each with the segment and line it is at.

#include <resilite/detail/format.hpp>
#include <resilite/schema/schema_status.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace resilite {

struct archive_problem {
    enum class kind {
        torn_tail,              // the last record was cut short (a crash while appending): skipped
        garbage,                // text between records that is no record: skipped
        damaged,                // a record whose framing is broken: skipped
        checksum,               // a record whose CRC-32 does not match its text: skipped
        duplicate,              // the same sequence number again with the same text: skipped
        conflicting_duplicate,  // the same sequence number again with other text: skipped
        gap,                    // sequence numbers missing: changes are lost
        time_order,             // a record older than the one before it
        refused,                // a statement the replay authorizer refused (DROP, ATTACH, PRAGMA...)
        failed,                 // a statement SQLite could not apply
        foreign_key,            // the rebuilt database fails its foreign-key check
        integrity,              // the rebuilt database fails its integrity check
        mismatch,               // the rebuilt table differs from the live one
        behind,                 // the live database lacks committed records the archive holds
    };
    kind what = kind::garbage;
    std::string segment;  // file name, e.g. "2026_11.sql"; empty when about the whole archive
    int line = 0;         // 1-based; 0 when not about a line
    std::string message;
    // Fatal problems mean the archive cannot reproduce everything that was committed.
    bool fatal = false;
    // The highest record number the problem concerns (a damaged record's, a gap's last), 0 when
    // unknown: a replay after a backup that holds that record does not need it.
    std::int64_t up_to_seq = 0;
};

[[nodiscard]] constexpr std::string_view to_string(archive_problem::kind k) noexcept {
    using K = archive_problem::kind;
    switch (k) {
        case K::torn_tail:
            return "torn tail";
        case K::garbage:
            return "garbage";
        case K::damaged:
            return "damaged record";
        case K::checksum:
            return "checksum mismatch";
        case K::duplicate:
            return "duplicate";
        case K::conflicting_duplicate:
            return "conflicting duplicate";
        case K::gap:
            return "sequence gap";
        case K::time_order:
            return "time order";
        case K::refused:
            return "refused";
        case K::failed:
            return "failed statement";
        case K::foreign_key:
            return "foreign key";
        case K::integrity:
            return "integrity";
        case K::mismatch:
            return "differs from live";
        case K::behind:
            return "database behind its archive";
    }
    return "?";
}

struct archive_table_summary {
    std::string name;
    std::int64_t rows = 0;
    std::string content_hash;          // inspect_archive: over every column, independent of row order
    std::optional<bool> matches_live;  // set when compared with a live database
};

struct archive_report {
    std::filesystem::path directory;
    std::vector<std::string> segments;  // in order
    std::int64_t records = 0;           // valid records read (and those not read, below)
    // A replay into a database that already held the records up to this number walked over
    // them by their framing: not read, not checked (0: every record was read).
    std::int64_t not_read_through = 0, not_read_records = 0;
    std::int64_t first_seq = 0, last_seq = 0;
    std::string first_time, last_time;  // UTC, ISO 8601
    std::int64_t baseline_seq = 0;      // the snapshot a rebuild starts from (0: the first record)
    std::int64_t applied_records = 0;   // replayed by the rebuild
    std::vector<archive_table_summary> tables;
    std::vector<archive_problem> problems;
    std::optional<bool> reproduces_live;  // every table equal to the live database's
    // Changes the live database's outbox holds that the archive has not received yet (a batched
    // archive, or another program's writes through the capture triggers): a difference they
    // explain is a lag, not a loss (a warning).
    std::int64_t unarchived_changes = 0;

    // (A rebuilt table that differs from the live one is a rebuild that was possible: its
    // verdict is reproduces_live.)
    [[nodiscard]] bool rebuildable() const noexcept {
        for (const auto& p : problems)
            if (p.fatal && p.what != archive_problem::kind::mismatch && p.what != archive_problem::kind::behind)
                return false;
        return records > 0;
    }
    // 0 ok, 1 critical (fatal problems, or the archive does not reproduce the database),
    // 2 warnings (problems that lost nothing, e.g. a torn tail that was never acknowledged).
    [[nodiscard]] schema_status status() const noexcept {
        if (!rebuildable() || (reproduces_live == false && unarchived_changes == 0)) return schema_status::critical;
        for (const auto& p : problems)  // (a lag beside it does not make it one)
            if (p.what == archive_problem::kind::behind) return schema_status::critical;
        return problems.empty() ? schema_status::ok : schema_status::warnings;
    }
    [[nodiscard]] int exit_code() const noexcept { return static_cast<int>(status()); }

    [[nodiscard]] std::string to_text() const {
        std::string out =
            resilite::detail::format("archive {}: {}\n", directory.string(), to_string(status()));
        out += resilite::detail::format("  {} segment{}, {} record{}", segments.size(),
                                        segments.size() == 1 ? "" : "s", records, records == 1 ? "" : "s");
        if (first_seq > 0) {
            out += resilite::detail::format(", txn {} ({}) .. {} ({})", first_seq, first_time, last_seq,
                                            last_time);
        }
        out += '\n';
        if (not_read_records > 0)
            out += resilite::detail::format(
                "  {} record{} up to txn {} not read: the database already held them\n", not_read_records,
                not_read_records == 1 ? "" : "s", not_read_through);
        out += resilite::detail::format(
            "  rebuild: {}, from {}, {} record{} replayed\n", rebuildable() ? "possible" : "NOT possible",
            baseline_seq > 0       ? resilite::detail::format("the snapshot at txn {}", baseline_seq)
            : not_read_records > 0 ? resilite::detail::format("after txn {}", not_read_through)
                                   : std::string{"the first record"},
            applied_records, applied_records == 1 ? "" : "s");
        for (const auto& t : tables) {
            out += resilite::detail::format(
                "  table {}: {} row{}{}{}\n", t.name, t.rows, t.rows == 1 ? "" : "s",
                t.content_hash.empty() ? "" : ", hash " + t.content_hash,
                !t.matches_live ? "" : (*t.matches_live ? ", equals live" : ", DIFFERS from live"));
        }
        if (reproduces_live) {
            out += *reproduces_live ? std::string{"  the archive alone reproduces the live database\n"}
                   : unarchived_changes > 0
                       ? resilite::detail::format(
                             "  the archive alone does not reproduce the live database yet: {} change{} "
                             "wait{} in its outbox (the archive lags; its next drain takes them)\n",
                             unarchived_changes, unarchived_changes == 1 ? "" : "s",
                             unarchived_changes == 1 ? "s" : "")
                       : std::string{"  the archive alone does NOT reproduce the live database\n"};
        }
        for (const auto& p : problems) {
            out += resilite::detail::format(
                "  {} {}{}: {}\n", p.fatal ? "FATAL  " : "warning", to_string(p.what),
                p.segment.empty() ? std::string{} : resilite::detail::format(" at {}:{}", p.segment, p.line),
                p.message);
        }
        return out;
    }
};

}  // namespace resilite
