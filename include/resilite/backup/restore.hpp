#pragma once
// resilite::restore(backup, target): puts a backup in place of a database, safely: the backup
// is checked first, copied to a temporary file, synced and renamed over the target, and a
// target that another connection has open is never overwritten.

#include <resilite/archive/detail/archive_state.hpp>
#include <resilite/backup/detail/backup_files.hpp>
#include <resilite/core/error.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/monitor/detail/audit_fallback.hpp>
#include <resilite/monitor/check_health.hpp>
#include <resilite/sqlite/connection.hpp>
#include <resilite/sqlite/detail/durable_file.hpp>
#include <resilite/sqlite/detail/marker.hpp>
#include <resilite/sqlite/file_set.hpp>

#include <resilite/detail/utc_format.hpp>

#include <fmt/format.h>


#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace resilite {

namespace detail {
// Moves a database and its side files into `<db>.quarantine-<UTC>/` (never deleted by resilite).
inline std::filesystem::path quarantine(const std::filesystem::path& db) {
    const auto stamp = utc_format(std::chrono::system_clock::now(), "%Y%m%dT%H%M%SZ");
    auto dir = std::filesystem::path{resilite::detail::format("{}.quarantine-{}", db.string(), stamp)};
    for (int n = 2; std::filesystem::exists(dir); ++n)
        dir = resilite::detail::format("{}.quarantine-{}-{}", db.string(), stamp, n);
    std::filesystem::create_directory(dir);
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
    sqlite::file_set{db}.move_into(dir);
    static_cast<void>(fsync_path(dir, true));
    static_cast<void>(fsync_path(db.has_parent_path() ? db.parent_path() : ".", true));
    return dir;
}
// The archive number a database file stores (0: none; no archive was kept).
[[nodiscard]] inline std::int64_t archive_number_of(const std::filesystem::path& db) noexcept {
    try {
        sqlite::connection c{db, SQLITE_OPEN_READONLY};
        return archive::stored_archive_seq(c).value_or(0);
    } catch (...) {
        return 0;
    }
}

// A restore rolls back on purpose: the sidecar says to which archive number, so that the next
// open takes the archive's later records as rolled back (a snapshot after them) instead of
// refusing a database behind its archive, as it does for one that lost its -wal. Written
// before the copy is renamed into place (nothing may see the copy without it); a target with
// no sidecar gets one with the copy's identity. False when it cannot be written.
[[nodiscard]] inline bool mark_rolled_back(const std::filesystem::path& target, const std::filesystem::path& copy,
                                           std::int64_t seq) noexcept {
    try {
        const sidecar_lock lock{target};
        auto m = read_marker(target);
        if (!m.exists) {
            sqlite::connection c{copy, SQLITE_OPEN_READONLY};
            if (c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = 'resilite_identity'") != 1)
                return true;  // not a database resilite initialised: nothing to tell apart
            m.identity = c.query_one<std::string>("SELECT identity FROM resilite_identity").value_or("");
        }
        m.rolled_back_to = seq;
        return write_marker(target, m);
    } catch (...) {
        return false;
    }
}
}  // namespace detail

// Returns where the target's files were moved (empty when there was no target): a damaged
// target, or with a sound one (its caller chose to replace it) the database it replaced.
inline std::filesystem::path restore(const std::filesystem::path& backup, const std::filesystem::path& target,
                                     check_level level = check_level::quick) {
    // Only a database file (or nothing) is replaced: a directory would be moved into quarantine
    // whole, a link replaced by the copy while the file it names stays as it was.
    std::error_code ignored;
    if (const auto st = std::filesystem::symlink_status(target, ignored);
        std::filesystem::exists(st) && !std::filesystem::is_regular_file(st)) {
        throw detail::library_failure(
            error_class::misuse, "restore",
            resilite::detail::format(
                "{} is {}, not a database file; nothing was changed", target.string(),
                std::filesystem::is_directory(st) ? "a directory"
                : std::filesystem::is_symlink(st)
                    ? resilite::detail::format("a symbolic link (give the file's real path, {})",
                                               std::filesystem::weakly_canonical(target, ignored).string())
                    : std::string{"not a regular file"}),
            target.string());
    }
    // A backup in a directory resilite keeps is trusted only as its manifest recorded it when it
    // was taken (size and checksum): a copy changed, renamed or planted there is not put in place.
    if (const auto manifest = detail::read_manifest(backup.has_parent_path() ? backup.parent_path() : ".");
        !manifest.empty()) {
        if (const auto why = detail::untrusted_backup(backup, manifest))
            throw detail::library_failure(
                error_class::corrupt, "restore",
                resilite::detail::format("{}: {}; nothing was changed", backup.string(), *why), target.string());
    }
    // Another database's backup would put its rows at this path, and its identity: refused. The
    // target's identity is its sidecar's (readable when the file is damaged), else the file's.
    if (const auto from = detail::identity_in_file(backup)) {
        if (const auto at = detail::database_identity(target); !at.empty() && at != *from)
            throw detail::library_failure(
                error_class::misuse, "restore",
                resilite::detail::format("{} is a backup of another database (identity {}; the database at {} is "
                                         "{}); nothing was changed. If that database is to be replaced by another "
                                         "one, move it and its sidecar {}-resilite aside first",
                                         backup.string(), *from, target.string(), at, target.string()),
                target.string());
    }
    const auto health = check_health(backup, level);
    if (health.result != health_report::finding::ok) {
        throw detail::library_failure(
            error_class::corrupt, "restore",
            resilite::detail::format("the backup failed its {} check ({}: {}); nothing was changed",
                                     to_string(level), to_string(health.result), health.detail),
            target.string());
    }
    try {
        std::filesystem::path quarantined;
        std::error_code ec;
        const bool present = std::filesystem::exists(target, ec) && std::filesystem::file_size(target, ec) > 0;
        // Restore is the tool for a damaged database (a damaged page as much as a damaged header).
        const bool sound = present && check_health(target, check_level::quick).ok();
        if (sound) {
            // Leaving WAL mode needs the database to itself: it fails while anyone has it open.
            try {
                sqlite::connection c{target};
                c.busy_timeout(std::chrono::milliseconds{0});
                const auto mode = c.query_one<std::string>("PRAGMA journal_mode=DELETE");
                if (!mode || *mode != "delete") throw std::runtime_error("still in WAL mode");
            } catch (const std::exception& e) {
                throw detail::library_failure(
                    error_class::busy, "restore",
                    resilite::detail::format("the target database is open elsewhere; close it first ({})",
                                             e.what()),
                    target.string());
            }
        }
        const auto dir = target.has_parent_path() ? target.parent_path() : std::filesystem::path{"."};
        const auto prefix = resilite::detail::format(".{}.restore.tmp-", target.filename().string());
        detail::remove_stale_temp_files(dir, prefix);
        const auto tmp = dir / resilite::detail::format("{}{}", prefix, ::getpid());
        std::filesystem::copy_file(backup, tmp, std::filesystem::copy_options::overwrite_existing);
        if (!detail::fsync_path(tmp, false)) {
            std::filesystem::remove(tmp, ec);
            throw detail::library_failure(error_class::io, "restore", "could not sync the restored copy",
                                          target.string());
        }
        const auto restored_seq = detail::archive_number_of(tmp);
        sqlite::file_set{tmp}.remove_side_files();  // (of that read, if any)
        if (!detail::mark_rolled_back(target, tmp, restored_seq)) {
            std::filesystem::remove(tmp, ec);
            throw detail::library_failure(error_class::io, "restore",
                                          "could not write the sidecar, which says the restore rolled back on "
                                          "purpose; nothing was changed",
                                          target.string());
        }
        // The copy is whole and synced: only now do the target's files go aside, never destroyed
        // (damaged, or sound and replaced by the caller's choice: it holds the commits since the
        // backup), and the copy takes their place.
        if (present) quarantined = detail::quarantine(target);
        sqlite::file_set{target}.remove_side_files();
        try {
            std::filesystem::rename(tmp, target);
        } catch (const std::filesystem::filesystem_error& e) {
            throw detail::library_failure(
                error_class::io, "restore",
                resilite::detail::format("could not put the copy in place ({}); the database that was at the path "
                                         "is kept in {}",
                                         e.what(), quarantined.string()),
                target.string());
        }
        static_cast<void>(detail::fsync_path(dir, true));
        // The audit log: no Database here, so the entry waits in the fallback for the next open.
        static_cast<void>(detail::audit_without_database(
            target, "restore",
            resilite::detail::format("restored {} from the backup {}{}", target.string(), backup.string(),
                                     quarantined.empty() ? std::string{}
                                     : sound ? "; the database it replaced was kept in " + quarantined.string()
                                             : "; the damaged files were kept in " + quarantined.string())));
        return quarantined;
    } catch (const std::filesystem::filesystem_error& e) {
        // Every failure is a resilite::error: a full disk, a name too long, a missing directory.
        const auto code = e.code().value();
        throw detail::library_failure(code == ENOSPC                            ? error_class::full
                                      : code == ENAMETOOLONG || code == ENOENT ? error_class::cant_open
                                                                                : error_class::io,
                                      "restore", e.what(), target.string());
    }
}

}  // namespace resilite
