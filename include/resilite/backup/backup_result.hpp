#pragma once
// resilite::backup_result: one finished backup, as the manifest records it.

#include <resilite/monitor/health_report.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace resilite {

struct backup_result {
    std::filesystem::path path;                   // the promoted backup file
    std::chrono::system_clock::time_point taken;  // UTC
    std::uint64_t bytes = 0;
    std::int64_t pages = 0;
    health_report check;  // the copy's check
    std::chrono::nanoseconds duration{0};
    int restarts = 0;        // online backup restarted by another writer
    bool vacuumed = false;   // taken with VACUUM INTO (chosen, or after max_restarts restarts)
    std::string sink_error;  // empty when no sink or it succeeded
    std::string offsite_error;  // empty when not copied off the machine or the copy succeeded (retried later)
    // The last archive record the copy holds (records after it are replayed on top of it).
    std::optional<std::int64_t> archive_seq;
    // CRC-32 of the whole file as it was promoted, in the manifest: a heal trusts a backup only
    // when its size and checksum still match.
    std::uint32_t crc32 = 0;
};

}  // namespace resilite
