#pragma once
// resilite::check_health(path, level): looks at a database without changing it. Used at open
// (header level) and by healing; applications can run it on demand.

#include <resilite/core/detail/progress_meter.hpp>
#include <resilite/core/detail/read_only_volume.hpp>
#include <resilite/core/error.hpp>
#include <resilite/core/progress.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/monitor/detail/peek_file.hpp>
#include <resilite/monitor/detail/wal_check.hpp>
#include <resilite/monitor/health_report.hpp>
#include <resilite/sqlite/connection.hpp>
#include <resilite/sqlite/detail/integrity_check.hpp>
#include <resilite/sqlite/detail/marker.hpp>

#include <fmt/format.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <algorithm>
#include <fstream>
#include <string>
#include <tuple>

namespace resilite {

namespace detail {
}  // namespace detail

// `on_progress`: told how far a quick or full check has come, in SQLite's steps (the total is not
// known in advance).
[[nodiscard]] inline health_report check_health(const std::filesystem::path& path,
                                                check_level level = check_level::quick,
                                                const progress_fn& on_progress = {}) {
    using F = health_report::finding;
    health_report r;
    r.level = level;
    std::error_code ec;
    const bool marked = std::filesystem::exists(detail::marker_path(path), ec);
    if (!std::filesystem::exists(path, ec)) {
        r.result = marked ? F::missing : F::new_database;
        r.detail =
            marked ? "the database file is gone, but resilite had initialised it" : "no database file yet";
        return r;
    }
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) return {F::io_error, level, ec.message()};
    if (size == 0) {
        r.result = marked ? F::emptied : F::new_database;
        r.detail = marked ? "the database file is empty (0 bytes), but resilite had initialised it: data lost"
                          : "empty file, never initialised";
        return r;
    }
    // Through SQLite, never a descriptor of ours: see detail/peek_file.hpp (closing one would
    // drop this process's locks on a database it has open).
    // (Before page 1 is read: a first checkpoint by another process between the two would pair
    // the old, empty page 1 with a WAL already emptied.)
    const bool wal_before = detail::wal_has_frames(path);
    const auto peek = detail::peek_file(path, 105);  // the header, and page 1's b-tree header
    if (peek.rc != SQLITE_OK) return {F::io_error, level, peek.message};
    std::array<unsigned char, 100> header{};
    if (peek.bytes.size() < header.size()) {
        return {F::bad_header, level,
                resilite::detail::format("the file is {} bytes, shorter than the 100-byte header", size)};
    }
    std::copy(peek.bytes.begin(), peek.bytes.begin() + static_cast<std::ptrdiff_t>(header.size()), header.begin());
    // What the WAL says first: a crash during a checkpoint can tear page 1 in the main file
    // while the log still holds it whole; SQLite recovers from the log, so the check does too.
    const auto sync = detail::read_marker(path).synchronous;
    const auto wal = detail::check_wal(path.string() + "-wal", sync != "NORMAL" && sync != "OFF");
    if (!wal.ok) return {F::bad_wal, level, wal.detail};
    if (wal.page1.size() == header.size() && std::memcmp(header.data(), wal.page1.data(), header.size()) != 0)
        std::copy(wal.page1.begin(), wal.page1.end(), header.begin());
    // A hot rollback journal (a crash while the file was created or left WAL mode) puts the
    // original pages back when SQLite next opens the file: the header is its business then.
    const bool magic = detail::has_sqlite_magic(header.data(), header.size());
    if (!magic && detail::hot_journal(path)) {
        r.detail = "a rollback journal from an interrupted transaction will restore the file";
        return r;
    }
    if (!magic) {
        return {F::not_a_database, level,
                "the file does not start with the SQLite header (\"SQLite format 3\")"};
    }
    const auto be32 = [&](std::size_t at) {
        return std::uint32_t{header[at]} << 24 | std::uint32_t{header[at + 1]} << 16 |
               std::uint32_t{header[at + 2]} << 8 | header[at + 3];
    };
    const std::uint32_t raw_page = std::uint32_t{header[16]} << 8 | header[17];
    const std::uint32_t page_size = raw_page == 1 ? 65536u : raw_page;
    if (page_size < 512 || (page_size & (page_size - 1)) != 0) {
        return {F::bad_header, level,
                resilite::detail::format("the header's page size {} is invalid", raw_page)};
    }
    // The in-header page count is valid when its "version valid for" matches the change counter.
    // With frames in the WAL the count is skipped: a checkpoint in progress (another process)
    // writes page 1 before it extends the file, and the WAL holds the pages meanwhile.
    const bool wal_in_use = detail::wal_has_frames(path);
    if (!wal_in_use && be32(92) == be32(24) && be32(28) != 0) {
        const auto expected = static_cast<std::uintmax_t>(be32(28)) * page_size;
        if (size < expected) {
            return {
                F::bad_header, level,
                resilite::detail::format(
                    "the file is {} bytes, but its header says {} pages of {} bytes ({} bytes): truncated",
                    size, be32(28), page_size, expected)};
        }
    }
    // A database resilite initialised (its sidecar names the identity it stamped into it) whose
    // schema is empty (page 1 a leaf without a cell) lost every table: its -wal removed before
    // the first checkpoint, say. Emptied, not "another database". (With frames in the WAL, page
    // 1 may be there.)
    if (!wal_before && !wal_in_use && !detail::hot_journal(path) && peek.bytes.size() >= 105 &&
        peek.bytes[100] == 0x0D && peek.bytes[103] == 0 && peek.bytes[104] == 0) {
        if (const auto m = detail::read_marker(path); !m.identity.empty())
            return {F::emptied, level,
                    resilite::detail::format(
                        "the database holds no table at all, but resilite had initialised it (identity {}): data "
                        "lost (its -wal removed before its first checkpoint, or the file emptied)",
                        m.identity)};
    }
    if (level == check_level::header) return r;

