#pragma once
// How an operation enters the database with healing<> on: through the gate (no heal of any
// process runs meanwhile; core/detail/file_gate.hpp), then a look at the file at the path: if
// another process healed, restored or replaced it, the Database reopens it before the operation
// touches anything, so that no write goes into a quarantined file.

#include <resilite/core/detail/op_failure.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/flow/detail/archive_flow.hpp>
#include <resilite/flow/detail/connect.hpp>
#include <resilite/flow/detail/context.hpp>
#include <resilite/sqlite/detail/marker.hpp>

#include <fmt/format.h>

#include <sqlite3.h>

#include <mutex>
#include <string_view>
#include <type_traits>
#include <utility>

namespace resilite::detail {

// Closes the connection without a checkpoint and without removing the -wal: on a damaged file a
// checkpoint would write into what is about to be quarantined, and after another process's heal
// the side files at the path belong to the healed database (SQLite removes them by name).
template <class R>
void close_leaving_files(context<R>& ctx) noexcept {
    ctx.readers.close();
    if (!ctx.conn) return;
    int on = 1;
    sqlite3_file_control(ctx.conn->native_handle(), "main", SQLITE_FCNTL_PERSIST_WAL, &on);
    sqlite3_db_config(ctx.conn->native_handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    ctx.conn.reset();
}

// The file at the path is not the one this Database has open: another process healed (or
// restored, or replaced) it. Reopen, as a reconnect would: a healed database is taken up, a
// foreign or damaged one refused (the next calls say why). The caller holds the writer lock and
// no transaction is open.
template <class R>
void follow_replaced_file(context<R>& ctx, archive_flow<R>& archive) {
    const auto start = ctx.now();
    archive.stop();
    close_leaving_files(ctx);  // the -wal and -shm at the path are the new database's now
    reconnect(ctx);
    if (!ctx.conn) {
        ctx.emit_since("reopen", start, outcome::failed, 0, ctx.broken ? ctx.broken->klass() : error_class::cant_open,
                       ctx.broken ? ctx.broken->what() : "the database at the path could not be opened");
        return;
    }
    ctx.clear_damage();  // what was seen was in the file this Database no longer has open
    if constexpr (R::archiving) {
        try {
            archive.start(false);
        } catch (...) {
            // Never go on writing with the archive off: every call says why, as for a refused file
            // (class archive: no retry reconnects around it).
            archive.stop();
            ctx.drop_connection();
            const auto f = op_failure::from_current_exception();
            ctx.broken = library_failure(
                error_class::archive, "reopen",
                resilite::detail::format("the archive could not be started on the file at the path: {}", f.detail),
                ctx.path.string());
            ctx.emit_since("reopen", start, outcome::failed, 0, error_class::archive, ctx.broken->what());
            return;
        }
    }
    ctx.emit_since("reopen", start, outcome::warning, 0, error_class::none,
                   resilite::detail::format(
                       "the file at the path was replaced (heal epoch {}): the database there was opened "
                       "before this operation",
                       read_marker(ctx.path).heal_epoch));
}

// Another process holds the gate to heal: the database is unavailable until it lets go.
template <class R>
[[nodiscard]] error healing_elsewhere(context<R>& ctx, std::string_view more = {}) {
    const auto what = resilite::detail::format("another process is healing the database{}", more);
    ctx.note_unavailable(unavailable_reason::healing_elsewhere, "another process is healing the database");
    return library_failure(error_class::degraded, "gate", what, ctx.path.string());
}

// Held for one operation (or one transaction, or one round of maintenance); nothing without
// healing<>. The caller holds the writer lock while it makes and ends one.
template <class R>
class gate_pass {
public:
    enum class on_replaced { follow, ignore };
    enum class on_healing { degraded, busy };

    gate_pass() = default;
    // While another process heals: the database is unavailable (a `degraded` error at once,
    // docs/degradation.md), or, for open, a busy error the retry policy waits on.
    gate_pass(context<R>& ctx, archive_flow<R>& archive, on_replaced what = on_replaced::follow,
              [[maybe_unused]] on_healing when_healing = on_healing::degraded) {
        if constexpr (R::healing::enabled) {
            if (!ctx.on_disk()) return;
            if (!ctx.gate.enter(ctx.path)) {
                if (when_healing == on_healing::busy)
                    throw library_failure(error_class::busy, "gate",
                                          "another process is healing the database; opening waits for it",
                                          ctx.path.string());
                throw healing_elsewhere(ctx);
            }
            ctx.note_available("the gate is open again", unavailable_reason::healing_elsewhere);
            ctx_ = &ctx;
            try {
                if (what == on_replaced::follow && ctx.gate.depth() == 1 && !(ctx.conn && ctx.conn->in_transaction())) {
                    // Told to (a commit found the file replaced, a reconnect found it moved), or a stat says so.
                    if (std::exchange(ctx.look_at_file, false) || file_replaced(ctx)) [[unlikely]]
                        follow_replaced_file(ctx, archive);
                }
            } catch (...) {
                leave();
                throw;
            }
        } else {
            static_cast<void>(ctx);
            static_cast<void>(archive);
            static_cast<void>(what);
        }
    }
    gate_pass(const gate_pass&) = delete;
    gate_pass& operator=(const gate_pass&) = delete;
    gate_pass(gate_pass&& o) noexcept : ctx_(std::exchange(o.ctx_, nullptr)) {}
    gate_pass& operator=(gate_pass&& o) noexcept {
        if (this != &o) {
            leave();
            ctx_ = std::exchange(o.ctx_, nullptr);
        }
        return *this;
    }
    ~gate_pass() { leave(); }

    void leave() noexcept {
        if (ctx_ != nullptr) std::exchange(ctx_, nullptr)->gate.leave();
    }

private:
    context<R>* ctx_ = nullptr;
};

// For a pass held while the writer lock is not (a check, a backup, a drill run through the
// gate): at scope exit it is left under the writer lock, as it was taken.
template <class R>
struct leave_under_lock {
    context<R>& ctx;
    gate_pass<R>& pass;
    ~leave_under_lock() {
        std::lock_guard lock(ctx.mutex);
        pass.leave();
    }
};

// A single statement's way through (the lazy way, core/detail/file_gate.hpp): no lock unless it
// commits; one load of the gate's heal count (a `stat` where the gate is not mapped), and if a
// heal counted since the file was looked at (or the file at the path changed), the gate at once
// (unavailable while a heal runs), a `stat`, and the healed file reopened. The caller holds the
// writer lock. (A file replaced by hand, not by a heal, is noticed at the next commit: the
// commit hook `stat`s the path and refuses, and the retry looks at the file.)
template <class R>
class statement_pass {
public:
    statement_pass([[maybe_unused]] context<R>& ctx, [[maybe_unused]] archive_flow<R>& archive) {
        if constexpr (R::healing::enabled) {
            if (!ctx.on_disk()) return;
            if (ctx.gate.depth() == 0) {
                // The count first (one load); whether a transaction is open only when it changed.
                const auto outside = [&] { return !(ctx.conn && ctx.conn->in_transaction()); };
                const auto heals = ctx.gate.heals(ctx.path);
                if ((ctx.look_at_file || (heals ? *heals != ctx.heals_seen : outside() && file_replaced(ctx))) &&
                    outside()) [[unlikely]] {
                    eager_ = gate_pass<R>{ctx, archive};  // (nothing to undo if it throws; it clears look_at_file)
                    // Under the gate no heal counts: the count now is the one the file was seen at.
                    if (heals) {
                        ctx.heals_seen = ctx.gate.heals(ctx.path).value_or(*heals);
                        ctx.readers.heals_seen(ctx.heals_seen);
                    }
                }
            }
            ctx.gate.begin_lazy();
            ctx_ = &ctx;
        }
    }
    statement_pass(const statement_pass&) = delete;
    statement_pass& operator=(const statement_pass&) = delete;
    ~statement_pass() { leave(); }

    void leave() noexcept {
        eager_.leave();
        if (ctx_ != nullptr) std::exchange(ctx_, nullptr)->gate.end_lazy();
    }

    // Called in a catch block: a commit the gate refused is `busy` (retried), whatever SQLite
    // called it (SQLITE_CONSTRAINT_COMMITHOOK).
    void rethrow_refusal() {
        if constexpr (R::healing::enabled) {
            if (ctx_ == nullptr) return;
            using why = file_gate::refusal;
            switch (ctx_->gate.take_refusal()) {
                case why::none:
                    return;
                case why::healing:
                    throw healing_elsewhere(*ctx_, "; the commit was rolled back");
                case why::replaced:
                    ctx_->look_at_file = true;  // not counted as a heal: the retry follows the file
                    throw library_failure(error_class::busy, "gate",
                                          "another process healed or replaced the database; the commit was rolled "
                                          "back, and is retried on the database at the path",
                                          ctx_->path.string());
                case why::unusable:
                    throw library_failure(error_class::io, "gate",
                                          "the gate file " + gate_path(ctx_->path).string() + " could not be opened",
                                          ctx_->path.string());
            }
        }
    }

private:
    context<R>* ctx_ = nullptr;
    gate_pass<R> eager_;
};

// Without healing<> there is no gate: an empty stand-in, so that the operation flow costs
// nothing more.
struct no_pass {
    no_pass() = default;
    template <class Ctx, class Archive>
    no_pass(Ctx&, Archive&) noexcept {}
    void leave() noexcept {}
    void rethrow_refusal() noexcept {}
};

template <class R>
using gate_pass_for = std::conditional_t<R::healing::enabled, gate_pass<R>, no_pass>;
template <class R>
using statement_pass_for = std::conditional_t<R::healing::enabled, statement_pass<R>, no_pass>;

}  // namespace resilite::detail
