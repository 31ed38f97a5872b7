#pragma once
// JSON text for the reports resilite writes (heal log, --json output): a string quoted and
// escaped; control characters as \u00XX.

#include <resilite/detail/format.hpp>

#include <fmt/format.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace resilite::detail {

// The length of the well-formed UTF-8 sequence at s[i] (1 to 4), or 0 when none begins there: no
// overlong form, no surrogate, nothing past U+10FFFF.
[[nodiscard]] inline std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k)
        if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return 0;
    if (n > 1) {
        const auto c1 = static_cast<unsigned char>(s[i + 1]);
        if ((n == 2 && c < 0xc2) || (n == 3 && c == 0xe0 && c1 < 0xa0) || (n == 3 && c == 0xed && c1 >= 0xa0) ||
            (n == 4 && c == 0xf0 && c1 < 0x90) || (n == 4 && (c > 0xf4 || (c == 0xf4 && c1 >= 0x90))))
            return 0;
    }
    return n;
}

// Whether the text is well-formed UTF-8 (JSON text must be).
[[nodiscard]] inline bool is_utf8(std::string_view s) noexcept {
    for (std::size_t i = 0; i < s.size();) {
        const auto n = utf8_sequence_length(s, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

// The text as valid UTF-8: every byte that does not begin a well-formed sequence becomes U+FFFD.
// JSON and OpenMetrics must be UTF-8, and a path or a message can hold any bytes (a directory
// named in Latin-1, SQLite's text of a damaged page).
[[nodiscard]] inline std::string as_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        if (const auto n = utf8_sequence_length(s, i); n != 0) {
            out.append(s.substr(i, n));
            i += n;
        } else {
            out += "\xEF\xBF\xBD";
            ++i;
        }
    }
    return out;
}

[[nodiscard]] inline std::string json_string(std::string_view raw) {
    const auto s = as_utf8(raw);
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
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            case '\r':
                out += "\\r";
                break;
            default:
                if (c < 0x20) {
                    out += resilite::detail::format("\\u{:04x}", static_cast<unsigned>(c));
                } else {
                    out += ch;
                }
        }
    }
    out += '"';
    return out;
}

}  // namespace resilite::detail
