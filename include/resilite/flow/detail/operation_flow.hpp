#pragma once
// The operation flow: how every call on a Database or a transaction runs. An attempt takes the
// writer lock, sets SQLite's busy wait to what is left of the deadline, runs the statement and,
// after a commit, lets the archive take the new records. A failed attempt is classified by the
// retry policy: retried after a backoff delay (reconnecting first when the connection broke),
// or reported. Every operation emits exactly one event; every retried attempt one `retry`.

#include <resilite/core/transaction_mode.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/flow/detail/archive_flow.hpp>
#include <resilite/flow/detail/connect.hpp>
#include <resilite/flow/detail/context.hpp>
#include <resilite/flow/detail/gate_pass.hpp>
#include <resilite/flow/detail/statement_place.hpp>
#include <resilite/monitor/check_health.hpp>
#include <resilite/policy/retry.hpp>
#include <resilite/retry/detail/retry_state.hpp>
#include <resilite/sqlite/transaction.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

namespace resilite::detail {

// What an attempt to BEGIN hands to the transaction it becomes: the writer lock, held for the
// transaction's whole life, and the SQLite transaction.
template <class Flow>
struct transaction_parts {
    Flow* flow;
    std::unique_lock<std::recursive_timed_mutex> lock;
    typename Flow::pass_type pass;  // healing<>: the gate, held until the transaction ends
    sqlite::transaction tx;
    retry_state state;
    bool managed;  // run by transaction(f), which reports it once for all attempts
};

enum class retry_context {
    opening,            // the open flow: it opens the connection again itself
    reconnecting,       // nothing open: busy is retried, a broken connection reopened
    whole_transaction,  // the user's transaction is replayed from the start
    commit_only,        // COMMIT is retried while the transaction stays open
    reading,            // a read connection: a broken one is closed, the writer's is left alone
};


template <class R>
class operation_flow {
public:
    using time_point = std::chrono::steady_clock::time_point;
    using pass_type = gate_pass_for<R>;

    operation_flow(context<R>& ctx, archive_flow<R>& archive) : ctx_(ctx), archive_(archive) {}

    [[nodiscard]] context<R>& ctx() noexcept { return ctx_; }

