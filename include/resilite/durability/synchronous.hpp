#pragma once
// resilite::synchronous: the PRAGMA synchronous levels resilite accepts. OFF is deliberately
// absent: it loses committed transactions on power loss.

#include <string_view>

namespace resilite {

enum class synchronous : int { normal = 1, full = 2, extra = 3 };

[[nodiscard]] constexpr std::string_view to_string(synchronous s) noexcept {
    switch (s) {
        case synchronous::normal:
            return "NORMAL";
        case synchronous::full:
            return "FULL";
        case synchronous::extra:
            return "EXTRA";
    }
    return "?";
}

}  // namespace resilite
