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
          reported_(std::exchange(o.reported_, true)) {}
    basic_savepoint& operator=(basic_savepoint&&) = delete;

    ~basic_savepoint() {
        if (tx_ == nullptr) return;  // moved from
        sp_.abandon();
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
          changes_at_start_(tx.flow_->direct_changes()) {
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
    void finish(F&& step, std::string_view operation, std::string_view done, bool kept) {
        tx_->refuse_if_other_thread(operation);
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
        auto& flow = *tx_->flow_;
        std::int64_t rows = 0;
        try {
            rows = kept ? flow.direct_changes() - changes_at_start_ : 0;
        } catch (...) {
        }
        flow.ctx().emit_since("savepoint", start_, o, rows, klass, detail);
    }

    basic_transaction<Db>* tx_;
    sqlite::savepoint sp_;
    typename Db::time_point start_;
    std::int64_t changes_at_start_ = 0;
    bool reported_ = false;
};

}  // namespace resilite
