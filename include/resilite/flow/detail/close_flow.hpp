#pragma once
// The close flow, top to bottom: stop the background thread; with healing on, pass the gate
// (if another process is healing or healed the file, close without a checkpoint, keeping the
// side files, which are the healed database's; if damage was seen and not healed, close the
// same way and record it in the sidecar for the next open to heal); drain the archive, run a
// TRUNCATE checkpoint (so the next open finds no WAL to recover), report `close`, close the
// connection, and with healing on take this process off the sidecar's list (a clean close).
// Never throws: a failed step is reported as a warning and left to the next open.

#include <resilite/durability/detail/pragmas.hpp>
#include <resilite/flow/detail/archive_flow.hpp>
#include <resilite/flow/detail/context.hpp>
#include <resilite/flow/detail/gate_pass.hpp>
#include <resilite/flow/detail/heal_flow.hpp>
#include <resilite/flow/detail/scheduler.hpp>

#include <mutex>

namespace resilite::detail {

template <class R>
void close_flow(context<R>& ctx, archive_flow<R>& archive, scheduler<R>& schedule) noexcept {
    schedule.stop();
    std::lock_guard lock(ctx.mutex);
    ctx.readers.close();  // (before the last checkpoint: no read holds the WAL)
    if (!ctx.conn) return;
    const auto start = ctx.now();
    gate_pass<R> pass;
    if constexpr (R::healing::enabled) {
        // Another process is healing, or healed, the database: the file this connection has open
        // is (or will be) quarantined, and the side files at the path are the healed database's.
        // No checkpoint, and the -wal stays (SQLite removes it by name).
        bool replaced = false;
        try {
            pass = gate_pass<R>{ctx, archive, gate_pass<R>::on_replaced::ignore};
            replaced = file_replaced(ctx);
        } catch (...) {
            replaced = true;
        }
        if (replaced) {
            archive.stop();
            close_leaving_files(ctx);
            pass.leave();
            ctx.emit_since("close", start, outcome::warning, 0, error_class::none,
                           "another process is healing or healed the file: closed without a checkpoint");
            if (ctx.on_disk() && !ctx.read_only) register_close(ctx.path);
            return;
        }
    }
    if constexpr (R::healing::enabled) {
        // Damage seen and not healed yet: no checkpoint into the damaged file, and the sidecar
        // keeps what was seen, so that the next open heals it.
        if (ctx.heal_due.load() && ctx.on_disk() && !ctx.read_only) {
            archive.drain_quietly(true);
            archive.stop();
            close_leaving_files(ctx);
            pass.leave();
            ctx.emit_since("close", start, outcome::warning, 0, error_class::corrupt,
                           "damage seen and not healed yet: closed without a checkpoint; the next open heals it");
            register_close(ctx.path, ctx.damage());
            return;
        }
    }
    // A transaction begun by a BEGIN or SAVEPOINT statement (exec) and never ended: closing
    // rolls it back. Said plainly (its statements were acknowledged one by one), and rolled back
    // first, so that the drain and the checkpoint do not run inside it.
    std::string rolled_back;
    if (ctx.conn->in_transaction()) {
        try {
            rolled_back =
                "a transaction begun with a BEGIN or SAVEPOINT statement was still open: closing rolled it back, "
                "and nothing written in it is committed (end it with COMMIT or RELEASE, or use transaction())";
            ctx.conn->exec_script("ROLLBACK");
        } catch (...) {  // (sqlite3_close rolls it back anyway)
        }
    }
    archive.drain_quietly(true);
    try {
        const auto r = checkpoint(*ctx.conn, checkpoint_mode::truncate);
        if (!rolled_back.empty()) {
            ctx.emit_since("close", start, outcome::warning, 0, error_class::aborted,
                           r.complete ? rolled_back : rolled_back + "; final checkpoint incomplete");
        } else {
            ctx.emit_since("close", start, r.complete ? outcome::ok : outcome::warning, 0, error_class::none,
                           r.complete ? "" : "final checkpoint incomplete");
        }
    } catch (...) {
        try {
            auto f = op_failure::from_current_exception();
            ctx.emit_since("close", start, outcome::warning, 0, f.klass, f.detail);
        } catch (...) {  // nothing more to report with
        }
    }
    ctx.drop_connection();
    pass.leave();  // (before the heal lock: core/detail/file_gate.hpp)
    if constexpr (R::healing::enabled) {
        if (ctx.on_disk() && !ctx.read_only) register_close(ctx.path);
    }
}

}  // namespace resilite::detail
