#pragma once
// resilite::repair_archive: sets aside what in an archive cannot be used (text that is no
// record, damaged records, a torn tail, second copies of a record number) into kept files
// beside each segment, keeps every valid record byte for byte, and names the gaps that remain.
// Given the live database, it also writes a fresh snapshot record from it, so that the archive
// alone can rebuild everything again, and proves it with a trial rebuild compared table by table
// with the database.
//
// The archive's writers are locked out meanwhile: they append only under the database's write
// lock, which the repair holds from before it reads the first segment to after the last rename.

#include <resilite/archive/archive_report.hpp>
#include <resilite/archive/archive_settings.hpp>
#include <resilite/archive/detail/archive_apply.hpp>
#include <resilite/archive/detail/archive_replay.hpp>
#include <resilite/archive/detail/archive_writer.hpp>
#include <resilite/archive/detail/behind_archive.hpp>
#include <resilite/archive/detail/segment_repair.hpp>
#include <resilite/archive/inspect_archive.hpp>
#include <resilite/core/detail/file_gate.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/sqlite/connection.hpp>
#include <resilite/sqlite/detail/identity.hpp>
#include <resilite/sqlite/detail/integrity_check.hpp>
#include <resilite/sqlite/transaction.hpp>

#include <sys/file.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace resilite {

struct repair_options {
    // The database that writes this archive. Its write lock keeps its writers out while the
    // archive is repaired, and a snapshot of it is written as the archive's new starting point.
    std::optional<std::filesystem::path> live_database;
    // Without a live database nothing locks the writers out: the caller states that none runs.
    bool writers_stopped = false;
    std::chrono::milliseconds lock_timeout{5000};
};

struct repaired_segment {
    std::string segment;
    std::int64_t kept_records = 0;
    std::int64_t removed_spans = 0;  // runs of bytes set aside
    std::uintmax_t removed_bytes = 0;
    std::filesystem::path set_aside;  // the kept file that holds them (empty: nothing removed)
};

struct repair_report {
    std::filesystem::path directory;
    std::vector<repaired_segment> repaired;  // segments rewritten
    std::vector<std::string> left_alone;     // segments not touched, and why
    // Second copies of a record number with other content, set aside: the first copy was kept.
    // Nothing proves it right (a snapshot written since means a rebuild no longer needs it; a
    // point-in-time rebuild before the snapshot uses it).
    std::vector<std::string> conflicts;
    std::optional<std::int64_t> snapshot_seq;  // the snapshot record written from the live database
    archive_report after;                      // the archive as it is now: a trial rebuild

    [[nodiscard]] bool changed() const noexcept { return !repaired.empty() || snapshot_seq.has_value(); }
    // 0 nothing needed repair, 2 repaired and the archive rebuilds (and reproduces the live
    // database, when given), 1 the archive still cannot rebuild everything.
    [[nodiscard]] int exit_code() const noexcept {
        if (after.status() == schema_status::critical || !left_alone.empty()) return 1;
        if (!conflicts.empty() && !snapshot_seq) return 1;  // a choice nothing proved, still needed
        return changed() ? 2 : 0;
    }
    [[nodiscard]] std::string to_text() const {
        std::string out =
            resilite::detail::format("archive repair {}: {}\n", directory.string(),
                                     exit_code() == 0   ? "nothing to repair"
                                     : exit_code() == 1 ? "the archive STILL cannot rebuild everything"
                                                        : "repaired");
        for (const auto& s : repaired) {
            out += resilite::detail::format(
                "  {}: {} record{} kept; {}\n", s.segment, s.kept_records, s.kept_records == 1 ? "" : "s",
                s.set_aside.empty() ? std::string{"its first line rewritten (nothing else removed)"}
                                    : resilite::detail::format(
                                          "{} byte{} in {} span{} set aside in {}", s.removed_bytes,
                                          s.removed_bytes == 1 ? "" : "s", s.removed_spans,
                                          s.removed_spans == 1 ? "" : "s", s.set_aside.filename().string()));
        }
        for (const auto& s : left_alone)
            out += resilite::detail::format("  left alone: {}\n", s);
        for (const auto& c : conflicts)
            out += resilite::detail::format(
                "  {}: set aside; NOT proved which copy was right{}\n", c,
                snapshot_seq
                    ? resilite::detail::format(" (a rebuild now starts at the snapshot, txn {}; only a "
                                               "point-in-time rebuild before it uses the copy kept)",
                                               *snapshot_seq)
                    : std::string{" (give the database: a snapshot of it makes the archive "
                                  "whole again)"});
        if (snapshot_seq)
            out += resilite::detail::format(
                "  a snapshot of the live database was written as txn {}: a rebuild starts there\n",
                *snapshot_seq);
        out += "  after the repair:\n";
        const auto text = after.to_text();
        for (std::size_t pos = 0; pos < text.size();) {
            const auto nl = text.find('\n', pos);
            const auto line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
            out += "  " + line + "\n";
            pos = nl == std::string::npos ? text.size() : nl + 1;
        }
        return out;
    }
};

