#pragma once
// resilite::restore(backup, target): puts a backup in place of a database, safely: the backup
// is checked first, copied to a temporary file, synced and renamed over the target, and a
// target that another connection has open is never overwritten.

#include <resilite/check_health.hpp>
#include <resilite/detail/durable_file.hpp>
#include <resilite/error.hpp>
#include <resilite/sqlite/connection.hpp>

#include <fmt/format.h>

#include <filesystem>

namespace resilite {

inline void restore(const std::filesystem::path& backup, const std::filesystem::path& target,
                    check_level level = check_level::quick) {
    const auto health = check_health(backup, level);
    if (health.result != health_report::finding::ok) {
        throw detail::library_failure(
            error_class::corrupt, "restore",
            fmt::format("the backup failed its {} check ({}: {}); nothing was changed", to_string(level),
                        to_string(health.result), health.detail),
            target.string());
    }
    std::error_code ec;
    if (std::filesystem::exists(target, ec) && std::filesystem::file_size(target, ec) > 0) {
        // Leaving WAL mode needs the database to itself: it fails while anyone has it open.
        try {
            sqlite::connection c{target};
            c.busy_timeout(std::chrono::milliseconds{0});
            const auto mode = c.query_one<std::string>("PRAGMA journal_mode=DELETE");
            if (!mode || *mode != "delete") throw std::runtime_error("still in WAL mode");
        } catch (const std::exception& e) {
            throw detail::library_failure(
                error_class::busy, "restore",
                fmt::format("the target database is open elsewhere; close it first ({})", e.what()),
                target.string());
        }
    }
    const auto dir = target.has_parent_path() ? target.parent_path() : std::filesystem::path{"."};
    const auto tmp = dir / fmt::format(".{}.restore.tmp", target.filename().string());
    std::filesystem::copy_file(backup, tmp, std::filesystem::copy_options::overwrite_existing);
    if (!detail::fsync_path(tmp, false)) {
        std::filesystem::remove(tmp, ec);
        throw detail::library_failure(error_class::io, "restore", "could not sync the restored copy",
                                      target.string());
    }
    for (const char* stale : {"-wal", "-shm", "-journal"})
        std::filesystem::remove(target.string() + stale, ec);
    std::filesystem::rename(tmp, target);
    static_cast<void>(detail::fsync_path(dir, true));
}

}  // namespace resilite
