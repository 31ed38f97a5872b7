#pragma once
// The open flow, top to bottom:
//   1. refuse at once what no retry can cure: invalid settings, a missing directory or a name
//      too long for the side files; with healing on, heal a file whose header or WAL is
//      damaged (or whose heal was interrupted), or that fails a quick_check after an unclean
//      close; refuse one that is still damaged;
//   2. in one retried loop (another process may hold the write lock at any step; with healing
//      on, this holds the gate, so that no other process heals meanwhile, and SQLite meeting
//      damage here, or a database behind its archive (commits the file lost), heals, once,
//      before the loop starts again):
//      a. open the connection: WAL and the synchronous level, both read back;
//      b. verify the identity: the file is the database resilite keeps at this path;
//      c. schema: declared schema for a new database, pending migrations, schema sync;
//      d. stamp the identity (first open) and write the sidecar;
//      e. start the archive: capture triggers, schema records, what a crash left in the outbox;
//      f. settings().read_connections: open the read pool on the file verified in b.;
//   3. with healing on, list this process in the sidecar (a clean close takes it off: a process
//      listed and gone means an unclean close, and the next open runs a quick_check); schedule
//      the periodic work, report `open`, start the background thread.

#include <resilite/detail/format.hpp>
#include <resilite/flow/detail/archive_flow.hpp>
#include <resilite/flow/detail/backup_flow.hpp>
#include <resilite/flow/detail/connect.hpp>
#include <resilite/flow/detail/context.hpp>
#include <resilite/flow/detail/gate_pass.hpp>
#include <resilite/flow/detail/heal_flow.hpp>
#include <resilite/flow/detail/operation_flow.hpp>
#include <resilite/flow/detail/scheduler.hpp>
#include <resilite/flow/detail/schema_setup.hpp>

#include <mutex>
#include <optional>
#include <string>

namespace resilite::detail {

// In a catch block: what SQLite said when the failure is damage it found (SQLITE_CORRUPT,
// SQLITE_NOTADB); nothing for anything else, resilite's own refusals included (another
// database at the path is not damage to heal).
[[nodiscard]] inline std::optional<std::string> sqlite_damage() {
    try {
        throw;
    } catch (const error& e) {
        const int primary = e.technical().extended_code & 0xff;
        if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) return std::string{e.what()};
    } catch (...) {
    }
    return std::nullopt;
}