namespace detail::archive {

// The name the archive's preambles give the database (the directory's name otherwise), from the
// segments already read.
[[nodiscard]] inline std::string archived_database_name(const std::filesystem::path& dir,
                                                        const std::vector<segment_plan>& plans) {
    for (const auto& p : plans) {
        std::string_view first{p.text};
        first = first.substr(0, first.find('\n'));
        constexpr std::string_view marker = " · database ";
        const auto at = first.find(marker);
        if (!first.starts_with(format_line) || at == std::string_view::npos) continue;
        auto rest = first.substr(at + marker.size());
        return std::string{rest.substr(0, rest.find(" · segment "))};
    }
    auto stem = dir.filename().string();
    if (stem.ends_with(".archive")) stem.resize(stem.size() - 8);
    return stem;
}

// Every segment read and its cut planned; the segments that change are rewritten. An empty
// `database_name`: the one the segments' preambles give.
inline void repair_segments(const std::filesystem::path& dir, std::string database_name, repair_report& report) {
    std::vector<segment_plan> plans;
    std::vector<std::string> odd;
    for (const auto& name : list_segments(dir, &odd)) {
        auto& p = plans.emplace_back();
        p.name = name;
        p.text = read_file(dir / name);
        auto contents = read_segment(p.text, name);
        p.records = std::move(contents.records);
        p.problems = std::move(contents.problems);
        p.unknown_format = contents.unknown_format;
    }
    for (const auto& name : odd)
        report.left_alone.push_back(resilite::detail::format(
            "{}: {}", name, unusable_segment(dir / name).value_or("not a regular file")));
    std::erase_if(plans, [&](const segment_plan& p) {
        if (p.unknown_format)
            report.left_alone.push_back(
                resilite::detail::format("{}: written in another archive format version", p.name));
        return p.unknown_format;
    });
    mark_duplicates(plans, report.conflicts);
    if (database_name.empty()) database_name = archived_database_name(dir, plans);
    for (const auto& p : plans) {
        const auto cut = cut_segment(p, database_name);
        if (cut.removed_spans == 0 && cut.kept == p.text.view()) continue;
        const auto aside = free_name(dir, p.name, "repaired");
        replace_segment(dir, p.name, cut, aside);
        report.repaired.push_back({p.name, cut.kept_records, cut.removed_spans, cut.removed_bytes,
                                   cut.removed.empty() ? std::filesystem::path{} : aside});
    }
}

inline repair_report repair(const std::filesystem::path& dir, const repair_options& options) {
    repair_report report;
    report.directory = dir;
    if (is_link_path(dir))
        throw library_failure(
            error_class::archive, "archive repair",
            resilite::detail::format("{} is a symbolic link; give the archive directory's real path",
                                     dir.string()),
            dir.string());
    if (!std::filesystem::is_directory(dir))
        throw library_failure(error_class::archive, "archive repair",
                              resilite::detail::format("no archive directory at {}", dir.string()),
                              dir.string());
    if (!options.live_database) {
        if (!options.writers_stopped)
            throw library_failure(
                error_class::misuse, "archive repair",
                "name the database that writes this archive (its write lock keeps its writers out while the "
                "archive is rewritten), or stop every writer and say so",
                dir.string());
        repair_segments(dir, {}, report);
        report.after = inspect_archive(dir);
        return report;
    }
    const auto& db = *options.live_database;
    const auto refuse = [&](error_class k, std::string message) {
        throw library_failure(k, "archive repair", std::move(message) + "; nothing was changed", db.string());
    };
    if (!std::filesystem::is_regular_file(db))
        refuse(error_class::cant_open, resilite::detail::format("no database at {}", db.string()));
    // The heal gate held shared, as by every operation: no heal swaps the database meanwhile
    // (the write lock below would then be the old file's, and writers of the new one would append).
    struct gate_hold {
        int fd;
        ~gate_hold() { ::close(fd); }
    } gate{open_gate(db, "archive repair")};
    if (!try_flock(gate.fd, LOCK_SH))
        refuse(error_class::busy, resilite::detail::format("a heal of {} is in progress", db.string()));
    sqlite::connection c{db, SQLITE_OPEN_READWRITE};
    c.busy_timeout(options.lock_timeout);
    sqlite::transaction lock{c, transaction_mode::immediate};  // the application's writers wait
    if (const auto found = detail::integrity_findings(c, false, 1); found.size() != 1 || found.front() != "ok")
        refuse(error_class::corrupt,
               resilite::detail::format("{} fails its quick check: a snapshot of it would carry the damage "
                                        "into the archive (heal the database first)",
                                        db.string()));
    const auto identity = read_identity(c);
    const bool archives = c.query_one<std::int64_t>("SELECT count(*) FROM sqlite_master WHERE name = "
                                                    "'resilite_archive_state'")
                              .value_or(0) > 0;
    if (!identity || !archives)
        refuse(error_class::misuse,
               resilite::detail::format("{} does not write a resilite archive", db.string()));
    if (const auto owner = read_archive_identity(dir); owner && *owner != *identity)
        refuse(error_class::misuse,
               resilite::detail::format("the archive {} belongs to another database (identity {}, {} is {})",
                                        dir.string(), *owner, db.string(), *identity));
    // A snapshot of a database behind its archive would end every later rebuild at its loss.
    if (const auto behind = behind_its_archive(db, dir))
        refuse(error_class::corrupt,
               resilite::detail::format("{}; heal it, or `resilite archive replay`, before repairing the "
                                        "archive",
                                        *behind));
    repair_segments(dir, db.filename().string(), report);
    // Secret columns stay out of the snapshot as they stay out of every record: the database's
    // own capture triggers name them.
    std::map<std::string, std::set<std::string>> secrets;
    const auto unarchived = unarchived_columns(c);
    for (const auto& tc : unarchived) {
        const auto dot = tc.find('.');
        secrets[tc.substr(0, dot)].insert(tc.substr(dot + 1));
    }
    std::vector<capture_table> declared;
    for (auto& [table, cols] : secrets)
        declared.push_back({table, std::move(cols)});
    // The proof: a trial rebuild of the archive as it is, every table compared with the database
    // (whose rows do not change meanwhile: the write lock is held).
    inspect_options check;
    check.live_database = db;
    check.excluded_columns = unarchived;
    check.whole_archive = true;  // (the snapshot's record is in the archive before its COMMIT)
    const auto contents = read_archive(dir);
    const bool complete = std::none_of(contents.problems.begin(), contents.problems.end(),
                                       [](const archive_problem& p) { return p.fatal; });
    if (report.repaired.empty() && complete) {
        report.after = inspect_archive(dir, check);
        if (report.after.status() != schema_status::critical) return report;  // no snapshot needed
    }
    archive_writer writer{dir, db.filename().string(), std::move(declared), archive_settings{}.settle_rows, db,
                          *identity};
    static_cast<void>(
        writer.catch_up(c, false, "a snapshot was written by `archive repair` so that the archive alone can "
                                  "rebuild the database again"));
    writer.before_commit(c, std::chrono::system_clock::now(), true);
    report.snapshot_seq = writer.last_seq();
    try {
        report.after = inspect_archive(dir, check);
    } catch (...) {
        writer.cancel_pending();  // the snapshot is taken back with the transaction
        throw;
    }
    if (report.after.status() == schema_status::critical) {
        writer.cancel_pending();
        report.snapshot_seq.reset();
        report.after = inspect_archive(dir, check);  // the archive as it is again, without the snapshot
        return report;
    }
    writer.commit(lock);
    if (!read_archive_identity(dir)) static_cast<void>(write_archive_identity(dir, *identity));
    return report;
}

}  // namespace detail::archive

// Every failure is a resilite::error; a database in use by a writer that holds its lock longer
// than `lock_timeout` gives class busy.
[[nodiscard]] inline repair_report repair_archive(const std::filesystem::path& archive_dir,
                                                  const repair_options& options = {}) {
    return detail::archive::guarded("archive repair", archive_dir,
                                    [&] { return detail::archive::repair(archive_dir, options); });
}

}  // namespace resilite
