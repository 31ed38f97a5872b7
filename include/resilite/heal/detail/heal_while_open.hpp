#pragma once
// Healing while a Database is open: its own heal (db.heal(), or damage seen at run time), and a
// file another process healed or replaced (core/detail/gate_pass.hpp). The caller holds the writer lock.

#include <resilite/archive/detail/archive_flow.hpp>
#include <resilite/core/detail/connect.hpp>
#include <resilite/core/detail/context.hpp>
#include <resilite/core/detail/gate_pass.hpp>
#include <resilite/heal/detail/heal_flow.hpp>
#include <resilite/heal/heal_report.hpp>

#include <fmt/format.h>

#include <string>
#include <utility>

namespace resilite::detail {

// Without a checkpoint, and keeping the -wal (core/detail/gate_pass.hpp).
template <class R>
void let_go_if_open(context<R>& ctx, archive_flow<R>& archive) noexcept {
    archive.stop();
    close_leaving_files(ctx);
}

// A heal while the Database is open (db.heal(), or the next call after damage was seen): the
// flow runs, closing the archive writer and the connection once it holds the gate, and the healed database is
// opened again as a reconnect would (no file created, identity verified). The caller holds the
// writer lock.
template <class R>
heal_report heal_while_open(context<R>& ctx, archive_flow<R>& archive, heal_flow<R>& flow, std::string detected_by) {
    if (ctx.gate.depth() > 0 || (ctx.conn && ctx.conn->in_transaction())) {
        throw library_failure(error_class::misuse, "heal",
                              "a heal cannot run inside a transaction or an operation of the same Database; call "
                              "heal() after it ends",
                              ctx.path.string());
    }
    auto found = ctx.damage();
    if (found.empty()) found = "a heal was asked for";
    // Once the heal holds the gate (no operation of any process runs): what the outbox holds,
    // whichever process committed it, reaches the archive if it can; then the connection closes.
    const auto let_go = [&] {
        archive.drain_quietly(true);
        let_go_if_open(ctx, archive);
    };
    heal_report report;
    try {
        report = flow.run(std::move(found), std::move(detected_by), let_go);
    } catch (const error& e) {
        let_go_if_open(ctx, archive);
        ctx.broken = e;  // every call says why there is no database, until a heal succeeds
        throw;
    }
    try {
        open_connection(ctx, start_retry(ctx), false);
        verify_identity(ctx);
    } catch (const error& e) {
        ctx.conn.reset();  // never left open on a file that failed its checks
        ctx.broken = e;
        throw;
    }
    ctx.broken.reset();
    ctx.clear_damage();
    if constexpr (R::archiving) archive.start(false);
    return report;
}

}  // namespace resilite::detail
