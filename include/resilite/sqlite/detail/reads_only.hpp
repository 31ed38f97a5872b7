#pragma once
// Whether a read connection may run a statement (flow/detail/read_pool.hpp).

#include <cstddef>
#include <string_view>

namespace resilite::detail {

// True when `sql` names, in any case, something whose answer belongs to a connection: the
// functions last_insert_rowid, changes and total_changes, the pragma_* table functions, the
// temp schema. (A false alarm only sends a read to the writer connection.)
[[nodiscard]] constexpr bool names_connection_state(std::string_view sql) noexcept {
    constexpr std::string_view words[] = {"last_insert_rowid", "changes", "pragma_", "sqlite_temp",
                                          "temp.", "temp\".", "temp`.", "temp]."};
    for (std::size_t i = 0; i < sql.size(); ++i) {
        for (const auto w : words) {
            if (sql.size() - i < w.size()) continue;
            bool same = true;
            for (std::size_t k = 0; k < w.size() && same; ++k) {
                const char c = sql[i + k];
                same = (c >= 'A' && c <= 'Z' ? static_cast<char>(c | 0x20) : c) == w[k];
            }
            if (same) return true;
        }
    }
    return false;
}

// Whether `sql` begins, after blanks and comments, with `word` (lower case) in any case.
[[nodiscard]] constexpr bool begins_with_word(std::string_view sql, std::string_view word) noexcept {
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
    if (sql.size() - i < word.size()) return false;
    for (std::size_t k = 0; k < word.size(); ++k)
        if ((sql[i + k] | 0x20) != word[k]) return false;
    const std::size_t end = i + word.size();
    return end == sql.size() || !((sql[end] | 0x20) >= 'a' && (sql[end] | 0x20) <= 'z');
}

// A statement that a read connection may run: it begins with SELECT, WITH or VALUES (after
// blanks and comments) and names nothing whose answer belongs to a connection. Anything else (a
// PRAGMA above all: its answer is per connection) runs on the writer connection; so does a
// statement the read connection refuses (flow/detail/read_pool.hpp).
[[nodiscard]] constexpr bool reads_only(std::string_view sql) noexcept {
    return (begins_with_word(sql, "select") || begins_with_word(sql, "with") || begins_with_word(sql, "values")) &&
           !names_connection_state(sql);
}

// A PRAGMA or a VACUUM changes no row, and inside a transaction SQLite ignores some pragmas
// (foreign_keys) without an error and refuses VACUUM: such a statement runs as it is given, never
// inside the transaction an archive writes its record ahead in.
[[nodiscard]] constexpr bool runs_as_given(std::string_view sql) noexcept {
    return begins_with_word(sql, "pragma") || begins_with_word(sql, "vacuum");
}

}  // namespace resilite::detail
