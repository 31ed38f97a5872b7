#pragma once
// resilite::sqlite::statement: RAII over one prepared sqlite3_stmt.

#include <resilite/core/error.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/sqlite/detail/value_traits.hpp>

#include <sqlite3.h>

#include <cstdint>
#include <string_view>
#include <type_traits>
#include <utility>

namespace resilite::sqlite {

class statement {
public:
    statement() = default;

    // Prepares exactly one statement. Trailing text other than whitespace, ';' and comments is
    // refused: silently ignoring it would drop the user's later statements.
    statement(sqlite3* db, std::string_view sql, bool persistent = false) {
        const char* tail = nullptr;
        const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                          persistent ? SQLITE_PREPARE_PERSISTENT : 0, &stmt_, &tail);
        if (rc != SQLITE_OK) throw detail::sqlite_failure(db, rc, "prepare", sql, path_of(db));
        if (stmt_ == nullptr) {
            throw refused(db, sql, "the SQL text holds no statement");
        }
        params_ = sqlite3_bind_parameter_count(stmt_);  // (the same text keeps it when re-prepared)
        if (tail != nullptr && !nothing_but_separators(tail, sql.data() + sql.size())) {
            sqlite3_finalize(std::exchange(stmt_, nullptr));
            throw refused(db, sql, "the SQL text holds more than one statement; run scripts with exec_script()");
        }
    }

    statement(const statement&) = delete;
    statement& operator=(const statement&) = delete;
    statement(statement&& o) noexcept
        : stmt_(std::exchange(o.stmt_, nullptr)),
          params_(std::exchange(o.params_, 0)),
          copies_(std::exchange(o.copies_, false)) {}
    statement& operator=(statement&& o) noexcept {
        if (this != &o) {
            sqlite3_finalize(stmt_);
            stmt_ = std::exchange(o.stmt_, nullptr);
            params_ = std::exchange(o.params_, 0);
            copies_ = std::exchange(o.copies_, false);
        }
        return *this;
    }
    ~statement() {
        if (stmt_ != nullptr) sqlite3_finalize(stmt_);  // (a moved-from one: every lease holds one)
    }

    // Binds parameter `index` (1-based). copy = false lets SQLite use the caller's memory; only
    // valid when the value outlives every step until the next reset.
    template <class T>
    void bind(int index, const T& value, bool copy = true) {
        using V = std::remove_cvref_t<T>;
        static_assert(detail::bindable<V>,
                      "resilite: this type cannot be bound to a statement parameter; use an "
                      "integer (at most 64 bits signed), bool, double, std::string, "
                      "std::string_view, const char*, resilite::blob, std::span<const std::byte>, "
                      "std::optional<T> or nullptr");
        check(detail::value_traits<V>::bind(stmt_, index, value, copy), "bind");
        copies_ = copies_ || copy;
    }

    template <class... Args>
    void bind_all(const Args&... args) {
        check_parameter_count(sizeof...(Args));
        int index = 0;
        (bind(++index, args), ...);
    }

    // Binds without copying: the caller guarantees the values live until the next reset.
    template <class... Args>
    void bind_all_static(const Args&... args) {
        check_parameter_count(sizeof...(Args));
        int index = 0;
        (bind(++index, args, false), ...);
    }

    // true: a row is ready; false: the statement is done. Throws on error (after resetting).
    bool step() {
        const int rc = sqlite3_step(stmt_);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        // Build the error before reset: reset keeps the code but the message may change.
        auto failure = detail::sqlite_failure(sqlite3_db_handle(stmt_), rc, "step", sql(),
                                              path_of(sqlite3_db_handle(stmt_)));
        sqlite3_reset(stmt_);
        throw failure;
    }

    void reset() noexcept { sqlite3_reset(stmt_); }
    void clear_bindings() noexcept {
        sqlite3_clear_bindings(stmt_);
        copies_ = false;
    }
    // Whether a value bound since the last clear_bindings() was copied into SQLite (bind with
    // copy = true): the copy stays in the statement until then.
    [[nodiscard]] bool holds_copies() const noexcept { return copies_; }