    // One operation in autocommit mode: each attempt takes the writer lock, runs f, and on a
    // retryable failure the lock is released while the backoff delay passes.
    template <class F, class Rows>
    // `hold`: see held_failure (retry/detail/retry_state.hpp).
    auto run(std::string_view name, F&& f, Rows&& rows_of, statement_place place = statement_place::write_ahead,
             held_failure* hold = nullptr) {
        retry_state st;
        st.start = ctx_.now();
        st.hold = hold;
        for (;;) {
            ++st.attempt;
            try {
                ctx_.yield_to_backup();
                auto lock = ctx_.lock_writer(name, lock_deadline(ctx_, st));
                if (st.attempt == 1) {  // under the lock this attempt takes anyway
                    ctx_.settle_settings();  // accepted while another thread held the lock (P14)
                    load_limits(ctx_, st);
                }
                statement_pass_for<R> pass{ctx_, archive_};  // healing<>: no commit during a heal; a healed file reopened
                auto& c = ctx_.connection();
                // (Under the lock, so the transaction is this thread's.) Ended inside SQLite,
                // noticed by the transaction or not yet (a ROLLBACK run through the Database).
                // Reads too: a statement that reads can write (WITH ... INSERT ... RETURNING).
                if (ctx_.transaction_lost || (ctx_.library_transaction && !c.in_transaction())) [[unlikely]]
                    throw library_failure(error_class::aborted, name,
                                          "this thread's transaction was rolled back by SQLite (a statement in it "
                                          "failed or ended it): this statement would run on its own, outside it, "
                                          "and commit; nothing was run. End the transaction first",
                                          ctx_.path.string());
                const bool nested = c.in_transaction();  // inside the caller's transaction
                if (!nested) prepare_attempt(ctx_, st);
                // Inside this thread's resilite transaction: a COMMIT it runs is refused.
                const bool in_library_transaction = nested && ctx_.library_transaction;
                user_statement_scope user_statement{ctx_.user_statement_in_transaction, in_library_transaction};
                ctx_.inject(name, st.attempt);
                auto result = [&] {
                    if constexpr (R::archiving) {
                        // Written ahead: the statement runs inside BEGIN, its record is synced
                        // into the archive before the COMMIT.
                        if (!nested && place == statement_place::write_ahead && name != "archive" &&
                            archive_.writes_ahead()) {
                            auto in_transaction = [&](sqlite::connection& cc) {
                                return archive_.autocommit(cc, [&] { return f(cc); });
                            };
                            return call(in_transaction, c, pass);
                        }
                        const auto changes_before = sqlite3_total_changes64(c.native_handle());
                        auto r = call(f, c, pass);
                        if (!nested && sqlite3_total_changes64(c.native_handle()) != changes_before)
                            archive_.after_commit();
                        return r;
                    } else {
                        return call(f, c, pass);
                    }
                }();
                if (in_library_transaction && !c.in_transaction()) [[unlikely]] {  // a ROLLBACK (a COMMIT is refused)
                    throw library_failure(error_class::misuse, name,
                                          "the statement ended the transaction this thread holds, and it was "
                                          "rolled back: use commit() and rollback(), not COMMIT, END or ROLLBACK "
                                          "statements",
                                          ctx_.path.string());
                }
                pass.leave();
                lock.unlock();
                ctx_.emit_since(name, st.start, outcome::ok, rows_of(result), error_class::none, {}, st.attempt);
                return result;
            } catch (...) {
                // Inside this thread's own transaction, the (recursive) lock is this thread's: a
                // lock another thread holds (a heal) is not waited for here.
                const bool nested = ctx_.own_transaction_open();
                if (!nested && retry_after_failure(name, st, retry_context::reconnecting)) continue;
                if (nested) finish_failed(name, st);
                throw;
            }
        }
    }

    // A read outside a transaction (query, get, select): on a read connection when the pool is
    // open (settings().read_connections) and the calling thread is not inside its own
    // transaction, else as any operation. `pooled()`: the statement may run on a read connection
    // (asked only when there are read connections).
    template <class F, class Rows, class Pooled>
    auto run_read(std::string_view name, F&& f, Rows&& rows_of, Pooled& pooled) {
        if (ctx_.readers.enabled() && pooled() && !ctx_.own_transaction_open()) {  // (its reads see its writes)
            if (auto r = run_on_reader(name, f, rows_of)) return std::move(*r);
        }
        return run(name, std::forward<F>(f), std::forward<Rows>(rows_of));
    }

    // A statement inside a transaction: one attempt; the transaction decides about retries.
    template <class F, class Rows>
    auto run_in_transaction(std::string_view name, F&& f, Rows&& rows_of) {
        const auto start = ctx_.now();
        try {
            ctx_.inject(name, 1);
            auto result = f(ctx_.connection());
            ctx_.emit_since(name, start, outcome::ok, rows_of(result), error_class::none, {});
            return result;
        } catch (...) {
            ctx_.annotate_current(start, name);
            auto failure = op_failure::from_current_exception();
            ctx_.note_damage(failure.klass, failure.detail);
            ctx_.note_failure(failure.klass, failure.detail);
            // One failed transaction is one failure: the transaction's own event counts it (or,
            // when it commits, the statement's failure is counted then: context::absorbed_failures).
            ctx_.emit_since(name, start, outcome::failed, 0, failure.klass, failure.detail, 1, false);
            try {
                ctx_.absorbed_failures.emplace_back(failure.klass, ctx_.now() - start);
            } catch (...) {
            }
            throw;
        }
    }

