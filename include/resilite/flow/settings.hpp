#pragma once
// resilite::settings: the runtime knobs, seeded from the compile-time policies and changeable
// while running with Database::reconfigure() (validated, swapped whole).

#include <resilite/archive/archive_settings.hpp>
#include <resilite/backup/backup_settings.hpp>
#include <resilite/backup/offsite_settings.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/durability/synchronous.hpp>
#include <resilite/flow/degradation_settings.hpp>
#include <resilite/heal/healing_settings.hpp>
#include <resilite/retry/retry_settings.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace resilite {

struct settings {
    synchronous sync = synchronous::full;
    std::chrono::seconds checkpoint_interval{60};      // periodic PASSIVE checkpoint
    std::uint64_t wal_alert_bytes = 64ull << 20;       // event when the WAL file grows past this
    std::chrono::milliseconds busy_timeout{1000};      // SQLite's own busy wait inside each attempt
    std::size_t statement_cache_capacity = 64;         // prepared statements kept per connection
    std::size_t read_connections = 0;                  // read-only connections for reads outside transactions
    retry_settings retry{};                            // backoff between attempts
    backup_settings backup{};                          // copies, schedule, retention
    offsite_settings offsite{};                        // copies off the machine (rclone)
    archive_settings archive{};                        // text archive of every committed change
    healing_settings healing{};                        // what happens to a database found damaged
    degradation_settings degradation{};                // probes while the database is unavailable
    std::chrono::seconds quick_check_interval{0};      // scheduled quick_check (0: off)
    std::chrono::seconds integrity_check_interval{0};  // scheduled integrity_check (0: off)

    friend bool operator==(const settings&, const settings&) = default;

    // Why these settings cannot be used, or nothing when they are valid.
    [[nodiscard]] std::optional<std::string> problem() const {
        if (checkpoint_interval <= std::chrono::seconds{0}) {
            return resilite::detail::format("checkpoint_interval must be positive (got {}s)",
                                            checkpoint_interval.count());
        }
        if (wal_alert_bytes == 0) return std::string{"wal_alert_bytes must be positive"};
        if (busy_timeout < std::chrono::milliseconds{0} ||
            busy_timeout > std::chrono::milliseconds{600'000}) {
            return resilite::detail::format("busy_timeout must be within 0..600000 ms (got {} ms)",
                                            busy_timeout.count());
        }
        if (statement_cache_capacity == 0 || statement_cache_capacity > 10'000) {
            return resilite::detail::format("statement_cache_capacity must be within 1..10000 (got {})",
                                            statement_cache_capacity);
        }
        if (read_connections > 64) {
            return resilite::detail::format("read_connections must be within 0..64 (got {})",
                                            read_connections);
        }
        const int s = static_cast<int>(sync);
        if (s < 1 || s > 3) return resilite::detail::format("synchronous level {} is not allowed", s);
        if (quick_check_interval < std::chrono::seconds{0} ||
            integrity_check_interval < std::chrono::seconds{0}) {
            return std::string{"check intervals must not be negative"};
        }
        if (auto p = backup.problem()) return p;
        if (auto p = offsite.problem()) return p;
        if (auto p = archive.problem()) return p;
        if (auto p = healing.problem()) return p;
        if (auto p = degradation.problem()) return p;
        return retry.problem();
    }
};

}  // namespace resilite
