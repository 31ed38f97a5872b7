#pragma once
// PRAGMA quick_check / integrity_check, less one false report of SQLite itself.
//
// SQLite 3.40.0 to 3.41.0 (Debian 12 has 3.40.1) says "NULL value in T.C" for a NOT NULL column
// of a WITHOUT ROWID table whose PRIMARY KEY lists its columns in another order than the table
// declares them, once per row, although no row holds a NULL there. Taken at its word, a sound
// database would be quarantined, and, since every source fails the same check, left off-line.
// Such a line is dropped only when the table is WITHOUT ROWID and reading the column finds no
// NULL in it (`typeof(C) = 'null'`: `C IS NULL` on a NOT NULL column is answered without
// reading the rows). A database without WITHOUT ROWID tables is checked exactly as before.

#include <resilite/core/error.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/sqlite/connection.hpp>
#include <resilite/sqlite/statement.hpp>

#include <algorithm>
#include <cctype>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace resilite::detail {

[[nodiscard]] inline std::string quote_identifier(std::string_view name) {
    std::string out = "\"";
    for (const char ch : name) {
        out += ch;
        if (ch == '"') out += '"';
    }
    return out + '"';
}

// Whether a line of the check is SQLite's false NULL report (see above); `seen` remembers the
// answer for each "table.column".
[[nodiscard]] inline bool false_null_report(sqlite::connection& c, std::string_view line,
                                            std::map<std::string, bool>& seen) {
    constexpr std::string_view prefix = "NULL value in ";
    if (!line.starts_with(prefix)) return false;
    const std::string what{line.substr(prefix.size())};
    if (const auto it = seen.find(what); it != seen.end()) return it->second;
    bool is_false = false;
    // (a name may hold a dot: each split that names a WITHOUT ROWID table is tried)
    for (auto dot = what.find('.'); dot != std::string::npos && !is_false; dot = what.find('.', dot + 1)) {
        const auto table = what.substr(0, dot), column = what.substr(dot + 1);
        try {
            const auto sql = c.query_one<std::string>(
                "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", table);
            if (!sql) continue;
            std::string upper = *sql;
            std::transform(upper.begin(), upper.end(), upper.begin(),
                           [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
            const auto close = upper.rfind(')');
            if (close == std::string::npos || upper.find("WITHOUT", close) == std::string::npos) continue;
            is_false = c.query_one<std::int64_t>(resilite::detail::format(
                           "SELECT count(*) FROM {} WHERE typeof({}) = 'null'", quote_identifier(table),
                           quote_identifier(column))) == 0;
        } catch (const error& e) {
            // A read that meets damage: the line stays. Anything else (busy, out of memory, the
            // check interrupted) is not an answer: it goes to the caller.
            if (e.klass() != error_class::corrupt && e.klass() != error_class::not_a_database) throw;
        }
    }
    seen[what] = is_false;
    return is_false;
}

// The check's findings, at most `max` (each a row of the pragma's result), or {"ok"}.
[[nodiscard]] inline std::vector<std::string> integrity_findings(sqlite::connection& c, bool full, int max = 100) {
    const char* pragma = full ? "integrity_check" : "quick_check";
    const bool exposed =
        c.query_one<std::int64_t>("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND "
                                  "upper(sql) LIKE '%WITHOUT%ROWID%'")
            .value_or(0) > 0;
    if (!exposed) return c.query_all<std::string>(resilite::detail::format("PRAGMA {}({})", pragma, max));
    // No limit for SQLite: the false reports come a row each, and a real problem may follow them.
    std::vector<std::string> out;
    std::map<std::string, bool> seen;
    auto st = c.prepare(resilite::detail::format("PRAGMA {}(2147483647)", pragma));
    while (static_cast<int>(out.size()) < max && st.step()) {
        auto line = st.column<std::string>(0);
        if (line == "ok" || !false_null_report(c, line, seen)) out.push_back(std::move(line));
    }
    if (out.empty()) out.emplace_back("ok");
    return out;
}

}  // namespace resilite::detail