    // Runs f(tx) in a transaction, replayed from the start while the database is busy.
    template <class Tx, class Owner, class F>
    decltype(auto) transaction(Owner& owner, F&& f, transaction_mode mode) {
        using Result = std::invoke_result_t<F, Tx&>;
        ctx_.settle_settings();
        auto st = start_retry(ctx_);
        for (;;) {
            ++st.attempt;
            std::optional<Tx> tx;
            try {
                tx.emplace(owner, begin_attempt(mode, st, true));
                if constexpr (std::is_void_v<Result>) {
                    std::invoke(f, *tx);
                    tx->commit_now();
                    finish_transaction(*tx, st);
                    return;
                } else {
                    Result result = std::invoke(f, *tx);
                    tx->commit_now();
                    finish_transaction(*tx, st);
                    return result;
                }
            } catch (...) {
                if (tx) {
                    st.attempt = tx->attempt();  // commit retries count as attempts
                    tx.reset();                  // rolls back, releases the writer lock
                }
                if (retry_after_failure("transaction", st, retry_context::whole_transaction)) continue;
                throw;
            }
        }
    }

    // An explicit transaction: BEGIN retried while busy.
    template <class Tx, class Owner>
    [[nodiscard]] Tx begin(Owner& owner, transaction_mode mode) {
        ctx_.settle_settings();
        auto st = start_retry(ctx_);
        for (;;) {
            ++st.attempt;
            try {
                return Tx{owner, begin_attempt(mode, st, false)};
            } catch (...) {
                if (retry_after_failure("transaction", st, retry_context::reconnecting)) continue;
                throw;
            }
        }
    }

    // COMMIT, retried while SQLite keeps the transaction open and busy (the lock stays held).
    // The archive writes the transaction's record ahead of it first (flush on commit): if it
    // cannot, nothing is committed; if the COMMIT then fails, the record is taken back.
    void commit_with_retry(sqlite::transaction& tx, retry_state& st) {
        archive_.before_commit(tx.conn());
        for (;;) {
            try {
                ctx_.inject("commit", st.attempt);
                tx.commit();
                archive_.committed();
                return;
            } catch (...) {
                if (!tx.conn().in_transaction()) {  // SQLite ended it: only a replay can help
                    archive_.cancel_pending(&tx.conn());
                    throw_if_file_gone();
                    throw;
                }
                if (commit_may_retry(st)) {
                    ++st.attempt;
                    continue;
                }
                // Given up: the record is taken back while the write lock is still held, and the
                // transaction rolled back with it, so a later commit() cannot acknowledge a
                // transaction whose record is gone.
                archive_.cancel_pending();
                tx.abandon();
                throw;
            }
        }
    }

    // After a transaction committed (the writer lock is held): the archive takes its records.
    void after_commit() noexcept { archive_.after_commit(); }
    // Rows changed on the connection so far, less the archive's own bookkeeping rows.
    [[nodiscard]] std::int64_t direct_changes() { return archive_.direct_changes(ctx_.connection()); }

