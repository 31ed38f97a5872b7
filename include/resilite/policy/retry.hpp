#pragma once
// Retry policy family: which delays separate attempts when the database is busy, how many
// attempts, and the overall deadline. The parameters seed resilite::settings::retry.

#include <resilite/retry/jitter.hpp>
#include <resilite/retry/retry_settings.hpp>
#include <resilite/policy/slot.hpp>

#include <concepts>
#include <cstdint>

namespace resilite {

// Delay before the n-th retry: min(CapMs, BaseMs * Multiplier^(n-1)), randomised by Jitter.
// The defaults were chosen with benchmarks/bench_contention (see docs/retry.md): the deadline,
// not the attempt count, is what ends the waiting; under sustained contention a writer can
// lose the lock race many times in a row and still get through well within it.
template <std::uint32_t BaseMs = 2, std::uint32_t CapMs = 100, int MaxAttempts = 1000,
          resilite::jitter Jitter = resilite::jitter::full, std::uint32_t DeadlineMs = 10'000,
          std::uint32_t Multiplier = 2>
struct exponential_backoff {
    static_assert(CapMs >= BaseMs, "resilite::exponential_backoff: CapMs must be at least BaseMs");
    static_assert(MaxAttempts >= 1,
                  "resilite::exponential_backoff: MaxAttempts counts the first attempt too; use 1 or more");
    static_assert(Multiplier >= 1, "resilite::exponential_backoff: Multiplier must be at least 1");
    static_assert(DeadlineMs > 0, "resilite::exponential_backoff: DeadlineMs must be positive");

    using slot = resilite::slot::retry;
    static constexpr retry_settings defaults{
        retry_settings::strategy::exponential, Jitter,     std::chrono::milliseconds{BaseMs},
        std::chrono::milliseconds{CapMs},      Multiplier, MaxAttempts,
        std::chrono::milliseconds{DeadlineMs}};
};

// The same delay before every retry (no jitter).
template <std::uint32_t DelayMs = 10, int MaxAttempts = 1000, std::uint32_t DeadlineMs = 10'000>
struct constant_backoff {
    static_assert(MaxAttempts >= 1,
                  "resilite::constant_backoff: MaxAttempts counts the first attempt too; use 1 or more");
    static_assert(DeadlineMs > 0, "resilite::constant_backoff: DeadlineMs must be positive");

    using slot = resilite::slot::retry;
    static constexpr retry_settings defaults{retry_settings::strategy::constant,
                                             resilite::jitter::none,
                                             std::chrono::milliseconds{DelayMs},
                                             std::chrono::milliseconds{DelayMs},
                                             1,
                                             MaxAttempts,
                                             std::chrono::milliseconds{DeadlineMs}};
};

// One attempt only: busy errors reach the caller at once (SQLite's own busy_timeout still waits).
struct no_retry {
    using slot = resilite::slot::retry;
    static constexpr retry_settings defaults{retry_settings::strategy::constant,
                                             resilite::jitter::none,
                                             std::chrono::milliseconds{0},
                                             std::chrono::milliseconds{0},
                                             1,
                                             1,
                                             std::chrono::milliseconds{10'000}};
};

template <class P>
concept retry_policy = std::same_as<typename P::slot, slot::retry> && requires {
    { P::defaults } -> std::convertible_to<retry_settings>;
};

}  // namespace resilite