    const auto run_check = [&](sqlite::connection& c) -> health_report {
        constexpr int steps_per_tick = 100000;
        detail::progress_meter meter{&on_progress, "check", level == check_level::full ? "integrity_check" : "quick_check",
                                     "steps", 0, 10 * steps_per_tick};
        if (meter.active())
            sqlite3_progress_handler(
                c.native_handle(), steps_per_tick,
                [](void* m) {
                    static_cast<detail::progress_meter*>(m)->advance(steps_per_tick);
                    return 0;
                },
                &meter);
        const auto lines = detail::integrity_findings(c, level == check_level::full, 20);
        sqlite3_progress_handler(c.native_handle(), 0, nullptr, nullptr);
        meter.finish();
        if (lines.size() == 1 && lines[0] == "ok") return r;
        std::string found;
        for (const auto& l : lines)
            found += (found.empty() ? "" : "\n") + l;  // one problem a line: errors summarise
        return {F::corrupt, level, found};
    };
    const auto classify = [&](const error& e) -> health_report {
        if (e.klass() == error_class::not_a_database) return {F::not_a_database, level, e.what()};
        if (e.klass() == error_class::corrupt) return {F::corrupt, level, e.what()};
        return {F::io_error, level, e.what()};
    };
    try {
        sqlite::connection c{path, SQLITE_OPEN_READONLY};
        return run_check(c);
    } catch (const error& e) {
        if (e.klass() == error_class::not_a_database || e.klass() == error_class::corrupt ||
            !detail::on_read_only_volume(path))
            return classify(e);
        // On a volume mounted read-only SQLite cannot create the -shm index it reads a WAL-mode
        // file through. With no frames in its WAL (and no hot journal) the file alone is the
        // database, checked as immutable; frames it cannot read, or a journal it would play back,
        // are not checked, and not called damage either.
        const auto [target, flags] = detail::read_target(path);
        if ((flags & SQLITE_OPEN_URI) == 0) {
            const bool wal = detail::wal_has_frames(path);
            return {F::io_error, level,
                    resilite::detail::format(
                        "not checked: the volume holding it is mounted read-only, and its {} holds changes "
                        "SQLite cannot apply there; this is not damage (remount the volume read-write, or "
                        "copy the database with its {} to a writable place and check the copy) [{}]",
                        wal ? "WAL" : "rollback journal", wal ? "-wal" : "-journal", e.what())};
        }
        // Read-only here is not read-only everywhere (a read-only bind mount, an NFS export
        // another machine writes): an immutable read of a file that changed meanwhile could
        // find damage that is not there, so a change is said instead.
        const auto stamp = [&] {
            std::error_code ignored;
            return std::make_tuple(std::filesystem::file_size(path, ignored),
                                   std::filesystem::last_write_time(path, ignored), detail::wal_has_frames(path));
        };
        const auto before = stamp();
        try {
            sqlite::connection c{target, flags};
            auto found = run_check(c);
            if (stamp() != before)
                return {F::io_error, level,
                        "not checked: the file changed while it was read as immutable (the volume is mounted "
                        "read-only here, but written elsewhere); check it where it is written"};
            return found;
        } catch (const error& again) {
            return classify(again);
        }
    }
}

}  // namespace resilite