    // Called from a catch block after a failed attempt. Returns true after sleeping the backoff
    // delay (and reopening the connection if it broke) when the operation should be tried
    // again; returns false to rethrow the failure as it is; throws retry_exhausted when a
    // retryable failure ran out of attempts or time. Emits the operation's failure event when it
    // gives up, and a "retry" event for every attempt it retries.
    bool retry_after_failure(std::string_view name, retry_state& st, retry_context where) {
        const error* failure = nullptr;
        try {
            throw;
        } catch (const error& e) {
            failure = &e;
        } catch (...) {
        }
        if (failure != nullptr && write_outcome_unknown(*failure, where)) {
            // Never tried again, whatever the retry policy says: each failed attempt's changes
            // could be brought back by the recovery at the reconnect, and the write applied twice.
            auto d = failure->technical();
            d.outcome_unknown = true;
            if (d.note.empty())
                d.note = "the write's outcome is unknown: its I/O failed while SQLite was making it durable, so "
                         "its changes may be in the WAL, and SQLite's recovery at the next open can bring them "
                         "back; it was not tried again (a retry could apply it twice)";
            error unknown{failure->klass(), std::move(d)};
            // A disk that could not make a write durable is suspect, as after retries that ran
            // out: unavailable (io_error), so the degradation policy takes the next calls (with
            // queue_writes, they are queued) until a probe finds it takes writes again.
            if (unknown.klass() == error_class::io && ctx_.damage().empty())
                ctx_.note_unavailable(unavailable_reason::io_error, unknown.what());
            try {
                throw unknown;
            } catch (...) {
                finish_failed(name, st);
                throw;
            }
        }
        auto scope = failure != nullptr ? retry_scope_for<typename R::retry>(*failure) : retry_scope::none;
        if (where == retry_context::commit_only && scope != retry_scope::statement) scope = retry_scope::none;
        if (scope == retry_scope::none) {
            finish_failed(name, st);
            return false;
        }
        if (scope == retry_scope::reconnect && where == retry_context::opening) {
            try {
                refuse_hopeless_open(ctx_, *failure);
            } catch (...) {
                finish_failed(name, st);  // (its event and failure, as any failed open)
                throw;
            }
        }
        const auto remaining = st.remaining(ctx_.now());
        if (st.attempt >= st.limits.max_attempts || remaining <= std::chrono::nanoseconds{0}) {
            const auto elapsed = ctx_.now() - st.start;
            technical_detail d = failure->technical();
            d.operation = std::string{name};
            d.attempt = st.attempt;
            d.elapsed = elapsed;
            d.note = resilite::detail::format(
                "gave up after {} attempt{} in {} ms (limits: {} attempts, {} ms)", st.attempt,
                st.attempt == 1 ? "" : "s",
                std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count(),
                st.limits.max_attempts, st.limits.deadline.count());
            error exhausted{error_class::retry_exhausted, std::move(d), *failure};
            ctx_.emit_since(name, st.start, outcome::failed, 0, exhausted.klass(), exhausted.what(), st.attempt);
            if constexpr (R::healing::enabled) {
                // An I/O error that outlasted every retry: damage if the file fails a quick_check
                // (a heal follows); an unreachable volume or a permission is not damage.
                if (failure->klass() == error_class::io && ctx_.on_disk()) {
                    const auto h = check_health(ctx_.path, check_level::quick);
                    if (h.result == health_report::finding::corrupt || h.result == health_report::finding::not_a_database)
                        ctx_.note_damage(
                            error_class::corrupt,
                            resilite::detail::format(
                                "a persistent I/O error ({}), and the file fails its quick_check: {}",
                                failure->technical().code_name, h.detail));
                }
            }
            if (failure->klass() == error_class::io && ctx_.damage().empty())
                ctx_.note_unavailable(unavailable_reason::io_error, exhausted.what());
            throw exhausted;
        }
        back_off(name, st, *failure, remaining);
        if (scope == retry_scope::reconnect && where != retry_context::commit_only &&
            where != retry_context::opening && where != retry_context::reading)
            reconnect(ctx_);
        return true;
    }

    // Whether a failure leaves a write's outcome unknown (technical_detail::outcome_unknown): a
    // COMMIT's I/O error (sqlite::transaction says so), or, for a statement in autocommit, an I/O
    // error while writing or syncing (its implicit COMMIT). A read's I/O error, or one at open,
    // changed nothing and is retried as the policy says.
    [[nodiscard]] static bool write_outcome_unknown(const error& e, retry_context where) noexcept {
        if (e.technical().outcome_unknown) return true;
        if (e.klass() != error_class::io || where != retry_context::reconnecting) return false;
        switch (e.technical().extended_code) {
            case SQLITE_IOERR_WRITE:
            case SQLITE_IOERR_FSYNC:
            case SQLITE_IOERR_DIR_FSYNC:
            case SQLITE_IOERR_TRUNCATE:
                return true;
            default:
                return false;
        }
    }

