#pragma once
// resilite::schema_status: the outcome of schema sync, valued as the exit codes tools expect
// (0 ok, 1 critical, 2 warnings).

#include <string_view>

namespace resilite {

enum class schema_status { ok = 0, critical = 1, warnings = 2 };

[[nodiscard]] constexpr std::string_view to_string(schema_status s) noexcept {
    switch (s) {
        case schema_status::ok:
            return "ok";
        case schema_status::critical:
            return "critical";
        case schema_status::warnings:
            return "warnings";
    }
    return "?";
}

}  // namespace resilite
