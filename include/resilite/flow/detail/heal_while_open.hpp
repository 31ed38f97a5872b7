#pragma once
// Healing while a Database is open: its own heal (db.heal(), or damage seen at run time), and a
// file another process healed or replaced (flow/detail/gate_pass.hpp). The caller holds the writer lock.

#include <resilite/detail/format.hpp>
#include <resilite/flow/detail/archive_flow.hpp>
#include <resilite/flow/detail/connect.hpp>
#include <resilite/flow/detail/context.hpp>
#include <resilite/flow/detail/gate_pass.hpp>
#include <resilite/flow/detail/heal_flow.hpp>
#include <resilite/heal/heal_report.hpp>

#include <fmt/format.h>

#include <exception>
#include <optional>
#include <string>
#include <utility>

namespace resilite::detail {

// Without a checkpoint, and keeping the -wal (flow/detail/gate_pass.hpp).
template <class R>
void let_go_if_open(context<R>& ctx, archive_flow<R>& archive) noexcept {
    archive.stop();
    close_leaving_files(ctx);
}

// A heal while the Database is open (db.heal(), or the next call after damage was seen). Once
// the heal holds the gate (no operation of any process runs), the archive takes what the outbox
// holds, whichever process committed it, and the connection closes; after the heal, and still
// under the gate, the healed database is opened again as a reconnect would (no file created,
// identity verified). The caller holds the writer lock.
template <class R>
heal_report heal_while_open(context<R>& ctx, archive_flow<R>& archive, heal_flow<R>& flow, std::string detected_by) {
    if (ctx.gate.depth() > 0 || (ctx.conn && ctx.conn->in_transaction())) {
        throw library_failure(error_class::misuse, "heal",
                              "a heal cannot run while this Database is inside a transaction or another operation "
                              "(another thread's backup or drill); call heal() after it ends",
                              ctx.path.string());
    }
    auto found = ctx.damage();
    if (found.empty()) found = heal_asked_for;
    // Unavailable while it runs: other threads' calls fail at once (or are served or queued, by
    // the degradation policy) rather than wait for the writer lock the heal holds.
    ctx.note_unavailable(unavailable_reason::healing,
                         resilite::detail::format("a heal is running in this process ({})", found));
    std::optional<error> reopen_failure;
    std::exception_ptr archive_failure;
    typename heal_flow<R>::open_database db;
    db.epoch_seen = ctx.heal_epoch;
    db.let_go = [&] {
        // (A file another process healed meanwhile took its outbox into quarantine with it.)
        if (!file_replaced(ctx)) archive.drain_quietly(true);
        let_go_if_open(ctx, archive);
    };
    db.take_up = [&] {
        try {
            ctx.inject("heal:reopen", 1);
            open_connection(ctx, start_retry(ctx), false);
            verify_identity(ctx);
            open_readers(ctx);
        } catch (const error& e) {
            ctx.drop_connection();  // never left open on a file that failed its checks
            reopen_failure = e;
            return;
        }
        if constexpr (R::archiving) {
            try {
                archive.start(false);
            } catch (...) {
                archive_failure = std::current_exception();
            }
        }
    };
    heal_report report;
    try {
        report = flow.run(std::move(found), std::move(detected_by), db);
    } catch (const error& e) {
        let_go_if_open(ctx, archive);
        ctx.broken = e;  // every call says why there is no database, until a heal succeeds
        ctx.note_unavailable(unavailable_reason::damaged,
                             resilite::detail::format("the heal failed: {}", e.what()));
        if (e.klass() == error_class::aborted) {  // the sound database was put back: open it again
            db.take_up();
            if (!reopen_failure) {
                ctx.broken.reset();
                ctx.clear_damage();
            }
        }
        throw;
    }
    if (reopen_failure) {
        ctx.broken = *reopen_failure;
        ctx.note_unavailable(
            unavailable_reason::damaged,
            resilite::detail::format("the healed database could not be opened: {}", reopen_failure->what()));
        throw *reopen_failure;
    }
    ctx.broken.reset();
    ctx.clear_damage();
    if (archive_failure) std::rethrow_exception(archive_failure);
    return report;
}

}  // namespace resilite::detail
