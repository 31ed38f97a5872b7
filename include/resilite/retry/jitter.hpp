#pragma once
// resilite::jitter: how a backoff delay is randomised so that waiting writers do not retry in
// lock step. With t = min(cap, base * multiplier^(n-1)) for the n-th retry:
//   none          t
//   full          U(0, t)
//   equal         t/2 + U(0, t/2)
//   decorrelated  min(cap, U(base, 3 * previous delay))

#include <string_view>

namespace resilite {

enum class jitter { none, full, equal, decorrelated };

[[nodiscard]] constexpr std::string_view to_string(jitter j) noexcept {
    switch (j) {
        case jitter::none:
            return "none";
        case jitter::full:
            return "full";
        case jitter::equal:
            return "equal";
        case jitter::decorrelated:
            return "decorrelated";
    }
    return "?";
}

}  // namespace resilite
