#pragma once
// The running account of one operation's attempts.

#include <resilite/retry/retry_settings.hpp>

#include <chrono>

namespace resilite::detail {

struct retry_state {
    std::chrono::steady_clock::time_point start{};
    int attempt = 0;                            // attempts begun so far
    std::chrono::nanoseconds previous_delay{};  // for decorrelated jitter
    retry_settings limits{};
    std::chrono::milliseconds busy_timeout{};  // SQLite's wait inside one attempt, at most
    bool limits_loaded = false;                // `limits` hold the settings (else the defaults)
    bool waited_for_lock = false;              // an attempt waited for another thread's turn first

    [[nodiscard]] std::chrono::nanoseconds remaining(std::chrono::steady_clock::time_point now) const {
        return std::chrono::nanoseconds{limits.deadline} - (now - start);
    }
};

}  // namespace resilite::detail
