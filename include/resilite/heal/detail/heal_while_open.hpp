#pragma once
// Healing while a Database is open: its own heal (db.heal(), or damage seen at run time), and a
// file another process healed or replaced. The caller holds the writer lock.

#include <resilite/archive/detail/archive_flow.hpp>
#include <resilite/core/detail/connect.hpp>
#include <resilite/core/detail/context.hpp>
#include <resilite/core/detail/marker.hpp>
#include <resilite/heal/detail/heal_flow.hpp>
#include <resilite/heal/heal_report.hpp>

#include <fmt/format.h>

#include <sqlite3.h>

#include <string>
#include <utility>

namespace resilite::detail {

// Closes the connection without a checkpoint and without removing the -wal: on a damaged file a
// checkpoint would write into what is about to be quarantined, and after another process's heal
// the side files at the path belong to the healed database (SQLite removes them by name).
template <class R>
void close_leaving_files(context<R>& ctx) noexcept {
    if (!ctx.conn) return;
    int on = 1;
    sqlite3_file_control(ctx.conn->native_handle(), "main", SQLITE_FCNTL_PERSIST_WAL, &on);
    sqlite3_db_config(ctx.conn->native_handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    ctx.conn.reset();
}

// A heal while the Database is open (db.heal(), or the next call after damage was seen): the
// archive writer and the connection are closed, the flow runs, and the healed database is
// opened again as a reconnect would (no file created, identity verified). The caller holds the
// writer lock.
template <class R>
heal_report heal_while_open(context<R>& ctx, archive_flow<R>& archive, heal_flow<R>& flow, std::string detected_by) {
    auto found = ctx.damage();
    if (found.empty()) found = "a heal was asked for";
    archive.drain_quietly(true);  // what the outbox still holds reaches the archive if it can
    archive.stop();
    close_leaving_files(ctx);
    heal_report report;
    try {
        report = flow.run(std::move(found), std::move(detected_by));
    } catch (const error& e) {
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

// The file at the path is not the one this Database has open: another process healed (or
// restored, or replaced) it. Reopen before the next operation, as a reconnect would: a healed
// database is taken up, a foreign or damaged one refused (the next calls say why). The caller
// holds the writer lock and no transaction is open.
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
    if constexpr (R::archiving) archive.start(false);
    ctx.emit_since("reopen", start, outcome::warning, 0, error_class::none,
                   fmt::format("the file at the path was replaced (heal epoch {}): the database there was opened "
                               "before this operation",
                               read_marker(ctx.path).heal_epoch));
}

}  // namespace resilite::detail
