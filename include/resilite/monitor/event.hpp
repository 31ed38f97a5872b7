#pragma once
// resilite::event: the one structured record every operation emits to the observer (P17).

#include <resilite/core/error_class.hpp>

#include <chrono>
#include <cstdint>
#include <string_view>

namespace resilite {

enum class outcome : std::uint8_t { ok, warning, failed };

[[nodiscard]] constexpr std::string_view to_string(outcome o) noexcept {
    switch (o) {
        case outcome::ok:
            return "ok";
        case outcome::warning:
            return "warning";
        case outcome::failed:
            return "failed";
    }
    return "?";
}

// Views inside an event are valid only during the observer call: copy what you keep.
struct event {
    std::string_view name;  // "open", "exec", "query", "transaction", ...
    outcome result = outcome::ok;
    std::chrono::nanoseconds duration{0};  // 0 when the observer policy needs no timing
    std::int64_t rows = 0;                 // rows changed (writes) or returned (reads)
    int attempts = 1;
    error_class error = error_class::none;  // for failures
    std::string_view detail;                // technical detail: what() of the error, or a note
};

}  // namespace resilite
