#pragma once
// Observer policy family: where events go. Observers must not throw; if one does, the
// exception is swallowed so that observing never changes what an operation does.

#include <resilite/core/slot.hpp>
#include <resilite/monitor/event.hpp>

#include <fmt/format.h>

#include <chrono>
#include <concepts>
#include <cstdio>
#include <functional>
#include <utility>

namespace resilite {

// Default: prints events at or above MinLevel to stderr through fmt (failures and warnings
// by default, so successful operations cost no I/O). One line per operation: a busy database
// retried a thousand times must not flood stderr, so "retry" events are printed only at level
// ok; otherwise the operation's own line carries the attempt count, and an operation that
// succeeded only after retries counts as a warning (printed once, "exec ok (..., 3 attempts").
template <outcome MinLevel = outcome::warning>
struct stderr_observer {
    using slot = resilite::slot::observer;
    static constexpr bool enabled = true;

    // (The filter inline, the printing not: a successful operation's event is dropped without a
    // call, its fields often without being built.)
    void on_event(const event& e) const noexcept {
        const auto level = e.result == outcome::ok && e.attempts > 1 ? outcome::warning : e.result;
        if (static_cast<int>(level) < static_cast<int>(MinLevel)) return;
        if constexpr (MinLevel != outcome::ok) {
            if (e.name == "retry") return;
        }
        print(e);
    }

private:
    [[gnu::noinline]] static void print(const event& e) noexcept {
        try {
            fmt::print(stderr, "resilite: {} {} ({} rows, {} attempt{}, {:.3f} ms){}{}\n", e.name,
                       to_string(e.result), e.rows, e.attempts, e.attempts == 1 ? "" : "s",
                       std::chrono::duration<double, std::milli>(e.duration).count(),
                       e.detail.empty() ? "" : ": ", e.detail);
        } catch (...) {  // stderr unavailable: nothing sensible left to do
        }
    }
};

// Hands every event to a function set at run time (for metrics, logging frameworks, tests).
struct callback_observer {
    using slot = resilite::slot::observer;
    static constexpr bool enabled = true;

    callback_observer() = default;
    explicit callback_observer(std::function<void(const event&)> f) : callback(std::move(f)) {}

    void on_event(const event& e) const {
        if (callback) callback(e);
    }

    std::function<void(const event&)> callback;
};

// Discards everything; Database skips even the timing when this is chosen.
struct null_observer {
    using slot = resilite::slot::observer;
    static constexpr bool enabled = false;
    void on_event(const event&) const noexcept {}
};

template <class P>
concept observer_policy = std::same_as<typename P::slot, slot::observer> &&
    requires(const P& p, const event& e) {
    p.on_event(e);
    { P::enabled } -> std::convertible_to<bool>;
};


namespace detail {
template <class P>
constexpr bool checked_observer_policy() {
    static_assert(observer_policy<P>,
                  "resilite::Database<...>: the observer policy needs `void on_event(const "
                  "resilite::event&) const` and `static constexpr bool enabled`");
    return true;
}
}  // namespace detail

}  // namespace resilite
