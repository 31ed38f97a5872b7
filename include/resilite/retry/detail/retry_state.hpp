#pragma once
// The running account of one operation's attempts.

#include <resilite/core/error_class.hpp>
#include <resilite/retry/retry_settings.hpp>

#include <chrono>
#include <string>

namespace resilite::detail {

// A failure the operation does not report itself: with queue_writes, a write that fails because
// the database cannot take writes now is queued instead, and its "queued" event is the
// operation's one event; Database::write reports the failure only when it does not queue it.
struct held_failure {
    bool held = false;
    error_class klass = error_class::none;
    std::string detail;
    std::chrono::steady_clock::time_point start{};
    int attempts = 1;
};

struct retry_state {
    std::chrono::steady_clock::time_point start{};
    int attempt = 0;                            // attempts begun so far
    std::chrono::nanoseconds previous_delay{};  // for decorrelated jitter
    retry_settings limits{};
    std::chrono::milliseconds busy_timeout{};  // SQLite's wait inside one attempt, at most
    bool limits_loaded = false;                // `limits` hold the settings (else the defaults)
    bool waited_for_lock = false;              // an attempt waited for another thread's turn first
    held_failure* hold = nullptr;  // a failure of class degraded, full or read_only goes there, unreported

    [[nodiscard]] std::chrono::nanoseconds remaining(std::chrono::steady_clock::time_point now) const {
        return std::chrono::nanoseconds{limits.deadline} - (now - start);
    }
};

}  // namespace resilite::detail
