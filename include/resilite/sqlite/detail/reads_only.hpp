#pragma once
// Whether a read connection may run a statement (flow/detail/read_pool.hpp).

#include <cstddef>
#include <string_view>

namespace resilite::detail {

// Whether `sql` holds `word` (lower case) anywhere, in any case (a script that may hold a PRAGMA).
[[nodiscard]] constexpr bool names_word(std::string_view sql, std::string_view word) noexcept {
    for (std::size_t i = 0; i + word.size() <= sql.size(); ++i) {
        bool same = true;
        for (std::size_t k = 0; k < word.size() && same; ++k) {
            const char c = sql[i + k];
            same = (c >= 'A' && c <= 'Z' ? static_cast<char>(c | 0x20) : c) == word[k];
        }
        if (same) return true;
    }
    return false;
}

// True when `sql` names, in any case, something whose answer belongs to a connection: the
// functions last_insert_rowid, changes and total_changes, the pragma_* table functions, the
// temp schema. (A false alarm only sends a read to the writer connection.)
[[nodiscard]] constexpr bool names_connection_state(std::string_view sql) noexcept {
    for (const std::string_view w : {"last_insert_rowid", "changes", "pragma_", "sqlite_temp", "temp.", "temp\".",
                                     "temp`.", "temp]."})
        if (names_word(sql, w)) return true;
    return false;
}

// Where the first word of `sql` starts, after blanks and comments (sql.size() if none).
[[nodiscard]] constexpr std::size_t first_word_at(std::string_view sql) noexcept {
    std::size_t i = 0;
    for (;;) {
        while (i < sql.size() && (sql[i] == ' ' || sql[i] == '\t' || sql[i] == '\n' || sql[i] == '\r')) ++i;
        if (sql.substr(i, 2) == "--") {
            i = sql.find('\n', i);
            if (i == std::string_view::npos) return sql.size();
        } else if (sql.substr(i, 2) == "/*") {
            i = sql.find("*/", i + 2);
            if (i == std::string_view::npos) return sql.size();
            i += 2;
        } else {
            return i;
        }
    }
}

// Whether `sql` holds `word` (lower case) at `i`, in any case, as a whole word.
[[nodiscard]] constexpr bool word_at(std::string_view sql, std::size_t i, std::string_view word) noexcept {
    if (i > sql.size() || sql.size() - i < word.size()) return false;
    for (std::size_t k = 0; k < word.size(); ++k) {
        const char c = sql[i + k];
        if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c | 0x20) : c) != word[k]) return false;
    }
    const std::size_t end = i + word.size();
    if (end == sql.size()) return true;
    const char next = static_cast<char>(sql[end] | 0x20);
    return !(next >= 'a' && next <= 'z') && sql[end] != '_';
}

// Whether `sql` begins, after blanks and comments, with `word` (lower case) in any case.
[[nodiscard]] constexpr bool begins_with_word(std::string_view sql, std::string_view word) noexcept {
    return word_at(sql, first_word_at(sql), word);
}

// Whether `sql` begins with PRAGMA (after blanks and comments). Asked of every statement run
// through exec and query: a first letter other than P settles the common case inline.
[[nodiscard]] constexpr bool begins_with_pragma(std::string_view sql) noexcept {
    if (!sql.empty()) {
        const char c = static_cast<char>(sql[0] | 0x20);
        if (c >= 'a' && c <= 'z' && c != 'p') return false;
    }
    return begins_with_word(sql, "pragma");
}

// A statement that a read connection may run: it begins with SELECT, WITH or VALUES (after
// blanks and comments) and names nothing whose answer belongs to a connection. Anything else (a
// PRAGMA above all: its answer is per connection) runs on the writer connection; so does a
// statement the read connection refuses (flow/detail/read_pool.hpp).
[[nodiscard]] constexpr bool reads_only(std::string_view sql) noexcept {
    return (begins_with_word(sql, "select") || begins_with_word(sql, "with") || begins_with_word(sql, "values")) &&
           !names_connection_state(sql);
}

// A pragma of the connection's own behaviour that changes no row and that SQLite ignores
// without an error inside a transaction (foreign_keys, recursive_triggers): it runs as it is
// given, never inside the transaction an archive writes its record ahead in. Not the pragmas
// that undo what the open set and checked (journal_mode, synchronous: refused inside a
// transaction, as they should be), and not VACUUM (it renumbers the rowids the archive keys
// tables without a key by).
[[nodiscard]] constexpr bool runs_as_given(std::string_view sql) noexcept {
    std::size_t i = first_word_at(sql);
    if (!word_at(sql, i, "pragma")) return false;
    i += 6;
    while (i < sql.size() && (sql[i] == ' ' || sql[i] == '\t' || sql[i] == '\n' || sql[i] == '\r')) ++i;
    if (word_at(sql, i, "main") && i + 4 < sql.size() && sql[i + 4] == '.') i += 5;
    for (const std::string_view name : {"foreign_keys", "recursive_triggers", "case_sensitive_like"})
        if (word_at(sql, i, name)) return true;
    return false;
}

}  // namespace resilite::detail
