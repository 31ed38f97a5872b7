#pragma once
// resilite::basic_savepoint<Db>: a savepoint inside a transaction (tx.savepoint(f) or
// tx.begin_savepoint()). Each savepoint is one operation: it emits one event when it ends.

#include <resilite/core/detail/op_failure.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/flow/transaction.hpp>
#include <resilite/monitor/event.hpp>
#include <resilite/sqlite/savepoint.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <string_view>
#include <utility>

namespace resilite {

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
          total_at_start_(o.total_at_start_),
          undone_at_start_(o.undone_at_start_),
          level_(o.level_),
          reported_(std::exchange(o.reported_, true)) {}
    basic_savepoint& operator=(basic_savepoint&&) = delete;

    ~basic_savepoint() {
        if (tx_ == nullptr) return;  // moved from
        const bool was_open = sp_.active();
        sp_.abandon();
        if (was_open) ended(false);
        if (!reported_) report(outcome::warning, error_class::none, "rolled back: left without release()");
        --tx_->depth_;
    }

    void release() {
        finish([this] { sp_.release(); }, "release", "released", true);
    }
    void rollback() {
        finish([this] { sp_.rollback(); }, "rollback", "rolled back", false);
    }

    [[nodiscard]] bool active() const noexcept { return sp_.active(); }

private:
    friend class basic_transaction<Db>;

    explicit basic_savepoint(basic_transaction<Db>& tx)
        : tx_(&tx),
          sp_(tx.flow_->ctx().connection(), resilite::detail::format("resilite_sp_{}", tx.depth_ + 1)),
          start_(tx.flow_->ctx().now()),
          changes_at_start_(tx.flow_->direct_changes()),
          total_at_start_(tx.flow_->ctx().connection().total_changes()),
          undone_at_start_(tx.undone_rows_),
          level_(tx.open_savepoints_ + 1) {
        ++tx_->depth_;
        ++tx_->open_savepoints_;
    }

    // Rows changed inside this savepoint and not undone by a savepoint within it.
    [[nodiscard]] std::int64_t rows_inside() const {
        return tx_->flow_->direct_changes() - changes_at_start_ - (tx_->undone_rows_ - undone_at_start_);
    }

    // The savepoint stopped being open: released (its rows stay the transaction's) or undone.
    // Undone, every change SQLite counted inside it is taken off the transaction's count (the
    // archive's outbox rows too: they are gone, and the count of them no longer subtracts them).
    void ended(bool kept) noexcept {
        --tx_->open_savepoints_;
        if (kept) return;
        try {
            tx_->undone_rows_ += tx_->flow_->ctx().connection().total_changes() - total_at_start_ -
                                 (tx_->undone_rows_ - undone_at_start_);
        } catch (...) {
        }
    }

    // Runs f; on exception undoes the savepoint, reports the failure and rethrows.
    template <class F>
    decltype(auto) guard(F&& f) {
        try {
            return f();
        } catch (...) {
            auto failure = detail::op_failure::from_current_exception();
            const bool was_open = sp_.active();
            try {
                sp_.rollback();
            } catch (...) {  // the destructor retries without throwing
            }
            if (was_open && !sp_.active()) ended(false);
            report(outcome::failed, failure.klass, failure.detail);
            throw;
        }
    }

    // Ends the savepoint with `step` and reports how that went.
    template <class F>
    void finish(F&& step, std::string_view operation, std::string_view done, bool kept) {
        tx_->refuse_if_other_thread(operation);
        // Savepoints nest: ending this one while one begun after it is open would release that
        // one too (RELEASE) and leave it a name SQLite no longer knows, its rows committed even
        // after its rollback() failed.
        if (sp_.active() && tx_->open_savepoints_ != level_) {
            throw detail::library_failure(
                error_class::misuse, operation,
                resilite::detail::format("a savepoint begun after this one is still open: release or roll back "
                                         "that one first (savepoints end in the reverse order they began)"),
                tx_->flow_->ctx().path.string());
        }
        const bool was_open = sp_.active();
        try {
            step();
        } catch (...) {
            if (was_open && !sp_.active()) ended(false);
            auto f = detail::op_failure::from_current_exception();
            report(outcome::failed, f.klass, f.detail);
            throw;
        }
        const auto rows = kept ? rows_inside() : 0;
        if (was_open) ended(kept);
        report(outcome::ok, error_class::none, done, rows);
    }

    void report(outcome o, error_class klass, std::string_view detail, std::int64_t rows = 0) noexcept {
        if (reported_) return;
        reported_ = true;
        tx_->flow_->ctx().emit_since("savepoint", start_, o, rows, klass, detail);
    }

    basic_transaction<Db>* tx_;
    sqlite::savepoint sp_;
    typename Db::time_point start_;
    std::int64_t changes_at_start_ = 0;
    std::int64_t total_at_start_ = 0;   // the connection's total_changes() when this one began
    std::int64_t undone_at_start_ = 0;  // the transaction's undone_rows_ when this one began
    int level_ = 0;                     // this savepoint's place among the open ones (1: outermost)
    bool reported_ = false;
};

}  // namespace resilite
