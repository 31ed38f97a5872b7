#pragma once
// resilite::schema_mode: what schema sync at open does with what it finds.

#include <string_view>

namespace resilite {

enum class schema_mode {
    add_missing,  // add what is missing; warnings are reported, critical drift fails open (default)
    strict,       // any drift, warnings included, fails open and nothing is changed
    report_only,  // simulate: report what would be done, change nothing, never fail
};

[[nodiscard]] constexpr std::string_view to_string(schema_mode m) noexcept {
    switch (m) {
        case schema_mode::add_missing:
            return "add-missing";
        case schema_mode::strict:
            return "strict";
        case schema_mode::report_only:
            return "report-only";
    }
    return "?";
}

}  // namespace resilite
