#pragma once
// Backoff delays: the bounds every delay must respect (property P1 checks them) and a draw
// within them.

#include <resilite/retry/retry_settings.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace resilite::detail {

struct delay_bounds {
    std::chrono::nanoseconds low{0};
    std::chrono::nanoseconds high{0};
};

// min(cap, base * multiplier^(retry-1)), without overflow.
[[nodiscard]] inline std::chrono::nanoseconds exponential_ceiling(const retry_settings& s, int retry) {
    const std::chrono::nanoseconds cap = s.cap;
    std::chrono::nanoseconds t = s.base;
    for (int i = 1; i < retry && t < cap; ++i) {
        if (s.multiplier <= 1) break;
        t = (t.count() > cap.count() / static_cast<std::int64_t>(s.multiplier)) ? cap : t * s.multiplier;
    }
    return std::min(t, cap);
}

// The range the delay before the retry-th retry (1-based) may take. `previous` is the delay
// before the previous retry (the base for the first), used by decorrelated jitter.
[[nodiscard]] inline delay_bounds backoff_bounds(const retry_settings& s, int retry,
                                                 std::chrono::nanoseconds previous) {
    using std::chrono::nanoseconds;
    if (s.kind == retry_settings::strategy::constant) return {s.base, s.base};
    const nanoseconds cap = s.cap;
    const nanoseconds base = s.base;
    switch (s.jitter) {
        case jitter::none: {
            const auto t = exponential_ceiling(s, retry);
            return {t, t};
        }
        case jitter::full:
            return {nanoseconds{0}, exponential_ceiling(s, retry)};
        case jitter::equal: {
            const auto t = exponential_ceiling(s, retry);
            return {t / 2, t};
        }
        case jitter::decorrelated: {
            const auto prev = retry <= 1 ? base : std::max(previous, base);
            return {std::min(cap, base), std::min(cap, std::max(base, prev * 3))};
        }
    }
    return {base, base};
}

template <class URBG>
[[nodiscard]] std::chrono::nanoseconds draw_delay(const retry_settings& s, int retry,
                                                  std::chrono::nanoseconds previous, URBG& rng) {
    const auto b = backoff_bounds(s, retry, previous);
    if (b.low >= b.high) return b.low;
    std::uniform_int_distribution<std::int64_t> pick(b.low.count(), b.high.count());
    return std::chrono::nanoseconds{pick(rng)};
}

}  // namespace resilite::detail
