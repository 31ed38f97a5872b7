#pragma once
// resilite::backup_settings: the run-time form of the backup policy.

#include <resilite/monitor/check_level.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace resilite {

struct backup_settings {
    enum class method { online, vacuum_into };

    bool enabled = false;  // false: no backups (policy no_backup)
    method how = method::online;
    int pages_per_step = 256;                              // online: pages copied under the lock at a time
    std::chrono::milliseconds pause{1};                    // online: pause between steps, writers go first
    std::chrono::seconds time_limit{600};                  // online: give up (and say so) after this
    std::chrono::minutes interval{0};                      // 0: only on demand (db.backup_now())
    check_level check = check_level::quick;                // run on the source before and the copy after
    int keep_last = 24;                                    // retention: the newest N (when no generations)
    int keep_hourly = 0, keep_daily = 0, keep_weekly = 0;  // generations (any non-zero: used)
    std::string directory;                                 // empty: "<database>.backups" beside it
    std::string sink;                                      // command run with the finished backup, e.g.
                                                           // "rclone copyto {path} remote:backups/{name}"
    int max_restarts = 1;  // online: restarts by other processes' writes before VACUUM INTO takes over
    std::chrono::seconds sink_timeout{600};  // the sink is killed after this (and says so)

    friend bool operator==(const backup_settings&, const backup_settings&) = default;

    [[nodiscard]] std::optional<std::string> problem() const {
        if (pages_per_step < 1) return std::string{"backup pages_per_step must be at least 1"};
        if (max_restarts < 0) return std::string{"backup max_restarts must not be negative"};
        if (pause < std::chrono::milliseconds{0}) return std::string{"backup pause must not be negative"};
        if (time_limit <= std::chrono::seconds{0}) return std::string{"backup time_limit must be positive"};
        if (sink_timeout <= std::chrono::seconds{0}) return std::string{"backup sink_timeout must be positive"};
        if (interval < std::chrono::minutes{0}) return std::string{"backup interval must not be negative"};
        if (keep_last < 1 && keep_hourly + keep_daily + keep_weekly < 1) {
            return std::string{"backup retention must keep at least one backup"};
        }
        return std::nullopt;
    }
};

}  // namespace resilite
