#pragma once
// resilite::basic_transaction<Db>: the handle a Database gives out for writes. It holds the
// database's writer lock for its whole life; use it on the thread that began it. Each
// transaction is one operation: it emits one event when it ends (committed, rolled back or
// failed). Statements and typed rows work as on the Database (flow/detail/statement_api.hpp).

#include <resilite/core/detail/op_failure.hpp>
#include <resilite/core/error.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/flow/detail/operation_flow.hpp>
#include <resilite/flow/detail/statement_api.hpp>
#include <resilite/monitor/event.hpp>
#include <resilite/retry/detail/retry_state.hpp>
#include <resilite/sqlite/transaction.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>

namespace resilite {

template <class Db>
class basic_savepoint;

template <class Db>
class basic_transaction : public detail::statement_api<basic_transaction<Db>, typename Db::schema_type> {
    using flow_type = typename Db::flow_type;

public:
    using time_point = typename Db::time_point;

    // Made by Database::transaction(f) and Database::begin() from a successful BEGIN.
    basic_transaction(Db& db, detail::transaction_parts<flow_type>&& parts)
        : db_(&db),
          flow_(parts.flow),
          lock_(std::move(parts.lock)),
          pass_(std::move(parts.pass)),
          tx_(std::move(parts.tx)),
          state_(parts.state),
          managed_(parts.managed),
          changes_at_start_(flow_->direct_changes()) {
        flow_->ctx().library_transaction = true;
        flow_->ctx().absorbed_failures.clear();
    }

    basic_transaction(const basic_transaction&) = delete;
    basic_transaction& operator=(const basic_transaction&) = delete;
    basic_transaction(basic_transaction&& o) noexcept
        : db_(o.db_),
          flow_(o.flow_),
          lock_(std::move(o.lock_)),
          pass_(std::move(o.pass_)),
          tx_(std::move(o.tx_)),
          state_(o.state_),
          managed_(o.managed_),
          changes_at_start_(o.changes_at_start_),
          kept_rows_(o.kept_rows_),
          reported_(std::exchange(o.reported_, true)),
          depth_(o.depth_),
          open_savepoints_(o.open_savepoints_),
          undone_rows_(o.undone_rows_),
          ended_(std::move(o.ended_)),
          ended_class_(o.ended_class_),
          open_(std::exchange(o.open_, false)),
          lost_(std::exchange(o.lost_, false)),
          owner_(o.owner_) {}
    basic_transaction& operator=(basic_transaction&&) = delete;