    template <class T>
    [[nodiscard]] T column(int index) const {
        static_assert(detail::readable<T>,
                      "resilite: this type cannot be read from a column; use an integer, bool, "
                      "double, std::string, std::string_view (valid until the next step), "
                      "resilite::blob, std::vector<std::uint8_t> or std::optional<T>");
        return detail::value_traits<T>::read(stmt_, index);
    }

    [[nodiscard]] int column_count() const noexcept { return sqlite3_column_count(stmt_); }
    [[nodiscard]] int parameter_count() const noexcept { return params_; }
    [[nodiscard]] bool read_only() const noexcept { return sqlite3_stmt_readonly(stmt_) != 0; }
    [[nodiscard]] std::string_view sql() const noexcept {
        const char* s = stmt_ != nullptr ? sqlite3_sql(stmt_) : nullptr;
        return s != nullptr ? std::string_view{s} : std::string_view{};
    }
    // Past whitespace, ';', "-- ..." to the end of the line and "/* ... */" (SQLite ends an
    // unterminated one at the end of the text): where the next token begins, or `end`.
    [[nodiscard]] static const char* skip_separators(const char* p, const char* end) noexcept {
        while (p < end) {
            if (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r' || *p == '\f' || *p == ';') {
                ++p;
            } else if (*p == '-' && p + 1 < end && p[1] == '-') {
                while (p < end && *p != '\n')
                    ++p;
            } else if (*p == '/' && p + 1 < end && p[1] == '*') {
                p += 2;
                while (p < end && !(*p == '*' && p + 1 < end && p[1] == '/'))
                    ++p;
                p = p < end ? p + 2 : end;
            } else {
                return p;
            }
        }
        return end;
    }
    [[nodiscard]] static bool nothing_but_separators(const char* p, const char* end) noexcept {
        return skip_separators(p, end) == end;
    }

    [[nodiscard]] sqlite3_stmt* native_handle() const noexcept { return stmt_; }
    [[nodiscard]] explicit operator bool() const noexcept { return stmt_ != nullptr; }

private:
    // A text refused before it runs: the record names it, as every failure's does (P9).
    [[nodiscard]] static error refused(sqlite3* db, std::string_view sql, std::string_view why) {
        technical_detail d;
        d.operation = "prepare";
        d.sql = sql;
        d.note = why;
        d.database_path = path_of(db);
        return error{error_class::misuse, std::move(d)};
    }

    static std::string_view path_of(sqlite3* db) noexcept {
        const char* f = db != nullptr ? sqlite3_db_filename(db, "main") : nullptr;
        return f != nullptr ? std::string_view{f} : std::string_view{};
    }

    void check(int rc, std::string_view op) const {
        if (rc != SQLITE_OK) {
            sqlite3* db = sqlite3_db_handle(stmt_);
            throw detail::sqlite_failure(db, rc, op, sql(), path_of(db));
        }
    }

    void check_parameter_count(std::size_t given) const {
        if (static_cast<int>(given) != parameter_count()) {
            sqlite3* db = sqlite3_db_handle(stmt_);
            technical_detail d;
            d.operation = "bind";
            d.sql = sql();
            d.extended_code = SQLITE_RANGE;
            d.code_name = detail::result_code_name(SQLITE_RANGE);
            d.sqlite_message = sqlite3_errstr(SQLITE_RANGE);
            d.database_path = path_of(db);
            d.note = resilite::detail::format("the statement takes {} parameters but {} values were given",
                                              parameter_count(), given);
            throw error{error_class::range, std::move(d)};
        }
    }

    sqlite3_stmt* stmt_ = nullptr;
    int params_ = 0;
    bool copies_ = false;
};

}  // namespace resilite::sqlite
