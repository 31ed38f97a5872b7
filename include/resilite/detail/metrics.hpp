#pragma once
// Counters behind Database::health(): operations, failures by class, latency samples.

#include <resilite/error_class.hpp>
#include <resilite/event.hpp>
#include <resilite/health_snapshot.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <vector>

namespace resilite::detail {

class metrics {
public:
    static constexpr std::size_t window = 4096;

    void record(outcome o, error_class klass, std::chrono::nanoseconds duration) noexcept {
        std::lock_guard lock(mutex_);
        ++operations_;
        if (o == outcome::failed) {
            ++failures_;
            ++by_class_[static_cast<std::size_t>(klass)];
        }
        if (samples_.size() < window) {
            samples_.push_back(duration.count());
        } else {
            samples_[next_] = duration.count();
        }
        next_ = (next_ + 1) % window;
        ++total_samples_;
    }

    void fill(health_snapshot& s) const {
        std::vector<std::int64_t> sorted;
        {
            std::lock_guard lock(mutex_);
            s.operations = operations_;
            s.failures = failures_;
            s.failures_by_class = by_class_;
            s.latency_samples = total_samples_;
            sorted = samples_;
        }
        std::sort(sorted.begin(), sorted.end());
        const auto at = [&](double q) {
            if (sorted.empty()) return std::chrono::nanoseconds{0};
            const auto i = static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1) + 0.5);
            return std::chrono::nanoseconds{sorted[i]};
        };
        s.p50 = at(0.50);
        s.p95 = at(0.95);
        s.p99 = at(0.99);
    }

private:
    mutable std::mutex mutex_;
    std::uint64_t operations_ = 0;
    std::uint64_t failures_ = 0;
    std::array<std::uint64_t, error_class_count> by_class_{};
    std::vector<std::int64_t> samples_;
    std::size_t next_ = 0;
    std::uint64_t total_samples_ = 0;
};

}  // namespace resilite::detail
