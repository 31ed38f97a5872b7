#pragma once
// resilite::check_level: how deep a health check looks. Each level includes the ones before.

#include <string_view>

namespace resilite {

enum class check_level {
    header,  // file size, the 100-byte header, the WAL's frame checksums (no SQL, fast)
    quick,   // + PRAGMA quick_check: b-tree structure, page references, record formats
    full,    // + PRAGMA integrity_check: also every index against its table
};

[[nodiscard]] constexpr std::string_view to_string(check_level l) noexcept {
    switch (l) {
        case check_level::header:
            return "header";
        case check_level::quick:
            return "quick";
        case check_level::full:
            return "full";
    }
    return "?";
}

}  // namespace resilite
