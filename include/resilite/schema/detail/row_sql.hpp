#pragma once
// Typed rows: the SQL for a declared table's insert/upsert/get/select/erase (built once per
// table) and the mapping between a row struct and statement parameters/columns.

#include <resilite/detail/format.hpp>
#include <resilite/schema/detail/row_traits.hpp>
#include <resilite/schema/detail/schema_def.hpp>
#include <resilite/sqlite/connection.hpp>

#include <boost/hana/for_each.hpp>
#include <boost/hana/members.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace resilite::detail {

// The SQL texts of row_sql, built from the table's definition by functions that are not
// templates (compiled once, not once per table).
namespace row_sql_text {
inline std::string columns(const table_def& d) {
    std::string out;
    for (const auto& c : d.columns) {
        if (!out.empty()) out += ',';
        out += quote_id(c.name);
    }
    return out;
}
inline std::string key_condition(const table_def& d) {
    std::string out;
    for (const auto& k : d.primary_key) {
        if (!out.empty()) out += " AND ";
        out += quote_id(k) + " = ?";
    }
    return out;
}
inline std::string placeholders(const table_def& d) {
    std::string out;
    for (std::size_t i = 0; i < d.columns.size(); ++i)
        out += i == 0 ? "?" : ",?";
    return out;
}
inline std::string insert(const table_def& d) {
    return resilite::detail::format("INSERT INTO {}({}) VALUES({})", quote_id(d.name), columns(d), placeholders(d));
}
inline std::string upsert(const table_def& d, const std::string& insert_text) {
    std::string set;
    for (const auto& c : d.columns) {
        bool key = false;
        for (const auto& k : d.primary_key)
            key = key || k == c.name;
        if (key) continue;
        if (!set.empty()) set += ',';
        set += resilite::detail::format("{0}=excluded.{0}", quote_id(c.name));
    }
    return resilite::detail::format("{} ON CONFLICT({}) DO {}", insert_text, quote_list(d.primary_key),
                                    set.empty() ? std::string{"NOTHING"} : "UPDATE SET " + set);
}
inline std::string select_all(const table_def& d) {
    return resilite::detail::format("SELECT {} FROM {}", columns(d), quote_id(d.name));
}
inline std::string get(const table_def& d, const std::string& select_all_text) {
    return resilite::detail::format("{} WHERE {}", select_all_text, key_condition(d));
}
inline std::string erase(const table_def& d) {
    return resilite::detail::format("DELETE FROM {} WHERE {}", quote_id(d.name), key_condition(d));
}
}  // namespace row_sql_text

template <class Table>
struct row_sql {
    static const table_def& def() {
        static const table_def d = Table::definition();
        return d;
    }
    static std::string columns() { return row_sql_text::columns(def()); }
    static std::string key_condition() { return row_sql_text::key_condition(def()); }
    static std::string placeholders() { return row_sql_text::placeholders(def()); }
    static const std::string& insert() {
        static const std::string s = row_sql_text::insert(def());
        return s;
    }
    static const std::string& upsert() {
        static const std::string s = row_sql_text::upsert(def(), insert());
        return s;
    }
    static const std::string& select_all() {
        static const std::string s = row_sql_text::select_all(def());
        return s;
    }
    static const std::string& get() {
        static const std::string s = row_sql_text::get(def(), select_all());
        return s;
    }
    static const std::string& erase() {
        static const std::string s = row_sql_text::erase(def());
        return s;
    }
};

// The table a typed-row statement names. row_sql writes "INSERT INTO <table>..." and
// "SELECT <the row's columns> FROM <table>...", so the name is at a known place. `members`: the
// row's member names, in order.
inline std::string table_of_row_sql(std::string_view sql, std::span<const std::string_view> members) {
    constexpr std::string_view insert_prefix = "INSERT INTO ";
    if (sql.starts_with(insert_prefix)) return unquote_id_prefix(sql.substr(insert_prefix.size()));
    std::string select_prefix = "SELECT ";
    bool first = true;
    for (auto name : members) {
        if (!std::exchange(first, false)) select_prefix += ',';
        select_prefix += quote_id(name);
    }
    select_prefix += " FROM ";
    if (sql.starts_with(select_prefix)) return unquote_id_prefix(sql.substr(select_prefix.size()));
    return {};
}

template <class Row>
std::string table_of_row_sql(std::string_view sql) {
    static constexpr auto names = member_names<Row>();
    return table_of_row_sql(sql, names);
}

