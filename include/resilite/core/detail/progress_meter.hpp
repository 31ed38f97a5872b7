#pragma once
// Calls a progress_fn at a step's start, at each whole percent, and at its end (or every
// `stride` units when the total is unknown), so that a caller is told often enough for a bar and
// rarely enough to cost nothing next to the work.

#include <resilite/core/progress.hpp>

#include <algorithm>
#include <cstdint>
#include <string_view>

namespace resilite::detail {

class progress_meter {
public:
    progress_meter(const progress_fn* fn, std::string_view operation, std::string_view step, std::string_view unit,
                   std::uint64_t total, std::uint64_t stride = 1000) noexcept
        : fn_(fn != nullptr && *fn ? fn : nullptr), p_{operation, step, 0, total, unit}, stride_(stride == 0 ? 1 : stride) {
        if (fn_ != nullptr) tell();
    }
    progress_meter(const progress_meter&) = delete;
    progress_meter& operator=(const progress_meter&) = delete;

    [[nodiscard]] bool active() const noexcept { return fn_ != nullptr; }
    void advance(std::uint64_t n = 1) noexcept { set(p_.done + n); }
    void set(std::uint64_t done) noexcept {
        if (fn_ == nullptr) return;
        p_.done = done;
        if (p_.total == 0 ? done / stride_ != last_ / stride_ : done * 100 / p_.total != last_ * 100 / p_.total)
            tell();
        last_ = done;
    }
    // The end of the step: done == total (or the count reached, when it was unknown).
    void finish() noexcept {
        if (fn_ == nullptr || finished_) return;
        finished_ = true;
        if (p_.total == 0) p_.total = std::max<std::uint64_t>(p_.done, 1);  // known now; the end is never 0 of 0
        p_.done = p_.total;
        tell();
    }

private:
    void tell() noexcept {
        try {
            (*fn_)(p_);
        } catch (...) {  // a display's failure never fails the work
        }
    }

    const progress_fn* fn_;
    progress p_;
    std::uint64_t stride_;
    std::uint64_t last_ = 0;
    bool finished_ = false;
};

}  // namespace resilite::detail
