#pragma once
// JSON text for the reports resilite writes (heal log, --json output): a string quoted and
// escaped; control characters as \u00XX.

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace resilite::detail {

[[nodiscard]] inline std::string json_string(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 2);
    out += '"';
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        switch (ch) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\r':
                out += "\\r";
                break;
            default:
                if (c < 0x20) {
                    out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
                } else {
                    out += ch;
                }
        }
    }
    out += '"';
    return out;
}

}  // namespace resilite::detail