template <class R, class Owner>
void open_flow(Owner& owner, context<R>& ctx, operation_flow<R>& flow, schema_setup<R>& schema,
               archive_flow<R>& archive, backup_flow<R>& backups, heal_flow<R>& heal, scheduler<R>& schedule) {
    auto st = start_retry(ctx);
    for (;;) {  // 1.
        ++st.attempt;
        try {
            refuse_invalid(ctx, ctx.config, "open");
            refuse_unusable_path(ctx);
            // healing<>: the file is looked at through the gate, so that another process's heal
            // never moves it away mid-look (it would look missing); while one runs, a busy error
            // the retry policy waits on.
            gate_pass<R> looking{ctx, archive, gate_pass<R>::on_replaced::ignore, gate_pass<R>::on_healing::busy};
            if constexpr (R::healing::enabled) {
                if (ctx.on_disk() && ctx.healing_on.load()) {
                    std::optional<std::string> damage = damage_at_open(ctx.path);
                    std::string_view detected_by = "open: header check";
                    if (!damage && unclean_close_seen(ctx.path)) {  // a crash: worth a quick_check
                        const auto h = check_health(ctx.path, check_level::quick);
                        // An I/O error is no damage (SQLITE_BUSY_RECOVERY above all, while another
                        // process recovers the same WAL after the crash): the check is tried
                        // again under the retry policy, never skipped (the crash's mark stays
                        // until it has run).
                        // On a volume mounted read-only no retry lets it run: said at once.
                        if (h.result == health_report::finding::io_error && on_read_only_volume(ctx.path))
                            throw library_failure(
                                error_class::read_only, "open",
                                resilite::detail::format("the quick_check after an unclean close could not run "
                                                         "({}); the volume is mounted read-only: remount it "
                                                         "read-write and open it again",
                                                         h.detail),
                                ctx.path.string());
                        if (h.result == health_report::finding::io_error)
                            throw library_failure(error_class::busy, "open",
                                                  resilite::detail::format("the quick_check after an unclean close "
                                                                           "could not run ({}); tried again",
                                                                           h.detail),
                                                  ctx.path.string());
                        if (!h.ok()) {
                            damage = resilite::detail::format("{}: {}", to_string(h.result), h.detail);
                            detected_by = "open: quick_check after an unclean close";
                        }
                    }
                    if (damage) {
                        looking.leave();  // (a heal takes the gate for itself)
                        static_cast<void>(heal.run(std::move(*damage), std::string{detected_by}));
                    }
                }
            }
            refuse_damaged(ctx);
            break;
        } catch (const error& e) {
            // Waiting for another process's heal (the gate) or for the check above; not a busy
            // error out of a heal of this open's own (each try would count as a heal attempt).
            const bool wait = e.klass() == error_class::busy &&
                              (e.technical().operation == "gate" || e.technical().operation == "open");
            if (wait && flow.retry_after_failure("open", st, retry_context::opening)) continue;
            if (!wait) flow.finish_failed("open", st);
            throw;
        } catch (...) {
            flow.finish_failed("open", st);
            throw;
        }
    }
    st.attempt = 0;     // (step 2 counts its own attempts)
    gate_pass<R> pass;  // healing<>: no heal of another process during step 2
    [[maybe_unused]] bool healed_in_loop = false;
    for (;;) {  // 2.
        ++st.attempt;
        try {
            pass = gate_pass<R>{ctx, archive, gate_pass<R>::on_replaced::ignore, gate_pass<R>::on_healing::busy};
            {
                std::lock_guard lock(ctx.mutex);
                ctx.inject("open", st.attempt);
                open_connection(ctx, st, true);  // a.
                verify_identity(ctx);            // b. before anything writes
            }
            schema.prepare(owner, [&] { static_cast<void>(backups.backup_now()); });  // c.
            finish_identity(ctx);                                                    // d.
            if constexpr (R::archiving) archive.start(schema.migrated());            // e. records c.
            {
                std::lock_guard lock(ctx.mutex);
                open_readers(ctx);  // f. settings().read_connections, on the file verified in b.
            }
            break;
        } catch (...) {
            // Damage SQLite met, or acknowledged commits the file lost (behind its archive).
            auto damage = sqlite_damage();
            std::string_view detected_by = "open: SQLite met the damage";
            if constexpr (R::archiving) {
                if (auto behind = archive.behind_its_archive(); !damage && !behind.empty()) {
                    damage = std::move(behind);
                    detected_by = "open: the database is behind its archive";
                }
            }
            {
                std::lock_guard lock(ctx.mutex);
                archive.stop();
                if (damage && R::healing::enabled) {
                    close_leaving_files(ctx);  // no checkpoint into a damaged file
                } else {
                    ctx.drop_connection();
                }
                pass.leave();
            }
            if constexpr (R::healing::enabled) {
                // SQLite met damage the header check could not see (a page of the schema or of
                // resilite's own tables): heal, then open again; once.
                if (damage && ctx.on_disk() && ctx.healing_on.load() && !healed_in_loop) {
                    healed_in_loop = true;
                    static_cast<void>(heal.run(*damage, std::string{detected_by}));
                    continue;
                }
            }
            if (flow.retry_after_failure("open", st, retry_context::opening)) continue;
            throw;
        }
    }
    pass.leave();  // (before the heal lock: core/detail/file_gate.hpp)
    if constexpr (R::healing::enabled) {  // 3.
        if (ctx.on_disk() && !ctx.read_only) register_open(ctx.path);
    }
    schedule.schedule_all(ctx.now());
    ctx.emit_since("open", st.start, outcome::ok, 0, error_class::none, ctx.read_only ? "read-only" : "",
                   st.attempt);
    if constexpr (R::durability::background_thread) schedule.start();
}

}  // namespace resilite::detail
