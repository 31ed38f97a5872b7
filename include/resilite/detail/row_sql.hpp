#pragma once
// Typed rows: the SQL for a declared table's insert/upsert/get/select/erase (built once per
// table) and the mapping between a row struct and statement parameters/columns.

#include <resilite/detail/row_traits.hpp>
#include <resilite/detail/schema_def.hpp>
#include <resilite/sqlite/connection.hpp>

#include <boost/hana/for_each.hpp>
#include <boost/hana/members.hpp>

#include <fmt/format.h>

#include <string>

namespace resilite::detail {

template <class Table>
struct row_sql {
    static const table_def& def() {
        static const table_def d = Table::definition();
        return d;
    }
    static std::string columns() {
        std::string out;
        for (const auto& c : def().columns) {
            if (!out.empty()) out += ',';
            out += quote_id(c.name);
        }
        return out;
    }
    static std::string key_condition() {
        std::string out;
        for (const auto& k : def().primary_key) {
            if (!out.empty()) out += " AND ";
            out += quote_id(k) + " = ?";
        }
        return out;
    }
    static std::string placeholders() {
        std::string out;
        for (std::size_t i = 0; i < def().columns.size(); ++i)
            out += i == 0 ? "?" : ",?";
        return out;
    }
    static const std::string& insert() {
        static const std::string s =
            fmt::format("INSERT INTO {}({}) VALUES({})", quote_id(def().name), columns(), placeholders());
        return s;
    }
    static const std::string& upsert() {
        static const std::string s = [] {
            std::string set;
            for (const auto& c : def().columns) {
                bool key = false;
                for (const auto& k : def().primary_key)
                    key = key || k == c.name;
                if (key) continue;
                if (!set.empty()) set += ',';
                set += fmt::format("{0}=excluded.{0}", quote_id(c.name));
            }
            return fmt::format("{} ON CONFLICT({}) DO {}", insert(), quote_list(def().primary_key),
                               set.empty() ? std::string{"NOTHING"} : "UPDATE SET " + set);
        }();
        return s;
    }
    static const std::string& select_all() {
        static const std::string s = fmt::format("SELECT {} FROM {}", columns(), quote_id(def().name));
        return s;
    }
    static const std::string& get() {
        static const std::string s = fmt::format("{} WHERE {}", select_all(), key_condition());
        return s;
    }
    static const std::string& erase() {
        static const std::string s =
            fmt::format("DELETE FROM {} WHERE {}", quote_id(def().name), key_condition());
        return s;
    }
};

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
    return boost::hana::unpack(boost::hana::members(row),
                               [&](const auto&... values) { return c.exec(sql, values...); });
}

template <class Row, class... Args>
std::vector<Row> select_structs(sqlite::connection& c, std::string_view sql, const Args&... args) {
    auto stmt = c.prepare_cached(sql);
    stmt->bind_all_static(args...);
    std::vector<Row> out;
    while (stmt->step())
        out.push_back(read_struct<Row>(*stmt));
    return out;
}

template <class Row, class... Args>
std::optional<Row> select_struct(sqlite::connection& c, std::string_view sql, const Args&... args) {
    auto stmt = c.prepare_cached(sql);
    stmt->bind_all_static(args...);
    if (!stmt->step()) return std::nullopt;
    return read_struct<Row>(*stmt);
}

}  // namespace resilite::detail
