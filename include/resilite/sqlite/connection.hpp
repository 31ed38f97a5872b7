#pragma once
// resilite::sqlite::connection: RAII over one sqlite3 handle, with a statement cache.

#include <resilite/core/error.hpp>
#include <resilite/sqlite/rows.hpp>
#include <resilite/sqlite/statement.hpp>
#include <resilite/sqlite/statement_cache.hpp>

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace resilite::sqlite {

class connection {
public:
    static constexpr int default_flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;

    explicit connection(const std::filesystem::path& path, int flags = default_flags,
                        const char* vfs = nullptr, std::size_t cache_capacity = 64)
        : path_(path.string()), cache_(cache_capacity) {
        sqlite3* db = nullptr;
        const int rc = sqlite3_open_v2(path_.c_str(), &db, flags | SQLITE_OPEN_EXRESCODE, vfs);
        if (rc != SQLITE_OK) {
            auto failure = detail::sqlite_failure(db, rc, "open", {}, path_);
            sqlite3_close_v2(db);  // a handle is returned even on failure
            throw failure;
        }
        db_ = db;
        sqlite3_extended_result_codes(db_, 1);
        // SQLite's legacy misfeature turns a double-quoted name that is not a column into a
        // string ("region" reads as 'region'): silent wrong data. Off for DML and DDL alike
        // (existing schemas that relied on it still load: SQLite always allows it there).
        for (const int option : {SQLITE_DBCONFIG_DQS_DML, SQLITE_DBCONFIG_DQS_DDL}) {
            const int config_rc = sqlite3_db_config(db_, option, 0, nullptr);
            if (config_rc != SQLITE_OK) {
                auto failure = detail::sqlite_failure(db_, config_rc, "open/db_config", {}, path_);
                sqlite3_close_v2(std::exchange(db_, nullptr));
                throw failure;
            }
        }
    }

    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;
    connection(connection&& o) noexcept = delete;  // the cache's leases point into this object

    ~connection() { close(); }

    // Finalizes cached statements and closes. Never throws; close_v2 defers the real close if
    // a statement is still alive somewhere, instead of failing.
    void close() noexcept {
        if (db_ == nullptr) return;
        cache_.clear();
        sqlite3_close_v2(std::exchange(db_, nullptr));
    }

    // Runs one statement with bound arguments; returns the rows it changed (0 for queries and
    // DDL; rows changed by triggers are not counted, as with sqlite3_changes).
    template <class... Args>
    std::int64_t exec(std::string_view sql, const Args&... args) {
        auto stmt = cache_.acquire(db_, sql);
        stmt->bind_all_static(args...);  // args outlive every step below
        const auto before = sqlite3_total_changes64(db_);
        while (stmt->step()) {
        }
        // sqlite3_changes64 keeps the count of the last INSERT/UPDATE/DELETE, so a DDL statement
        // would report its predecessor's rows; the total tells whether this one changed any.
        return sqlite3_total_changes64(db_) == before ? 0 : sqlite3_changes64(db_);
    }

    // Runs several statements without arguments (schema scripts, pragmas).
    void exec_script(std::string_view sql) {
        const std::string text{sql};
        char* message = nullptr;
        const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message);
        sqlite3_free(message);  // sqlite3_errmsg keeps the same text
        if (rc != SQLITE_OK) throw detail::sqlite_failure(db_, rc, "exec_script", sql, path_);
    }

    // Lazy: rows are stepped as the range is iterated. The arguments are copied into the
    // statement, so temporaries are fine.
    template <class... T, class... Args>
    [[nodiscard]] rows<T...> query(std::string_view sql, const Args&... args) {
        auto stmt = cache_.acquire(db_, sql);
        stmt->bind_all(args...);
        return rows<T...>{std::move(stmt)};
    }

    // All rows at once.
    template <class... T, class... Args>
    [[nodiscard]] std::vector<row_t<T...>> query_all(std::string_view sql, const Args&... args) {
        static_assert(resilite::detail::owning_row<T...>, "resilite: " RESILITE_NO_VIEWS_MESSAGE);
        auto stmt = cache_.acquire(db_, sql);
        stmt->bind_all_static(args...);
        detail::check_columns(*stmt, sizeof...(T));
        std::vector<row_t<T...>> out;
        while (stmt->step())
            out.push_back(read_row<T...>(*stmt));
        return out;
    }

    // The first row, if any; further rows are not read.
    template <class... T, class... Args>
    [[nodiscard]] std::optional<row_t<T...>> query_one(std::string_view sql, const Args&... args) {
        static_assert(resilite::detail::owning_row<T...>, "resilite: " RESILITE_NO_VIEWS_MESSAGE);
        auto stmt = cache_.acquire(db_, sql);
        stmt->bind_all_static(args...);
        detail::check_columns(*stmt, sizeof...(T));
        if (!stmt->step()) return std::nullopt;
        return read_row<T...>(*stmt);
    }

    [[nodiscard]] statement prepare(std::string_view sql) { return statement{db_, sql}; }
    // A cached statement with no parameter bound yet (the cache leaves the last user's bindings).
    [[nodiscard]] statement_cache::lease prepare_cached(std::string_view sql) {
        auto stmt = cache_.acquire(db_, sql);
        stmt->clear_bindings();
        return stmt;
    }

    void busy_timeout(std::chrono::milliseconds t) {
        check(sqlite3_busy_timeout(db_, static_cast<int>(t.count())), "busy_timeout");
    }

    [[nodiscard]] std::int64_t last_insert_rowid() const noexcept { return sqlite3_last_insert_rowid(db_); }
    [[nodiscard]] std::int64_t total_changes() const noexcept { return sqlite3_total_changes64(db_); }
    [[nodiscard]] bool in_transaction() const noexcept { return sqlite3_get_autocommit(db_) == 0; }
    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    [[nodiscard]] sqlite3* native_handle() const noexcept { return db_; }
    [[nodiscard]] statement_cache& cache() noexcept { return cache_; }

    // Throws the classified error for a failed call on this connection.
    void check(int rc, std::string_view operation, std::string_view sql = {}) const {
        if (rc != SQLITE_OK) throw detail::sqlite_failure(db_, rc, operation, sql, path_);
    }

private:
    sqlite3* db_ = nullptr;
    std::string path_;
    statement_cache cache_;
};

}  // namespace resilite::sqlite
