#pragma once
// A database file behind its archive: the archive holds committed records the file does not
// (its -wal removed after a crash, an older copy put in its place by hand). The open refuses such
// a file, or heals it (archive_writer::refuse_unless_restored); the command asks here, where no
// writer runs. resilite::restore() rolls back on purpose and says so in the sidecar.

#include <resilite/archive/detail/archive_capture.hpp>
#include <resilite/archive/detail/archive_state.hpp>
#include <resilite/archive/detail/high_water.hpp>
#include <resilite/archive/detail/segment_file.hpp>
#include <resilite/core/detail/read_only_volume.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/sqlite/connection.hpp>
#include <resilite/sqlite/detail/marker.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace resilite::detail::archive {

[[nodiscard]] inline std::string behind_text(std::int64_t db_seq, std::int64_t archive_end, std::int64_t mark) {
    return resilite::detail::format(
        "the database is behind its archive: it holds the archive's records up to txn {}, the archive "
        "goes on to txn {}{}: committed transactions are missing from the file (its -wal removed "
        "after a crash, or an older copy put in its place)",
        db_seq, archive_end,
        mark > db_seq ? resilite::detail::format(" (high-water mark {})", mark) : std::string{});
}

// Whether the database's outbox still holds the rows of the record `t` (a record whose settle,
// the number stored after a drain, was lost): then the database has those commits.
[[nodiscard]] inline bool outbox_holds(sqlite::connection& c, template_cache& templates, const tail_info& t) {
    std::optional<record_checksum> crc;
    std::int64_t expected = t.first_id;
    bool contiguous = true;
    for_each_outbox_row(c, templates, t.first_id - 1, t.last_id, [&](std::int64_t id, std::string_view stmt) {
        contiguous = contiguous && id == expected++;
        if (!crc) crc.emplace(t.seq, t.utc, stmt == baseline_begin ? record_kind::baseline : record_kind::changes);
        if (stmt == baseline_begin || stmt == baseline_end) return;
        crc->add(stmt);
        crc->add("\n");
    });
    return contiguous && crc && expected == t.last_id + 1 && crc->value() == t.crc;
}

// The number of the archive's last record, read from the end of its newest segment (0: no
// record, or an end it cannot vouch for).
[[nodiscard]] inline std::int64_t archive_end(const std::filesystem::path& dir) {
    const auto segments = list_segments(dir);
    if (segments.empty()) return 0;
    const auto last = dir / segments.back();
    std::error_code ec;
    const auto size = std::filesystem::file_size(last, ec);
    if (ec) return 0;
    const auto tail = read_last_record(last, size, segments.back());
    return tail ? tail->seq : 0;
}

// Read only. What the archive in `dir` holds beyond the database `db` that the high-water mark
// says committed, unless a restore rolled it back on purpose; nothing when it holds nothing more
// (or when it cannot tell: an unusual archive end, a file it cannot read).
[[nodiscard]] inline std::optional<std::string> behind_its_archive(const std::filesystem::path& db,
                                                                   const std::filesystem::path& dir) noexcept {
    try {
        std::error_code ec;
        if (!std::filesystem::is_regular_file(db, ec)) return std::nullopt;
        // In this order, so that a writer committing meanwhile is never taken for a loss: the
        // mark is raised after each COMMIT, the database's number is stored by it, and records
        // are appended before it.
        const auto m = read_marker(db);
        const auto mark = read_high_water(high_water_path(db)).for_database(m.identity);
        const auto [target, flags] = read_target(db);  // (a read-only volume)
        sqlite::connection c{target, flags};
        c.busy_timeout(std::chrono::milliseconds{5000});
        const auto stored = stored_archive_seq(c);
        if (!stored) return std::nullopt;
        const auto db_seq = stored.value_or(0);
        // At most one append can be ahead without having committed (a crash before its COMMIT:
        // the next open sets it aside); the mark says what committed.
        if (mark <= db_seq || m.rolled_back_to == db_seq) return std::nullopt;
        const auto segments = list_segments(dir);
        if (segments.empty()) return std::nullopt;
        const auto last = dir / segments.back();
        const auto tail = read_last_record(last, std::filesystem::file_size(last, ec), segments.back());
        if (ec || !tail || tail->seq <= db_seq) return std::nullopt;
        template_cache templates;
        if (outbox_holds(c, templates, *tail)) return std::nullopt;
        return behind_text(db_seq, tail->seq, mark);
    } catch (...) {
        return std::nullopt;
    }
}

}  // namespace resilite::detail::archive
