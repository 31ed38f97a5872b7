#pragma once
// The statement and typed-row API, written once for a Database and for its transactions. The
// class deriving from it supplies one hook,
//
//   template <class F, class Rows> auto run(std::string_view name, F&& f, Rows&& rows_of);
//
// which runs f(connection) as an operation named `name` (in autocommit with retries for a
// Database, as one statement of the transaction for a transaction) and reports rows_of(result);
// and one for the writes a write queue can hold (exec with arguments, insert, upsert, erase),
//
//   template <class F, class Rows, class Encode> decltype(auto) write(name, f, rows_of, encode, place);
//
// which runs them as `run` does, or queues encode(queue) (degradation<queue_writes<N>>); `place`
// says whether an archive may run it inside the transaction it writes its record ahead in; and one
// for reads,
//
//   template <class F, class Rows, class Pooled> auto read(name, f, rows_of, Pooled&& pooled);
//
// which runs them as `run` does, on a read connection when the Database has them
// (settings().read_connections; never inside a transaction) and pooled() says the statement may
// run there (asked only then: the scan of the text stays off a read's path without a pool).

#include <resilite/detail/format.hpp>
#include <resilite/durability/detail/pragmas.hpp>
#include <resilite/flow/detail/statement_place.hpp>
#include <resilite/schema/detail/row_sql.hpp>
#include <resilite/schema/detail/table_for.hpp>
#include <resilite/sqlite/connection.hpp>
#include <resilite/sqlite/detail/reads_only.hpp>
#include <resilite/sqlite/rows.hpp>

#include <boost/hana/members.hpp>
#include <boost/hana/unpack.hpp>
#include <fmt/format.h>

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace resilite::detail {

template <class Derived, class Schema>
class statement_api {
public:
    // Runs one statement; returns the rows it changed (with queue_writes: a write_result).
    template <class... Args>
    decltype(auto) exec(std::string_view sql, const Args&... args) {
        return self().write(
            "exec",
            [&](sqlite::connection& c) {
                return keeping_durability(c, begins_with_pragma(sql), [&] { return c.exec(sql, args...); });
            },
            changed,
            [&](auto& queue) { return queue.encode("exec", sql, args...); },
            detail::runs_as_given(sql) ? statement_place::as_given : statement_place::write_ahead);
    }

    // Runs a script of several statements without parameters (schema set-up).
    void exec_script(std::string_view sql) {
        self().run(
            "exec_script",
            [&](sqlite::connection& c) {
                return keeping_durability(c, names_word(sql, "pragma"), [&] {
                    c.exec_script(sql);
                    return std::int64_t{0};
                });
            },
            changed);
    }

    // Every row, each as T or std::tuple<T...>.
    template <class... T, class... Args>
    [[nodiscard]] std::vector<sqlite::row_t<T...>> query(std::string_view sql, const Args&... args) {
        static_assert(owning_row<T...>, "resilite: " RESILITE_NO_VIEWS_MESSAGE);
        return self().read(
            "query",
            [&](sqlite::connection& c) {
                return keeping_durability(c, begins_with_pragma(sql),
                                          [&] { return c.template query_all<T...>(sql, args...); });
            },
            count,
            [sql] { return detail::reads_only(sql); });
    }

    // The first row, if there is one.
    template <class... T, class... Args>
    [[nodiscard]] std::optional<sqlite::row_t<T...>> query_one(std::string_view sql, const Args&... args) {
        static_assert(owning_row<T...>, "resilite: " RESILITE_NO_VIEWS_MESSAGE);
        return self().read(
            "query",
            [&](sqlite::connection& c) {
                return keeping_durability(c, begins_with_pragma(sql),
                                          [&] { return c.template query_one<T...>(sql, args...); });
            },
            count,
            [sql] { return detail::reads_only(sql); });
    }

    // ---- typed rows (tables declared in the schema policy) ---------------------------------------

    // Inserts the row; returns its rowid (with queue_writes: a write_result).
    template <class Row>
    decltype(auto) insert(const Row& row) {
        using sql = row_sql<table_for<Schema, Row>>;
        return self().write(
            "insert",
            [&](sqlite::connection& c) {
                exec_with_row(c, sql::insert(), row);
                return c.last_insert_rowid();
            },
            [](std::int64_t) { return std::int64_t{1}; }, [&](auto& queue) { return encode_row(queue, "insert", sql::insert(), row); });
    }

    // Inserts the row, or updates every other column of the row with the same primary key.
    template <class Row>
    decltype(auto) upsert(const Row& row) {
        using table = table_for<Schema, Row>;
        static_assert(table::primary_key_size > 0, "resilite: upsert<Row>: the table needs a primary_key");
        return self().write(
            "upsert", [&](sqlite::connection& c) { return exec_with_row(c, row_sql<table>::upsert(), row); },
            changed, [&](auto& queue) { return encode_row(queue, "upsert", row_sql<table>::upsert(), row); });
    }

    // The row with this primary key (one value per key column), if any.
    template <class Row, class... Key>
    [[nodiscard]] std::optional<Row> get(const Key&... key) {
        using table = table_for<Schema, Row>;
        static_assert(table::primary_key_size > 0 && sizeof...(Key) == table::primary_key_size,
                      "resilite: get<Row>(key...): give one value per primary key column");
        return self().read(
            "get", [&](sqlite::connection& c) { return select_struct<Row>(c, row_sql<table>::get(), key...); },
            count, [] { return true; });
    }

    // Rows of the table, filtered by an SQL tail: select<User>("WHERE name = ? ORDER BY id", "Ann").
    template <class Row, class... Args>
    [[nodiscard]] std::vector<Row> select(std::string_view tail = {}, const Args&... args) {
        using sql = row_sql<table_for<Schema, Row>>;
        const auto text =
            tail.empty() ? sql::select_all() : resilite::detail::format("{} {}", sql::select_all(), tail);
        return self().read(
            "select", [&](sqlite::connection& c) { return select_structs<Row>(c, text, args...); }, count,
            [&text] { return detail::reads_only(text); });  // (the tail may name what only the writer has)
    }

    // Deletes the row with this primary key; returns 1, or 0 when there was none.
    template <class Row, class... Key>
    decltype(auto) erase(const Key&... key) {
        using table = table_for<Schema, Row>;
        static_assert(table::primary_key_size > 0 && sizeof...(Key) == table::primary_key_size,
                      "resilite: erase<Row>(key...): give one value per primary key column");
        return self().write(
            "erase", [&](sqlite::connection& c) { return c.exec(row_sql<table>::erase(), key...); }, changed,
            [&](auto& queue) { return queue.encode("erase", row_sql<table>::erase(), key...); });
    }

private:
    // A typed row's write as the write queue keeps it (degradation<queue_writes<N>>): the same
    // statement and values exec_with_row binds.
    template <class Queue, class Row>
    static auto encode_row(Queue& queue, std::string_view op, const std::string& sql, const Row& row) {
        return boost::hana::unpack(boost::hana::members(row),
                                   [&](const auto&... values) { return queue.encode(op, sql, values...); });
    }

    static constexpr auto changed = [](std::int64_t n) { return n; };
    static constexpr auto count = [](const auto& v) {
        if constexpr (requires { v.size(); }) {
            return static_cast<std::int64_t>(v.size());
        } else {
            return static_cast<std::int64_t>(v.has_value());
        }
    };

    Derived& self() { return static_cast<Derived&>(*this); }
};

}  // namespace resilite::detail
