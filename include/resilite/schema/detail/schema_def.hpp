#pragma once
// The run-time description of a declared schema, built once from the compile-time
// declarations, and the SQL that creates each part. The sync engine works on this form (so
// property P3 can generate random schemas at run time).

#include <resilite/detail/format.hpp>
#include <resilite/schema/referential_action.hpp>

#include <fmt/format.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace resilite::detail {

// A column's REFERENCES clause (resilite::foreign_key).
struct foreign_key_def {
    std::string table;
    std::string column;
    referential_action on_delete = referential_action::no_action;
    referential_action on_update = referential_action::no_action;
    friend bool operator==(const foreign_key_def&, const foreign_key_def&) = default;
};

struct column_def {
    std::string name;
    std::string type;  // INTEGER, REAL, TEXT, BLOB
    bool not_null = true;
    std::optional<std::string> default_sql;
    bool unique = false;
    bool secret = false;
    std::optional<foreign_key_def> references;
};

struct index_def {
    std::string name;
    std::vector<std::string> columns;
    bool unique = false;
    std::string where;  // partial index condition, empty for none
};

struct table_def {
    std::string name;
    std::vector<column_def> columns;
    std::vector<std::string> primary_key;
    std::vector<index_def> indexes;
};

struct trigger_def {
    std::string name;
    std::string sql;  // after CREATE TRIGGER "name"
};

struct schema_def {
    std::vector<table_def> tables;
    std::vector<trigger_def> triggers;

    // Any foreign key declared: SQLite's enforcement is then turned on for every connection.
    [[nodiscard]] bool has_foreign_keys() const noexcept {
        for (const auto& t : tables)
            for (const auto& c : t.columns)
                if (c.references) return true;
        return false;
    }
};

// Appends `text` between `quote` characters, embedded ones doubled (SQL's only escape).
inline void append_quoted(std::string& out, std::string_view text, char quote) {
    out += quote;
    for (char c : text) {
        out += c;
        if (c == quote) out += quote;
    }
    out += quote;
}

// "name" with embedded quotes doubled: identifiers are quoted everywhere.
[[nodiscard]] inline std::string quote_id(std::string_view id) {
    std::string out;
    append_quoted(out, id, '"');
    return out;
}

// The identifier quote_id wrote at the start of `s`, unquoted; empty when there is none.
inline std::string unquote_id_prefix(std::string_view s) {
    std::string out;
    if (s.empty() || s.front() != '"') return out;
    for (std::size_t i = 1; i < s.size(); ++i) {
        if (s[i] != '"') {
            out += s[i];
        } else if (i + 1 < s.size() && s[i + 1] == '"') {
            out += '"';
            ++i;
        } else {
            return out;
        }
    }
    return {};
}

// 'text' with embedded quotes doubled: a string literal.
[[nodiscard]] inline std::string quote_literal(std::string_view text) {
    std::string out;
    append_quoted(out, text, '\'');
    return out;
}

[[nodiscard]] inline std::string quote_list(const std::vector<std::string>& ids) {
    std::string out;
    for (const auto& id : ids) {
        if (!out.empty()) out += ',';
        out += quote_id(id);
    }
    return out;
}

// A single integer primary key is SQLite's rowid alias and must be spelled INTEGER PRIMARY KEY.
[[nodiscard]] inline bool is_rowid_alias(const table_def& t, const column_def& c) {
    return t.primary_key.size() == 1 && t.primary_key[0] == c.name && c.type == "INTEGER";
}

// " REFERENCES "parent"("col") ON DELETE ... ON UPDATE ...", the actions only when not the default.
[[nodiscard]] inline std::string references_sql(const foreign_key_def& fk) {
    std::string out = resilite::detail::format(" REFERENCES {}({})", quote_id(fk.table), quote_id(fk.column));
    if (fk.on_delete != referential_action::no_action)
        out += resilite::detail::format(" ON DELETE {}", to_sql(fk.on_delete));
    if (fk.on_update != referential_action::no_action)
        out += resilite::detail::format(" ON UPDATE {}", to_sql(fk.on_update));
    return out;
}

