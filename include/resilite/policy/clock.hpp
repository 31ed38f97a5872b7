#pragma once
// Clock policy family: where the library reads time and how it waits. Tests use manual_clock
// to drive schedules and backoff without sleeping.

#include <resilite/core/slot.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace resilite {

struct system_clock {
    using slot = resilite::slot::clock;
    using time_point = std::chrono::steady_clock::time_point;

    [[nodiscard]] time_point now() const noexcept { return std::chrono::steady_clock::now(); }
    [[nodiscard]] std::chrono::system_clock::time_point utc_now() const noexcept {
        return std::chrono::system_clock::now();
    }
    void sleep_for(std::chrono::nanoseconds d) const { std::this_thread::sleep_for(d); }
};

// A clock that moves only when told. Copies share one timeline, so a test keeps a copy and
// advances the one the Database uses. sleep_for() advances time at once and records the
// request. Listeners (the background scheduler) are told after every advance.
class manual_clock {
    struct state {
        std::mutex time_mutex;
        std::chrono::steady_clock::time_point now{std::chrono::hours{24}};
        std::chrono::system_clock::time_point utc{
            std::chrono::sys_days{std::chrono::year{2026} / std::chrono::November / 22}};
        std::vector<std::chrono::nanoseconds> sleeps;
        std::mutex listener_mutex;  // held while listeners run, so unsubscribing waits for them
        std::map<std::uint64_t, std::function<void()>> listeners;
        std::uint64_t next_id = 1;
    };

public:
    using slot = resilite::slot::clock;
    using time_point = std::chrono::steady_clock::time_point;

    // Unsubscribes on destruction; by then no call of the listener is running or will start.
    class subscription {
    public:
        subscription() = default;
        subscription(std::shared_ptr<state> s, std::uint64_t id) : state_(std::move(s)), id_(id) {}
        subscription(subscription&& o) noexcept : state_(std::move(o.state_)), id_(std::exchange(o.id_, 0)) {}
        subscription& operator=(subscription&& o) noexcept {
            if (this != &o) {
                reset();
                state_ = std::move(o.state_);
                id_ = std::exchange(o.id_, 0);
            }
            return *this;
        }
        ~subscription() { reset(); }
        void reset() noexcept {
            if (state_ && id_ != 0) {
                std::lock_guard lock(state_->listener_mutex);
                state_->listeners.erase(id_);
            }
            state_.reset();
            id_ = 0;
        }

    private:
        std::shared_ptr<state> state_;
        std::uint64_t id_ = 0;
    };

    [[nodiscard]] time_point now() const {
        std::lock_guard lock(state_->time_mutex);
        return state_->now;
    }
    [[nodiscard]] std::chrono::system_clock::time_point utc_now() const {
        std::lock_guard lock(state_->time_mutex);
        return state_->utc;
    }
    void sleep_for(std::chrono::nanoseconds d) const {
        {
            std::lock_guard lock(state_->time_mutex);
            state_->sleeps.push_back(d);
        }
        advance(d);
    }
    void advance(std::chrono::nanoseconds d) const {
        {
            std::lock_guard lock(state_->time_mutex);
            state_->now += std::chrono::duration_cast<std::chrono::steady_clock::duration>(d);
            state_->utc += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
        }
        std::lock_guard lock(state_->listener_mutex);
        for (auto& [id, f] : state_->listeners)
            f();
    }
    [[nodiscard]] std::vector<std::chrono::nanoseconds> sleeps() const {
        std::lock_guard lock(state_->time_mutex);
        return state_->sleeps;
    }
    [[nodiscard]] subscription subscribe(std::function<void()> on_advance) const {
        std::lock_guard lock(state_->listener_mutex);
        const auto id = state_->next_id++;
        state_->listeners.emplace(id, std::move(on_advance));
        return subscription{state_, id};
    }

private:
    std::shared_ptr<state> state_ = std::make_shared<state>();
};

template <class P>
concept clock_policy = std::same_as<typename P::slot, slot::clock> &&
    requires(const P& c, std::chrono::nanoseconds d) {
    { c.now() } -> std::same_as<std::chrono::steady_clock::time_point>;
    { c.utc_now() } -> std::same_as<std::chrono::system_clock::time_point>;
    c.sleep_for(d);
};

// A clock that announces its advances (manual_clock) lets the scheduler wait for them instead
// of for a real deadline.
template <class P>
concept advancing_clock = clock_policy<P> && requires(const P& c) {
    {c.subscribe(std::function<void()>{})};
};


namespace detail {
template <class P>
constexpr bool checked_clock_policy() {
    static_assert(clock_policy<P>,
                  "resilite::Database<...>: the clock policy needs now() -> steady_clock "
                  "time_point, utc_now() -> system_clock time_point and sleep_for(nanoseconds)");
    return true;
}
}  // namespace detail

}  // namespace resilite
