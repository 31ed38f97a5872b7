#pragma once
// resilite::healing_settings: the run-time form of the healing policy.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace resilite {

struct healing_settings {
    bool enabled = false;  // false: a damaged database is refused at open (policy no_healing)
    int max_attempts = 3;  // heals that may fail in a row (across restarts) before healing stops
    std::chrono::seconds time_limit{300};  // a heal that takes longer stops, says so, deletes nothing
    std::string quarantine_directory;      // empty: "quarantine" beside the database
    std::chrono::hours retention{24 * 30};  // quarantined files older than this go at the next heal
    // Without an archive a backup cannot hold the commits made after it: heal from a backup
    // alone only when this is set (the report names the window that may be lost).
    bool accept_loss_since_backup = false;
    // A restore drill (db.drill()) this often, by maintain() or the background thread (0: only
    // on demand).
    std::chrono::seconds drill_interval{0};
    // A healed database is compared table by table with a trial rebuild of the archive when the
    // archive is at most this big; above it, integrity and foreign keys are checked (the report
    // says which). The trial rebuild costs as much as a heal from the archive alone.
    std::uintmax_t trial_rebuild_limit_bytes = 32ull << 20;

    friend bool operator==(const healing_settings&, const healing_settings&) = default;

    [[nodiscard]] std::optional<std::string> problem() const {
        if (max_attempts < 1) return std::string{"healing max_attempts must be at least 1"};
        if (time_limit <= std::chrono::seconds{0}) return std::string{"healing time_limit must be positive"};
        if (retention < std::chrono::hours{0}) return std::string{"healing retention must not be negative"};
        if (drill_interval < std::chrono::seconds{0}) return std::string{"drill_interval must not be negative"};
        return std::nullopt;
    }
};

}  // namespace resilite
