#pragma once
// Whether the database can be used now, and if not why and since when (degradation modes,
// docs/degradation.md). Read by every call without the writer lock (one atomic load when the
// database is available); changed where the cause is seen: a heal starting and ending, damage
// seen and healed, a heal of another process met at the gate, disk full, a read-only volume,
// I/O errors past the retry policy. Owned by the context; emits nothing itself (the context
// reports `degraded` and `recovered`).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace resilite::detail {

enum class unavailable_reason : std::uint8_t {
    none,               // available
    healing,            // a heal runs in this process
    healing_elsewhere,  // another process holds the gate to heal
    damaged,            // damage seen and not healed (healing off, a heal failed, or circuit breaker open)
    disk_full,          // SQLITE_FULL
    read_only_volume,   // SQLITE_READONLY on a database opened for writing
    io_error,           // I/O errors that outlasted the retry policy
};

[[nodiscard]] constexpr std::string_view to_string(unavailable_reason r) noexcept {
    switch (r) {
        case unavailable_reason::none:
            return "available";
        case unavailable_reason::healing:
            return "healing";
        case unavailable_reason::healing_elsewhere:
            return "healing_elsewhere";
        case unavailable_reason::damaged:
            return "damaged";
        case unavailable_reason::disk_full:
            return "disk_full";
        case unavailable_reason::read_only_volume:
            return "read_only_volume";
        case unavailable_reason::io_error:
            return "io_error";
    }
    return "unknown";
}

// A reason the file itself is in doubt (reads refused too) rather than only writes failing.
[[nodiscard]] constexpr bool file_in_doubt(unavailable_reason r) noexcept {
    return r == unavailable_reason::healing || r == unavailable_reason::healing_elsewhere ||
           r == unavailable_reason::damaged;
}

// Reasons that end only when a probe succeeds (the others end with a heal, or at the gate).
[[nodiscard]] constexpr bool needs_probe(unavailable_reason r) noexcept {
    return r == unavailable_reason::disk_full || r == unavailable_reason::read_only_volume ||
           r == unavailable_reason::io_error;
}

class availability {
public:
    using time_point = std::chrono::steady_clock::time_point;

    struct state {
        unavailable_reason reason = unavailable_reason::none;
        std::string detail;
        std::optional<std::chrono::system_clock::time_point> since;  // UTC
        time_point since_steady{};
    };

    [[nodiscard]] bool available() const noexcept { return reason_.load(std::memory_order_acquire) == 0; }
    [[nodiscard]] unavailable_reason reason() const noexcept {
        return static_cast<unavailable_reason>(reason_.load(std::memory_order_acquire));
    }

    [[nodiscard]] state snapshot() const {
        std::lock_guard lock(mutex_);
        return state_;
    }

    // Unavailable from now for `why`; returns true when this changed the state (the caller
    // reports it). A heal in progress is not replaced by a lesser reason seen meanwhile.
    bool enter(unavailable_reason why, std::string_view detail, time_point now, std::chrono::system_clock::time_point utc,
               std::chrono::nanoseconds first_probe) {
        std::lock_guard lock(mutex_);
        if (state_.reason == why) return false;
        if (state_.reason == unavailable_reason::healing && why != unavailable_reason::damaged) return false;
        const bool was_available = state_.reason == unavailable_reason::none;
        state_.reason = why;
        state_.detail = std::string{detail};
        if (was_available) {
            state_.since = utc;
            state_.since_steady = now;
        }
        backoff_ = first_probe;
        next_probe_ = now + first_probe;
        reason_.store(static_cast<std::uint8_t>(why), std::memory_order_release);
        return true;
    }

    // Available again when the reason is one of `ended` (a heal ending does not end disk full);
    // returns what ended, with how long it lasted, for the caller's report.
    template <class... Reasons>
    std::optional<state> leave(time_point, Reasons... ended) {
        std::lock_guard lock(mutex_);
        if (state_.reason == unavailable_reason::none || ((state_.reason != ended) && ...)) return std::nullopt;
        auto was = state_;
        state_ = {};
        reason_.store(0, std::memory_order_release);
        return was;
    }

    // A probe is due (and claimed by the caller) when the backoff has passed; one at a time.
    [[nodiscard]] bool claim_probe(time_point now) {
        std::lock_guard lock(mutex_);
        if (!needs_probe(state_.reason) || probing_ || now < next_probe_) return false;
        probing_ = true;
        return true;
    }
    // The probe failed: the next one after twice the delay (at most `max`).
    void probe_failed(time_point now, std::chrono::nanoseconds max) {
        std::lock_guard lock(mutex_);
        probing_ = false;
        backoff_ = std::min(backoff_ * 2, max);
        next_probe_ = now + backoff_;
    }
    // When the background thread should probe (nothing when no probe is wanted).
    [[nodiscard]] std::optional<time_point> next_probe() const {
        std::lock_guard lock(mutex_);
        if (!needs_probe(state_.reason)) return std::nullopt;
        return next_probe_;
    }
    void probe_ended() {
        std::lock_guard lock(mutex_);
        probing_ = false;
    }

    // One heal at a time in this process: the thread that claims it heals, the others see
    // `healing` and do not wait for the writer lock the heal holds.
    [[nodiscard]] bool claim_heal() noexcept { return !heal_claimed_.exchange(true, std::memory_order_acq_rel); }
    void release_heal() noexcept { heal_claimed_.store(false, std::memory_order_release); }
    [[nodiscard]] bool heal_claimed() const noexcept { return heal_claimed_.load(std::memory_order_acquire); }

private:
    std::atomic<std::uint8_t> reason_{0};
    std::atomic<bool> heal_claimed_{false};
    mutable std::mutex mutex_;
    state state_;
    time_point next_probe_{};
    std::chrono::nanoseconds backoff_{0};
    bool probing_ = false;
};

// Lets go of a heal claimed with availability::claim_heal() when the scope ends.
struct heal_claim {
    explicit heal_claim(availability& a) noexcept : avail(a) {}
    availability& avail;
    heal_claim(const heal_claim&) = delete;
    heal_claim& operator=(const heal_claim&) = delete;
    ~heal_claim() { avail.release_heal(); }
};

}  // namespace resilite::detail