    // A failure held for the caller (held_failure), reported after all: its one event (which
    // counts it in health()).
    void report_held(std::string_view name, const held_failure& h) {
        if (h.held) ctx_.emit_since(name, h.start, outcome::failed, 0, h.klass, h.detail, h.attempts);
    }

    // Reports a failure that is not retried (or no longer): annotated error, one failure event.
    void finish_failed(std::string_view name, const retry_state& st) {
        ctx_.annotate_current(st.start, name, std::max(st.attempt, 1));
        auto failure = op_failure::from_current_exception();
        ctx_.note_damage(failure.klass, failure.detail);
        ctx_.note_failure(failure.klass, failure.detail);
        if (st.hold != nullptr && (failure.klass == error_class::degraded || failure.klass == error_class::full ||
                                   failure.klass == error_class::read_only)) {
            *st.hold = {true, failure.klass, std::move(failure.detail), st.start, std::max(st.attempt, 1)};
            return;
        }
        ctx_.emit_since(name, st.start, outcome::failed, 0, failure.klass, failure.detail, std::max(st.attempt, 1));
    }

    // One backoff step: draws the delay (never past the deadline), counts the retry, reports the
    // failed attempt as a "retry" event and sleeps.
    void back_off(std::string_view name, retry_state& st, const error& failure, std::chrono::nanoseconds remaining) {
        std::chrono::nanoseconds delay;
        {
            std::lock_guard lock(ctx_.rng_mutex);
            delay = std::clamp(retry_delay_for<typename R::retry>(st.limits, st.attempt, st.previous_delay, ctx_.rng),
                               std::chrono::nanoseconds{0}, remaining);
        }
        st.previous_delay = delay;
        ++ctx_.retries;
        ctx_.emit_since(
            "retry", ctx_.now(), outcome::warning, 0, failure.klass(),
            resilite::detail::format("{} attempt {} failed with {}; next attempt in {} us", name, st.attempt,
                                     failure.technical().code_name,
                                     std::chrono::duration_cast<std::chrono::microseconds>(delay).count()),
            st.attempt);
        ctx_.clock.sleep_for(delay);
    }

private:
    // One read on a read connection, retried as run() retries (limits: the published settings;
    // no writer lock is taken). Nothing: the writer connection must run it, because the pool is
    // closed, the file at the path changed, or the read connection refused the statement (it
    // writes: SQLITE_READONLY; it names what only the writer connection has, a function
    // registered on it: SQLITE_ERROR, the temp schema: SQLITE_AUTH; the writer's own run
    // reports a real error then).
    template <class F, class Rows>
    auto run_on_reader(std::string_view name, F& f, Rows& rows_of)
        -> std::optional<std::invoke_result_t<F&, sqlite::connection&>> {
        ctx_.settle_settings();
        retry_state st;
        st.start = ctx_.now();
        bool limits = false;
        for (;;) {
            ++st.attempt;
            auto lease = ctx_.readers.take();
            if (!lease) {
                if (auto why = ctx_.readers.take_failure(); !why.empty())
                    ctx_.emit_since("read_connection", ctx_.now(), outcome::warning, 0,
                                    error_class::cant_open,
                                    resilite::detail::format(
                                        "a read connection could not be opened ({}); reads use the writer "
                                        "connection until it is reopened",
                                        why));
                return std::nullopt;
            }
            bool ran = false;
            try {
                if (st.attempt > 1)
                    lease->busy_timeout(std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                       st.remaining(ctx_.now())),
                                                   std::chrono::milliseconds{0}, st.busy_timeout));
                ctx_.inject(name, st.attempt);
                ran = true;
                auto result = f(lease->connection());
                lease.reset();  // (given back before the observer runs)
                ctx_.emit_since(name, st.start, outcome::ok, rows_of(result), error_class::none, {}, st.attempt);
                return result;
            } catch (...) {
                const int primary = current_primary_code();
                const bool writers =
                    ran && (primary == SQLITE_READONLY || primary == SQLITE_ERROR || primary == SQLITE_AUTH);
                // (A connection that failed otherwise may be unusable: closed, a new one next time.)
                if (!writers && primary != SQLITE_BUSY && primary != SQLITE_LOCKED) lease->discard();
                lease.reset();
                if (writers) return std::nullopt;
                if (!limits) {
                    std::lock_guard p(ctx_.published_mutex);
                    load_limits(ctx_.published, st);
                    limits = true;
                }
                if (retry_after_failure(name, st, retry_context::reading)) continue;
                throw;
            }
        }
    }

    // In a catch block: SQLite's primary result code of the failure (0: not from SQLite).
    [[nodiscard]] static int current_primary_code() noexcept {
        try {
            throw;
        } catch (const error& e) {
            return e.technical().extended_code & 0xff;
        } catch (...) {
            return 0;
        }
    }

    template <class F>
    auto call(F& f, sqlite::connection& c, [[maybe_unused]] statement_pass_for<R>& pass) -> decltype(f(c)) {
        try {
            return f(c);
        } catch (...) {
            pass.rethrow_refusal();
            throw_if_file_gone();
            throw;
        }
    }

    // Without healing<>, a commit the hook refused because the file at the path is not the one
    // open (flow/detail/connect.hpp): what SQLite calls a constraint is said plainly, and the
    // database is unavailable (a reconnect by the retry policy may find it again; a check that
    // finds it sound ends that).
    void throw_if_file_gone() {
        if (!std::exchange(ctx_.file_gone, false)) return;
        const auto what = resilite::detail::format(
            "the database file {} was removed, renamed or replaced since it was opened: "
            "the commit was rolled back (committed into that file, it would be lost with it)",
            ctx_.path.string());
        ctx_.note_unavailable(unavailable_reason::damaged, what);
        throw library_failure(error_class::cant_open, "commit", what, ctx_.path.string());
    }

    // One attempt to BEGIN; what it returns holds the writer lock.
    transaction_parts<operation_flow> begin_attempt(transaction_mode mode, retry_state& st, bool managed) {
        ctx_.yield_to_backup();
        auto lock = ctx_.lock_writer("begin", lock_deadline(ctx_, st));
        if (st.attempt == 1) ctx_.settle_settings();  // (pending while another thread held the lock)
        pass_type pass{ctx_, archive_};
        if (!ctx_.conn)
            throw library_failure(error_class::cant_open, "begin", "no open connection", ctx_.path.string());
        prepare_attempt(ctx_, st);
        ctx_.inject("begin", st.attempt);
        sqlite::transaction tx{ctx_.connection(), mode};
        return {this, std::move(lock), std::move(pass), std::move(tx), st, managed};
    }

    template <class Tx>
    void finish_transaction(const Tx& tx, const retry_state& st) {
        ctx_.emit_since("transaction", st.start, outcome::ok, tx.rows_kept(), error_class::none, "committed",
                        tx.attempt());
    }

    // For COMMIT: sleeps and returns true when a busy COMMIT may be tried again; the caller
    // reports the final failure.
    bool commit_may_retry(retry_state& st) {
        try {
            throw;
        } catch (const error& e) {
            if (retry_scope_for<typename R::retry>(e) != retry_scope::statement) return false;
            const auto remaining = st.remaining(ctx_.now());
            if (st.attempt >= st.limits.max_attempts || remaining <= std::chrono::nanoseconds{0}) return false;
            back_off("commit", st, e, remaining);
            return true;
        } catch (...) {
            return false;
        }
    }

    context<R>& ctx_;
    archive_flow<R>& archive_;
};

}  // namespace resilite::detail
