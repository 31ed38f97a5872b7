#pragma once
// Contenders measured in turns (A B C, A B C, ...) rather than one after another: on a shared,
// noisy machine a slow minute then falls on every contender alike. Each round's times are kept;
// a ratio is the median of the per-round ratios (both measured in the same round), printed with
// its range over the rounds.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {

inline double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const auto n = v.size();
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

inline double seconds_of(const std::function<void()>& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct contender {
    std::string name;
    std::function<double()> round;  // one round's work; returns the seconds it measured
    std::vector<double> times{};
};

class interleaved {
public:
    explicit interleaved(std::vector<contender> cs) : cs_(std::move(cs)) {}

    // `rounds` turns of every contender; a first, unmeasured turn warms caches and files.
    void run(int rounds, bool warm_up = true) {
        if (warm_up) {
            for (auto& c : cs_)
                static_cast<void>(c.round());
        }
        for (int r = 0; r < rounds; ++r) {
            for (auto& c : cs_)
                c.times.push_back(c.round());
        }
    }

    [[nodiscard]] const contender& at(const std::string& name) const {
        for (const auto& c : cs_)
            if (c.name == name) return c;
        throw std::out_of_range(name);
    }
    [[nodiscard]] double median_of(const std::string& name) const { return median(at(name).times); }

    // "1.23 x raw (1.10-1.40)": the median of a/b (their times) over the rounds, and its range.
    [[nodiscard]] std::string ratio(const std::string& a, const std::string& b) const {
        const auto& x = at(a).times;
        const auto& y = at(b).times;
        std::vector<double> r;
        for (std::size_t i = 0; i < x.size() && i < y.size(); ++i)
            if (y[i] > 0) r.push_back(x[i] / y[i]);
        if (r.empty()) return "n/a";
        const auto [lo, hi] = std::minmax_element(r.begin(), r.end());
        return fmt::format("{:.2f} x {} ({:.2f}-{:.2f})", median(r), b, *lo, *hi);
    }

    [[nodiscard]] int rounds() const { return cs_.empty() ? 0 : static_cast<int>(cs_.front().times.size()); }

private:
    std::vector<contender> cs_;
};

}  // namespace bench
