#pragma once
// Whether a read connection may run a statement (flow/detail/read_pool.hpp).

#include <cstddef>
#include <string_view>

namespace resilite::sqlite::detail {

// A statement that a read connection may run: it begins with SELECT, WITH or VALUES (after
// blanks and comments). Anything else (a PRAGMA above all: its answer is per connection) runs on
// the writer connection; so does a statement the read connection refuses (flow/detail/read_pool.hpp).
[[nodiscard]] constexpr bool reads_only(std::string_view sql) noexcept {
    std::size_t i = 0;
    for (;;) {
        while (i < sql.size() && (sql[i] == ' ' || sql[i] == '\t' || sql[i] == '\n' || sql[i] == '\r')) ++i;
        if (sql.substr(i, 2) == "--") {
            i = sql.find('\n', i);
            if (i == std::string_view::npos) return false;
        } else if (sql.substr(i, 2) == "/*") {
            i = sql.find("*/", i + 2);
            if (i == std::string_view::npos) return false;
            i += 2;
        } else {
            break;
        }
    }
    const auto starts = [&](std::string_view word) {
        if (sql.size() - i < word.size()) return false;
        for (std::size_t k = 0; k < word.size(); ++k)
            if ((sql[i + k] | 0x20) != word[k]) return false;
        const std::size_t end = i + word.size();
        return end == sql.size() || !((sql[end] | 0x20) >= 'a' && (sql[end] | 0x20) <= 'z');
    };
    return starts("select") || starts("with") || starts("values");
}

}  // namespace resilite::sqlite::detail
