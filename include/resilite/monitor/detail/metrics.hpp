#pragma once
// Counters behind Database::health(): operations, failures by class, latency samples.

#include <resilite/core/error_class.hpp>
#include <resilite/monitor/event.hpp>
#include <resilite/monitor/health_snapshot.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <atomic>
#include <vector>

namespace resilite::detail {

// Lock-free: every operation records here, so it must cost next to nothing.
class metrics {
public:
    static constexpr std::size_t window = 4096;

    void record(outcome o, error_class klass, std::chrono::nanoseconds duration) noexcept {
        operations_.fetch_add(1, std::memory_order_relaxed);
        if (o == outcome::failed) {
            failures_.fetch_add(1, std::memory_order_relaxed);
            by_class_[static_cast<std::size_t>(klass)].fetch_add(1, std::memory_order_relaxed);
        }
        const auto n = samples_taken_.fetch_add(1, std::memory_order_relaxed);
        samples_[n % window].store(duration.count(), std::memory_order_relaxed);
        // The histogram counts every operation, not a window: Prometheus takes rates of it.
        std::size_t b = 0;
        while (b < latency_bounds.size() && duration > latency_bounds[b])
            ++b;
        buckets_[b].fetch_add(1, std::memory_order_relaxed);
        sum_ns_.fetch_add(duration.count(), std::memory_order_relaxed);
    }

    void fill(health_snapshot& s) const {
        s.operations = operations_.load(std::memory_order_relaxed);
        s.failures = failures_.load(std::memory_order_relaxed);
        for (std::size_t i = 0; i < by_class_.size(); ++i) {
            s.failures_by_class[i] = by_class_[i].load(std::memory_order_relaxed);
        }
        s.latency_samples = samples_taken_.load(std::memory_order_relaxed);
        for (std::size_t i = 0; i < buckets_.size(); ++i)
            s.latency_buckets[i] = buckets_[i].load(std::memory_order_relaxed);
        s.latency_sum = std::chrono::nanoseconds{sum_ns_.load(std::memory_order_relaxed)};
        std::vector<std::int64_t> sorted;
        const auto n = std::min<std::uint64_t>(s.latency_samples, window);
        sorted.reserve(static_cast<std::size_t>(n));
        for (std::size_t i = 0; i < n; ++i)
            sorted.push_back(samples_[i].load(std::memory_order_relaxed));
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
    std::atomic<std::uint64_t> operations_{0};
    std::atomic<std::uint64_t> failures_{0};
    std::array<std::atomic<std::uint64_t>, error_class_count> by_class_{};
    std::atomic<std::uint64_t> samples_taken_{0};
    std::array<std::atomic<std::int64_t>, window> samples_{};
    std::array<std::atomic<std::uint64_t>, latency_bounds.size() + 1> buckets_{};
    std::atomic<std::int64_t> sum_ns_{0};
};

}  // namespace resilite::detail