// SQLite adds a column with a REFERENCES clause only when its default is NULL (with
// enforcement on; with it off, existing rows would get a default nothing checked).
[[nodiscard]] inline bool references_addable(const column_def& c) noexcept {
    return !c.not_null && !c.default_sql;
}

// The column as it appears in CREATE TABLE; `for_add` leaves out UNIQUE (ALTER TABLE ADD
// COLUMN cannot add it: a unique index does the job instead) and a REFERENCES clause SQLite
// would refuse there (references_addable).
[[nodiscard]] inline std::string column_sql(const table_def& t, const column_def& c, bool for_add = false) {
    std::string out = resilite::detail::format("{} {}", quote_id(c.name), c.type);
    if (is_rowid_alias(t, c)) {
        out += " PRIMARY KEY";
    } else if (c.not_null) {
        out += " NOT NULL";
    }
    if (c.default_sql) out += resilite::detail::format(" DEFAULT ({})", *c.default_sql);
    if (c.unique && !for_add) out += " UNIQUE";
    if (c.references && (!for_add || references_addable(c))) out += references_sql(*c.references);
    return out;
}

[[nodiscard]] inline std::string create_table_sql(const table_def& t) {
    std::string cols;
    bool alias = false;
    for (const auto& c : t.columns) {
        if (!cols.empty()) cols += ", ";
        cols += column_sql(t, c);
        alias = alias || is_rowid_alias(t, c);
    }
    if (!t.primary_key.empty() && !alias)
        cols += resilite::detail::format(", PRIMARY KEY({})", quote_list(t.primary_key));
    return resilite::detail::format("CREATE TABLE {}({})", quote_id(t.name), cols);
}

// A partial index's condition without a leading WHERE keyword (any case, with the whitespace
// around it): the declaration may be written either way, and the DDL adds the keyword once.
// A condition that merely starts with those letters ("whereabouts IS NULL") is kept whole.
[[nodiscard]] constexpr std::string_view partial_index_condition(std::string_view where) noexcept {
    constexpr auto space = [](char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    };
    constexpr auto word = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
               c == '$' || static_cast<unsigned char>(c) >= 0x80;
    };
    std::size_t i = 0;
    while (i < where.size() && space(where[i]))
        ++i;
    constexpr std::string_view keyword = "where";
    if (where.size() - i < keyword.size()) return where;
    for (std::size_t k = 0; k < keyword.size(); ++k) {
        const char c = where[i + k];
        if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != keyword[k]) return where;
    }
    i += keyword.size();
    if (i < where.size() && word(where[i])) return where;
    while (i < where.size() && space(where[i]))
        ++i;
    return where.substr(i);
}
static_assert(partial_index_condition(" Where  x > 1") == "x > 1");
static_assert(partial_index_condition("whereabouts IS NULL") == "whereabouts IS NULL");

[[nodiscard]] inline std::string create_index_sql(const table_def& t, const index_def& i) {
    std::string out = resilite::detail::format("CREATE {}INDEX {} ON {}({})", i.unique ? "UNIQUE " : "",
                                               quote_id(i.name), quote_id(t.name), quote_list(i.columns));
    const auto where = partial_index_condition(i.where);
    if (!where.empty()) out += resilite::detail::format(" WHERE {}", where);
    return out;
}

// The unique index that stands in for a UNIQUE column added after the table was created.
[[nodiscard]] inline index_def unique_column_index(const table_def& t, const column_def& c) {
    return index_def{resilite::detail::format("resilite_unique_{}_{}", t.name, c.name), {c.name}, true, {}};
}

[[nodiscard]] inline std::string create_trigger_sql(const trigger_def& tr) {
    return resilite::detail::format("CREATE TRIGGER {} {}", quote_id(tr.name), tr.sql);
}

}  // namespace resilite::detail