// A typed-row statement that fails to prepare because the database lacks a column the row
// declares (drift that report_only leaves alone, a column dropped by hand) is a schema error
// naming the column and the table, not SQLite's bare "no such column". A column only the
// caller's SQL tail names stays the caller's sql error. A statement prepared before the column
// went fails at its step instead (SQLite prepares it again there).
inline void throw_if_declared_column_missing(const error& e, std::span<const std::string_view> members) {
    if (e.klass() != error_class::sql || (e.technical().operation != "prepare" && e.technical().operation != "step"))
        return;
    const std::string_view message = e.technical().sqlite_message;
    if (constexpr std::string_view no_table = "no such table: "; message.starts_with(no_table)) {
        technical_detail d = e.technical();
        const auto table = table_of_row_sql(d.sql, members);
        auto missing = message.substr(no_table.size());
        if (missing.starts_with("main.")) missing.remove_prefix(5);
        const auto same = [](std::string_view a, std::string_view b) {  // (names compare without case)
            return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
                       return (x >= 'A' && x <= 'Z' ? static_cast<char>(x | 0x20) : x) ==
                              (y >= 'A' && y <= 'Z' ? static_cast<char>(y | 0x20) : y);
                   });
        };
        if (table.empty() || !same(missing, table)) return;
        d.note = resilite::detail::format(
            "the table {}, which the schema declares, is missing; the database does not match the declared "
            "schema (see sync_report())",
            quote_id(table));
        throw error{error_class::schema, std::move(d)};
    }
    constexpr std::string_view no_such = "no such column: ";
    constexpr std::string_view no_named = " has no column named ";
    std::string_view column;
    if (message.starts_with(no_such)) {
        column = message.substr(no_such.size());
    } else if (const auto at = message.find(no_named); at != std::string_view::npos) {
        column = message.substr(at + no_named.size());
    }
    if (column.empty() || std::find(members.begin(), members.end(), column) == members.end()) return;
    technical_detail d = e.technical();
    const auto table = table_of_row_sql(d.sql, members);
    d.note = resilite::detail::format(
        "the table {} has no column {}, which the row type declares; the database "
        "does not match the declared schema (see sync_report())",
        table.empty() ? std::string{"?"} : quote_id(table), quote_id(column));
    throw error{error_class::schema, std::move(d)};
}

template <class Row>
void throw_if_declared_column_missing(const error& e) {
    static constexpr auto names = member_names<Row>();
    throw_if_declared_column_missing(e, names);
}

// Prepares (or takes from the cache) a statement of the typed-row path for Row.
template <class Row>
sqlite::statement_cache::lease prepare_for_row(sqlite::connection& c, std::string_view sql) {
    try {
        return c.prepare_cached(sql);
    } catch (const error& e) {
        throw_if_declared_column_missing<Row>(e);
        throw;
    }
}

// Reads the current row of `s` into a Row, column i into member i.
template <class Row>
Row read_struct(sqlite::statement& s) {
    Row row{};
    int i = 0;
    boost::hana::for_each(boost::hana::accessors<Row>(), [&](auto p) {
        using M = member_type_t<Row, decltype(p)>;
        boost::hana::second(p)(row) = s.template column<M>(i++);
    });
    return row;
}

// Runs `sql` with the row's members bound in order, then `extra...` after them.
template <class Row>
std::int64_t exec_with_row(sqlite::connection& c, const std::string& sql, const Row& row) {
    try {
        return boost::hana::unpack(boost::hana::members(row),
                                   [&](const auto&... values) { return c.exec(sql, values...); });
    } catch (const error& e) {
        throw_if_declared_column_missing<Row>(e);
        throw;
    }
}

// The first step of a typed-row statement (where a statement prepared earlier meets a column
// dropped since).
template <class Row>
bool first_step_for_row(sqlite::statement& s) {
    try {
        return s.step();
    } catch (const error& e) {
        throw_if_declared_column_missing<Row>(e);
        throw;
    }
}

template <class Row, class... Args>
std::vector<Row> select_structs(sqlite::connection& c, std::string_view sql, const Args&... args) {
    auto stmt = prepare_for_row<Row>(c, sql);
    stmt->bind_all_static(args...);
    std::vector<Row> out;
    for (bool row = first_step_for_row<Row>(*stmt); row; row = stmt->step())
        out.push_back(read_struct<Row>(*stmt));
    return out;
}

template <class Row, class... Args>
std::optional<Row> select_struct(sqlite::connection& c, std::string_view sql, const Args&... args) {
    auto stmt = prepare_for_row<Row>(c, sql);
    stmt->bind_all_static(args...);
    if (!first_step_for_row<Row>(*stmt)) return std::nullopt;
    return read_struct<Row>(*stmt);
}

}  // namespace resilite::detail
