#pragma once
// Retry policy family: which delays separate attempts when the database is busy, how many
// attempts, and the overall deadline. The parameters seed resilite::settings::retry.

#include <resilite/core/slot.hpp>
#include <resilite/retry/detail/backoff.hpp>
#include <resilite/retry/jitter.hpp>
#include <resilite/retry/retry_scope.hpp>
#include <resilite/retry/retry_settings.hpp>

#include <chrono>
#include <concepts>
#include <cstdint>
#include <random>

namespace resilite {

// The behaviour every retry policy below has: which failures are retried, and how the delay
// before a retry is drawn from the settings in force. A policy of your own derives from one of
// them and replaces either hook (examples/custom_retry.cpp); both are found with `requires`,
// so a policy that declares only `defaults` gets these.
struct default_retry_hooks {
    // Which failures a retry can cure, and what is redone for it.
    [[nodiscard]] static retry_scope scope_of(const error& e) noexcept { return default_retry_scope(e); }
    // The delay before the retry-th retry (1-based); `previous` is the delay drawn before the
    // last one. The library caps it at the operation's remaining deadline.
    [[nodiscard]] static std::chrono::nanoseconds delay(const retry_settings& s, int retry,
                                                        std::chrono::nanoseconds previous, std::mt19937_64& rng) {
        return detail::draw_delay(s, retry, previous, rng);
    }
};

// Delay before the n-th retry: min(CapMs, BaseMs * Multiplier^(n-1)), randomised by Jitter.
// The defaults were chosen with benchmarks/bench_contention (see docs/retry.md): the deadline,
// not the attempt count, is what ends the waiting; under sustained contention a writer can
// lose the lock race many times in a row and still get through well within it.
template <std::uint32_t BaseMs = 2, std::uint32_t CapMs = 100, int MaxAttempts = 1000,
          resilite::jitter Jitter = resilite::jitter::full, std::uint32_t DeadlineMs = 10'000,
          std::uint32_t Multiplier = 2>
struct exponential_backoff : default_retry_hooks {
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
struct constant_backoff : default_retry_hooks {
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
struct no_retry : default_retry_hooks {
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

namespace detail {
template <class P>
constexpr bool checked_retry_policy() {
    static_assert(retry_policy<P>,
                  "resilite::Database<...>: the retry policy needs `static constexpr "
                  "resilite::retry_settings defaults`; use resilite::exponential_backoff<> or "
                  "resilite::constant_backoff<>");
    return true;
}

// The policy's hooks where it has them, the library's where it does not. A hook that is there
// under the name but with another signature is an error, never silently ignored.
template <class P>
[[nodiscard]] retry_scope retry_scope_for(const error& e) {
    if constexpr (requires { { P::scope_of(e) } -> std::convertible_to<retry_scope>; }) {
        return P::scope_of(e);
    } else {
        static_assert(!requires { &P::scope_of; },
                      "resilite: the retry policy's scope_of must be `static resilite::retry_scope "
                      "scope_of(const resilite::error&)`");
        return default_retry_scope(e);
    }
}
template <class P>
[[nodiscard]] std::chrono::nanoseconds retry_delay_for(const retry_settings& s, int retry,
                                                       std::chrono::nanoseconds previous, std::mt19937_64& rng) {
    if constexpr (requires {
                      { P::delay(s, retry, previous, rng) } -> std::convertible_to<std::chrono::nanoseconds>;
                  }) {
        return P::delay(s, retry, previous, rng);
    } else {
        static_assert(!requires { &P::delay; },
                      "resilite: the retry policy's delay must be `static std::chrono::nanoseconds "
                      "delay(const resilite::retry_settings&, int retry, std::chrono::nanoseconds previous, "
                      "std::mt19937_64&)`");
        return draw_delay(s, retry, previous, rng);
    }
}
}  // namespace detail

}  // namespace resilite
