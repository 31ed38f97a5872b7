#pragma once
// resilite::retry_settings: the run-time form of a retry policy (seeded from it, changeable with
// Database::reconfigure).

#include <resilite/detail/format.hpp>
#include <resilite/retry/jitter.hpp>

#include <fmt/format.h>

#include <chrono>
#include <optional>
#include <string>

namespace resilite {

struct retry_settings {
    enum class strategy { exponential, constant };

    strategy kind = strategy::exponential;
    resilite::jitter jitter = resilite::jitter::full;
    std::chrono::milliseconds base{2};           // first delay (constant: every delay)
    std::chrono::milliseconds cap{100};          // no delay is longer
    unsigned multiplier = 2;                     // exponential growth per retry
    int max_attempts = 1000;                     // attempts in all, the first included
    std::chrono::milliseconds deadline{10'000};  // for all attempts and delays together

    friend bool operator==(const retry_settings&, const retry_settings&) = default;

    static constexpr std::chrono::hours longest{24 * 365};  // as the settings file allows (settings.md)

    [[nodiscard]] std::optional<std::string> problem() const {
        if (base < std::chrono::milliseconds{0})
            return resilite::detail::format("retry base must not be negative");
        if (cap < base) {
            return resilite::detail::format("retry cap ({} ms) must be at least the base ({} ms)",
                                            cap.count(), base.count());
        }
        if (multiplier < 1) return std::string{"retry multiplier must be at least 1"};
        if (max_attempts < 1)
            return resilite::detail::format("retry max_attempts must be at least 1 (got {})", max_attempts);
        if (deadline <= std::chrono::milliseconds{0}) return std::string{"retry deadline must be positive"};
        // (in nanoseconds after a steady_clock time, as the retry loop counts, a longer one overflows)
        if (deadline > longest || cap > longest)
            return resilite::detail::format("retry deadline and cap must be at most {} days (got {} ms and {} ms)",
                                            longest.count() / 24, deadline.count(), cap.count());
        return std::nullopt;
    }
};

}  // namespace resilite
