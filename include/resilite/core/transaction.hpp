#pragma once
// resilite::basic_transaction<Db> and basic_savepoint<Db>: the handles a Database gives out for
// writes. A transaction holds the database's writer lock for its whole life; use it on the
// thread that began it. Each transaction and each savepoint is one operation: it emits one
// event when it ends (committed, released, rolled back or failed).

#include <resilite/core/error.hpp>
#include <resilite/monitor/event.hpp>
#include <resilite/retry/detail/retry_state.hpp>
#include <resilite/schema/detail/row_sql.hpp>
#include <resilite/sqlite/savepoint.hpp>
#include <resilite/sqlite/transaction.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>

namespace resilite {

template <class Db>
class basic_savepoint;

namespace detail {
// Records how an operation ended, for the event it emits.
struct op_failure {
    error_class klass = error_class::none;
    std::string detail;

    static op_failure from_current_exception() {
        try {
            throw;
        } catch (const error& e) {
            return {e.klass(), e.what()};
        } catch (const std::exception& e) {
            return {error_class::none, fmt::format("exception: {}", e.what())};
        } catch (...) {
            return {error_class::none, "unknown exception"};
        }
    }
};
}  // namespace detail

template <class Db>
class basic_transaction {
public:
    using time_point = typename Db::time_point;

    basic_transaction(const basic_transaction&) = delete;
    basic_transaction& operator=(const basic_transaction&) = delete;
    basic_transaction(basic_transaction&& o) noexcept
        : db_(o.db_),
          lock_(std::move(o.lock_)),
          tx_(std::move(o.tx_)),
          state_(o.state_),
          managed_(o.managed_),
          changes_at_start_(o.changes_at_start_),
          kept_rows_(o.kept_rows_),
          reported_(std::exchange(o.reported_, true)),
          depth_(o.depth_) {}
    basic_transaction& operator=(basic_transaction&&) = delete;

    // Left without commit(): rolls back (never throws) and reports it as a warning.
    ~basic_transaction() {
        tx_.abandon();
        if (!reported_) report(outcome::warning, error_class::none, "rolled back: left without commit()");
    }

    template <class... Args>
    std::int64_t exec(std::string_view sql, const Args&... args) {
        return db_->run_in_transaction(
            "exec", [&] { return db_->conn().exec(sql, args...); }, [](std::int64_t n) { return n; });
    }

    void exec_script(std::string_view sql) {
        db_->run_in_transaction(
            "exec_script",
            [&] {
                db_->conn().exec_script(sql);
                return 0;
            },
            [](int) { return std::int64_t{0}; });
    }

    // Typed rows, as on the Database (see there).
    template <class Row>
    std::int64_t insert(const Row& row) {
        using sql = detail::row_sql<typename Db::template table_for<Row>>;
        return db_->run_in_transaction(
            "insert",
            [&] {
                detail::exec_with_row(db_->conn(), sql::insert(), row);
                return db_->conn().last_insert_rowid();
            },
            [](std::int64_t) { return std::int64_t{1}; });
    }
    template <class Row>
    std::int64_t upsert(const Row& row) {
        using sql = detail::row_sql<typename Db::template table_for<Row>>;
        return db_->run_in_transaction(
            "upsert", [&] { return detail::exec_with_row(db_->conn(), sql::upsert(), row); },
            [](std::int64_t n) { return n; });
    }
    template <class Row, class... Key>
    [[nodiscard]] std::optional<Row> get(const Key&... key) {
        using sql = detail::row_sql<typename Db::template table_for<Row>>;
        return db_->run_in_transaction(
            "get", [&] { return detail::select_struct<Row>(db_->conn(), sql::get(), key...); },
            [](const auto& v) { return static_cast<std::int64_t>(v.has_value()); });
    }
    template <class Row, class... Args>
    [[nodiscard]] std::vector<Row> select(std::string_view tail = {}, const Args&... args) {
        using sql = detail::row_sql<typename Db::template table_for<Row>>;
        const auto text = tail.empty() ? sql::select_all() : fmt::format("{} {}", sql::select_all(), tail);
        return db_->run_in_transaction(
            "select", [&] { return detail::select_structs<Row>(db_->conn(), text, args...); },
            [](const auto& v) { return static_cast<std::int64_t>(v.size()); });
    }
    template <class Row, class... Key>
    std::int64_t erase(const Key&... key) {
        using sql = detail::row_sql<typename Db::template table_for<Row>>;
        return db_->run_in_transaction(
            "erase", [&] { return db_->conn().exec(sql::erase(), key...); },
            [](std::int64_t n) { return n; });
    }

    template <class... T, class... Args>
    [[nodiscard]] auto query(std::string_view sql, const Args&... args) {
        static_assert(detail::owning_row<T...>, "resilite: " RESILITE_NO_VIEWS_MESSAGE);
        return db_->run_in_transaction(
            "query", [&] { return db_->conn().template query_all<T...>(sql, args...); },
            [](const auto& v) { return static_cast<std::int64_t>(v.size()); });
    }

    template <class... T, class... Args>
    [[nodiscard]] auto query_one(std::string_view sql, const Args&... args) {
        static_assert(detail::owning_row<T...>, "resilite: " RESILITE_NO_VIEWS_MESSAGE);
        return db_->run_in_transaction(
            "query", [&] { return db_->conn().template query_one<T...>(sql, args...); },
            [](const auto& v) { return static_cast<std::int64_t>(v.has_value()); });
    }