    // Left without commit(): rolls back (never throws) and reports it as a warning. Destroy it
    // on the thread that began it too: only that thread can release the writer lock it holds.
    ~basic_transaction() {
        tx_.abandon();
        if (!reported_) report(outcome::warning, error_class::none, "rolled back: left without commit()");
        ended_now();
        found_lost();
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
    [[nodiscard]] basic_savepoint<Db> begin_savepoint() {
        refuse_if_ended("savepoint");
        return basic_savepoint<Db>{*this};
    }

    // COMMIT; retried under the retry policy while the database is busy.
    void commit() {
        // Refused before anything is committed: the caller would be told of a failure after it.
        refuse_if_other_thread("commit");
        if (managed_) {
            throw detail::library_failure(error_class::misuse, "commit",
                                          "Database::transaction(f) commits when the function returns and rolls back "
                                          "when it throws: do not call commit() inside it",
                                          flow_->ctx().path.string());
        }
        if (open_savepoints_ > 0) {
            throw detail::library_failure(error_class::misuse, "commit",
                                          "a savepoint of this transaction is still open: release it (or return from "
                                          "savepoint(f)) before commit()",
                                          flow_->ctx().path.string());
        }
        commit_now();
    }

    // (After the end, as in a catch block after a failed commit: nothing to do.)
    void rollback() {
        refuse_if_other_thread("rollback");
        tx_.rollback();
        report(outcome::ok, error_class::none, "rolled back");
        ended_now();
        found_lost();
    }

    [[nodiscard]] bool active() const noexcept { return tx_.active(); }
    [[nodiscard]] Db& database() const noexcept { return *db_; }
    // Which attempt this is (1 for the first). Database::transaction(f) replays f when the
    // database was busy; f can use this to keep effects outside the database idempotent.
    [[nodiscard]] int attempt() const noexcept { return state_.attempt; }
    // The rows the committed transaction changed (0 before commit and after a rollback).
    [[nodiscard]] std::int64_t rows_kept() const noexcept { return kept_rows_; }

private:
    friend detail::statement_api<basic_transaction, typename Db::schema_type>;
    friend class basic_savepoint<Db>;
    friend flow_type;  // Database::transaction(f) commits through commit_now()

    void commit_now() {
        refuse_if_ended("commit");
        refuse_if_lost("commit");
        try {
            flow_->commit_with_retry(tx_, state_);
        } catch (...) {
            flow_->ctx().annotate_current(state_.start, "commit", state_.attempt);
            auto f = detail::op_failure::from_current_exception();
            if (!tx_.conn().in_transaction()) {  // SQLite rolled back already: nothing to retry
                tx_.rollback();
            }
            report(outcome::failed, f.klass, f.detail);
            throw;
        }
        ended_now();
        report(outcome::ok, error_class::none, "committed", true);
        count_absorbed_failures();
        flow_->after_commit();  // archive: drained (with flush on commit) before commit() returns
    }

    // Committed: its statements that failed, the application having caught it, are failures.
    void count_absorbed_failures() noexcept {
        auto& ctx = flow_->ctx();
        for (const auto& [klass, took] : ctx.absorbed_failures)
            ctx.counters.record(outcome::failed, klass, took);
        ctx.absorbed_failures.clear();
    }

    // No resilite transaction is open on the connection any more (context::library_transaction).
    void ended_now() noexcept {
        if (std::exchange(open_, false)) flow_->ctx().library_transaction = false;
    }
    // Ended inside SQLite while this object still holds the writer lock (context::transaction_lost),
    // and the application ending it.
    void lost_now() noexcept {
        lost_ = true;
        flow_->ctx().transaction_lost = true;
    }
    void found_lost() noexcept {
        if (std::exchange(lost_, false)) flow_->ctx().transaction_lost = false;
    }

    // The statement hook: one attempt; the transaction decides about retries. A statement may
    // end the transaction inside SQLite (a trigger's RAISE(ROLLBACK), INSERT OR ROLLBACK, an
    // error SQLite rolls back for, the user's own ROLLBACK; a COMMIT is refused by the commit
    // hook, which rolls back): the transaction has then ended, and every later statement would
    // run in autocommit, outside it.
    template <class F, class Rows>
    auto run(std::string_view name, F&& f, Rows&& rows_of) {
        refuse_if_ended(name);
        refuse_if_lost(name);
        auto& ctx = flow_->ctx();
        auto& conn = tx_.conn();
        try {
            auto result = [&] {
                detail::user_statement_scope scope{ctx.user_statement_in_transaction, true};
                return flow_->run_in_transaction(name, std::forward<F>(f), std::forward<Rows>(rows_of));
            }();
            if (conn.in_transaction()) [[likely]] return result;
        } catch (const error& e) {
            if (conn.in_transaction()) throw;
            if (e.technical().extended_code == SQLITE_CONSTRAINT_COMMITHOOK)  // the user's COMMIT or END
                ended_by_statement(name,
                                   resilite::detail::format("a statement ({}) tried to commit it", name));
            tx_.ended_by_sqlite();
            ended_now();
            lost_now();
            ended_ = resilite::detail::format(
                "it was rolled back by SQLite when {} failed ({}): nothing of it is committed", name,
                e.what());
            ended_class_ = error_class::aborted;
            report(outcome::failed, error_class::aborted, ended_);
            throw;
        }
        // The statement succeeded and ended the transaction: a ROLLBACK (a COMMIT or END is
        // refused, rolled back, and failed above).
        ended_by_statement(name, resilite::detail::format("a statement ({}) ended it", name));
    }

    // A statement the thread ran through the Database (it joins this transaction) ended it.
    void refuse_if_lost(std::string_view name) {
        if (tx_.conn().in_transaction()) [[likely]] return;
        ended_by_statement(name, "a statement run through the Database on this thread ended it");
    }

    [[noreturn]] void ended_by_statement(std::string_view name, std::string_view what) {
        tx_.ended_by_sqlite();
        ended_now();
        lost_now();
        ended_ = resilite::detail::format(
            "{}, and it was rolled back: use commit() and rollback(), not COMMIT, END or ROLLBACK "
            "statements",
            what);
        ended_class_ = error_class::misuse;
        report(outcome::failed, error_class::misuse, ended_);
        throw detail::library_failure(error_class::misuse, name, ended_, flow_->ctx().path.string());
    }
    // Inside a transaction every read is on its connection (it sees the transaction's writes).
    template <class F, class Rows, class Pooled>
    auto read(std::string_view name, F&& f, Rows&& rows_of, Pooled&&) {
        return run(name, std::forward<F>(f), std::forward<Rows>(rows_of));
    }
    // Inside a transaction nothing is queued: the statement runs as any other.
    template <class F, class Rows, class Encode>
    auto write(std::string_view name, F&& f, Rows&& rows_of, Encode&&,
               detail::statement_place = detail::statement_place::write_ahead) {
        return run(name, std::forward<F>(f), std::forward<Rows>(rows_of));
    }

    // A statement on a transaction that has ended would run in autocommit, outside everything
    // the transaction promised (a written-ahead archive record among them).
    void refuse_if_ended(std::string_view operation) const {
        refuse_if_other_thread(operation);
        if (tx_.active()) [[likely]] return;
        if (!ended_.empty())
            throw detail::library_failure(ended_class_, operation,
                                          resilite::detail::format("this transaction has ended: {}", ended_),
                                          flow_->ctx().path.string());
        throw detail::library_failure(error_class::misuse, operation,
                                      "this transaction has ended (committed or rolled back): begin a new one",
                                      flow_->ctx().path.string());
    }

    // The transaction holds the Database's writer lock, which only the thread that took it may
    // release: ended on another thread, the lock stayed held and every later call waited.
    void refuse_if_other_thread(std::string_view operation) const {
        if (std::this_thread::get_id() == owner_) [[likely]] return;
        throw detail::library_failure(error_class::misuse, operation,
                                      "this transaction belongs to the thread that began it (it holds the "
                                      "Database's writer lock there): use, commit and roll it back on that thread",
                                      flow_->ctx().path.string());
    }

    // Rows count only what was kept: a rolled back transaction changed nothing.
    // A transaction run by Database::transaction(f) is reported by it, once for all attempts.
    void report(outcome o, error_class klass, std::string_view detail, bool kept = false) noexcept {
        if (reported_) return;
        reported_ = true;
        try {
            kept_rows_ = kept ? flow_->direct_changes() - changes_at_start_ - undone_rows_ : 0;
        } catch (...) {
            kept_rows_ = 0;
        }
        if (!managed_)
            flow_->ctx().emit_since("transaction", state_.start, o, kept_rows_, klass, detail, state_.attempt);
    }

    Db* db_;
    flow_type* flow_;
    std::unique_lock<std::recursive_timed_mutex> lock_;
    typename flow_type::pass_type pass_;  // (destroyed after tx_ ends, before lock_ is released)
    sqlite::transaction tx_;
    detail::retry_state state_;
    bool managed_ = false;
    std::int64_t changes_at_start_ = 0;
    std::int64_t kept_rows_ = 0;
    bool reported_ = false;
    int depth_ = 0;            // savepoints not yet destroyed, for unique names
    int open_savepoints_ = 0;  // savepoints neither released nor rolled back
    std::int64_t undone_rows_ = 0;  // changes SQLite counted inside savepoints rolled back
    std::string ended_;  // why SQLite ended it under a statement (empty: it did not)
    error_class ended_class_ = error_class::misuse;  // the class later calls fail with then
    bool open_ = true;   // context::library_transaction is this transaction's (not moved from, not ended)
    bool lost_ = false;  // context::transaction_lost is this transaction's
    std::thread::id owner_ = std::this_thread::get_id();  // the thread holding the writer lock
};

}  // namespace resilite

#include <resilite/flow/savepoint.hpp>