    // Runs f(*this) inside a savepoint: released when f returns, undone (and the exception
    // passed on) when f throws. Savepoints nest.
    template <class F>
    decltype(auto) savepoint(F&& f) {
        auto sp = begin_savepoint();
        if constexpr (std::is_void_v<std::invoke_result_t<F, basic_transaction&>>) {
            sp.guard([&] { std::invoke(f, *this); });
            sp.release();
        } else {
            auto result = sp.guard([&] { return std::invoke(f, *this); });
            sp.release();
            return result;
        }
    }

    // A savepoint to release() or rollback() by hand; leaving it open undoes it.
    [[nodiscard]] basic_savepoint<Db> begin_savepoint() { return basic_savepoint<Db>{*this}; }

    // COMMIT; retried under the retry policy while the database is busy.
    void commit() {
        try {
            db_->commit_with_retry(tx_, state_);
        } catch (...) {
            db_->annotate_current(state_.start, "commit", state_.attempt);
            auto f = detail::op_failure::from_current_exception();
            if (!tx_.conn().in_transaction()) {  // SQLite rolled back already: nothing to retry
                tx_.rollback();
            }
            report(outcome::failed, f.klass, f.detail);
            throw;
        }
        report(outcome::ok, error_class::none, "committed", true);
        db_->after_commit();  // archive: drained (with flush on commit) before commit() returns
    }

    void rollback() {
        tx_.rollback();
        report(outcome::ok, error_class::none, "rolled back");
    }

    [[nodiscard]] bool active() const noexcept { return tx_.active(); }
    [[nodiscard]] Db& database() const noexcept { return *db_; }
    // Which attempt this is (1 for the first). Database::transaction(f) replays f when the
    // database was busy; f can use this to keep effects outside the database idempotent.
    [[nodiscard]] int attempt() const noexcept { return state_.attempt; }

private:
    friend Db;
    friend class basic_savepoint<Db>;

    basic_transaction(Db& db, std::unique_lock<std::recursive_mutex> lock, sqlite::transaction tx,
                      const detail::retry_state& state, bool managed)
        : db_(&db),
          lock_(std::move(lock)),
          tx_(std::move(tx)),
          state_(state),
          managed_(managed),
          changes_at_start_(db.direct_changes()) {}

    // Rows count only what was kept: a rolled back transaction changed nothing.
    // A transaction run by Database::transaction(f) is reported by it, once for all attempts.
    void report(outcome o, error_class klass, std::string_view detail, bool kept = false) noexcept {
        if (reported_) return;
        reported_ = true;
        kept_rows_ = kept ? db_->direct_changes() - changes_at_start_ : 0;
        if (!managed_)
            db_->emit_since("transaction", state_.start, o, kept_rows_, klass, detail, state_.attempt);
    }

    Db* db_;
    std::unique_lock<std::recursive_mutex> lock_;
    sqlite::transaction tx_;
    detail::retry_state state_;
    bool managed_ = false;
    std::int64_t changes_at_start_ = 0;
    std::int64_t kept_rows_ = 0;
    bool reported_ = false;
    int depth_ = 0;  // open savepoints, for unique names
};

template <class Db>
class basic_savepoint {
public:
    basic_savepoint(const basic_savepoint&) = delete;
    basic_savepoint& operator=(const basic_savepoint&) = delete;
    basic_savepoint(basic_savepoint&& o) noexcept
        : tx_(std::exchange(o.tx_, nullptr)),
          sp_(std::move(o.sp_)),
          start_(o.start_),
          changes_at_start_(o.changes_at_start_),
          reported_(std::exchange(o.reported_, true)) {}
    basic_savepoint& operator=(basic_savepoint&&) = delete;

    ~basic_savepoint() {
        if (tx_ == nullptr) return;  // moved from
        sp_.abandon();
        if (!reported_) report(outcome::warning, error_class::none, "rolled back: left without release()");
        --tx_->depth_;
    }

    void release() {
        finish([this] { sp_.release(); }, "released", true);
    }
    void rollback() {
        finish([this] { sp_.rollback(); }, "rolled back", false);
    }

    [[nodiscard]] bool active() const noexcept { return sp_.active(); }

private:
    friend class basic_transaction<Db>;

    explicit basic_savepoint(basic_transaction<Db>& tx)
        : tx_(&tx),
          sp_(tx.db_->conn(), fmt::format("resilite_sp_{}", tx.depth_ + 1)),
          start_(tx.db_->now()),
          changes_at_start_(tx.db_->direct_changes()) {
        ++tx_->depth_;
    }

    // Runs f; on exception undoes the savepoint, reports the failure and rethrows.
    template <class F>
    decltype(auto) guard(F&& f) {
        try {
            return f();
        } catch (...) {
            auto failure = detail::op_failure::from_current_exception();
            try {
                sp_.rollback();
            } catch (...) {  // the destructor retries without throwing
            }
            report(outcome::failed, failure.klass, failure.detail);
            throw;
        }
    }

    // Ends the savepoint with `step` and reports how that went.
    template <class F>
    void finish(F&& step, std::string_view done, bool kept) {
        try {
            step();
        } catch (...) {
            auto f = detail::op_failure::from_current_exception();
            report(outcome::failed, f.klass, f.detail);
            throw;
        }
        report(outcome::ok, error_class::none, done, kept);
    }

    void report(outcome o, error_class klass, std::string_view detail, bool kept = false) noexcept {
        if (reported_) return;
        reported_ = true;
        auto& db = *tx_->db_;
        const auto rows = kept ? db.direct_changes() - changes_at_start_ : 0;
        db.emit_since("savepoint", start_, o, rows, klass, detail);
    }

    basic_transaction<Db>* tx_;
    sqlite::savepoint sp_;
    typename Db::time_point start_;
    std::int64_t changes_at_start_ = 0;
    bool reported_ = false;
};

}  // namespace resilite
