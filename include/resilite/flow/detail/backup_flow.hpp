#pragma once
// The backup flow, top to bottom (take()): archive drained, source checked, copied through
// SQLite into a temporary file, the copy checked, synced, the manifest appended, linked into place
// and the directory synced, retention applied, the sink run, the copy off the machine. Never a file copy of a live
// database; never a copy of a damaged source; never a copy of another database (identity).

#include <resilite/archive/detail/archive_state.hpp>
#include <resilite/backup/backup_result.hpp>
#include <resilite/backup/backup_settings.hpp>
#include <resilite/backup/detail/backup_files.hpp>
#include <resilite/core/detail/progress_meter.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/detail/link_path.hpp>
#include <resilite/flow/detail/archive_flow.hpp>
#include <resilite/flow/detail/checker.hpp>
#include <resilite/flow/detail/context.hpp>
#include <resilite/flow/detail/offsite_flow.hpp>
#include <resilite/sqlite/backup.hpp>
#include <resilite/sqlite/detail/identity.hpp>
#include <resilite/sqlite/file_set.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>

namespace resilite::detail {

template <class R>
class backup_flow {
public:
    using time_point = std::chrono::steady_clock::time_point;

    backup_flow(context<R>& ctx, checker<R>& checks, archive_flow<R>& archive, offsite_flow<R>& offsite)
        : ctx_(ctx), checks_(checks), archive_(archive), offsite_(offsite) {}

    // Db::backup_now(): one backup, reported as one `backup` event.
    backup_result backup_now() {
        const auto start = ctx_.now();
        try {
            // Inside this thread's own transaction (or one begun on the connection by hand), the
            // copy could never finish (it waits for that transaction, until backup.time_limit)
            // and every other thread would wait behind it.
            if (ctx_.own_transaction_open())
                throw library_failure(error_class::misuse, "backup",
                                      "backup_now() while a transaction is open on the database's connection (this "
                                      "thread's, or one begun with a BEGIN statement): the copy would wait for it; "
                                      "call it after the transaction ends",
                                      ctx_.path.string());
            auto r = take();
            ctx_.emit_since("backup", start, r.sink_error.empty() ? outcome::ok : outcome::warning, r.pages,
                            error_class::none,
                            r.sink_error.empty()
                                ? r.path.string()
                                : resilite::detail::format("{}; {}", r.path.string(), r.sink_error));
            return r;
        } catch (...) {
            ctx_.annotate_current(start, "backup");
            auto f = op_failure::from_current_exception();
            ctx_.emit_since("backup", start, outcome::failed, 0, f.klass, f.detail);
            throw;
        }
    }

    // The caller holds the writer lock. Before this Database took one: the newest backup in the
    // directory (taken before a restart, or by another process), looked up once.
    [[nodiscard]] std::optional<std::chrono::system_clock::time_point> last_time() const {
        if (!last_time_ && !looked_ && ctx_.on_disk()) {
            looked_ = true;
            const auto dir = backup_directory(ctx_.path, ctx_.config.backup);
            std::error_code ec;
            if (std::filesystem::is_directory(dir, ec)) {
                if (const auto newest = newest_listed_backup(ctx_.path, dir)) last_time_ = newest->taken;
            }
        }
        return last_time_;
    }

private:
    backup_result take() {
        const auto s = ctx_.with_lock([&] { return ctx_.config.backup; });
        const auto& path = ctx_.path;
        const auto dir = backup_directory(path, s);
        if (is_link_path(dir))
            throw library_failure(
                error_class::permission, "backup",
                "the backup directory " + link_not_followed(dir) + " in settings().backup.directory",
                path.string());
        make_backup_directory(dir, path);
        clean_leftovers(dir, path);
        const auto started = ctx_.now();
        // 1. Never back up a damaged source: the copy would carry the damage. The archive is
        //    drained first, so the copy knows exactly which archive records it holds.
        if constexpr (R::archiving) {
            std::lock_guard lock(ctx_.mutex);
            archive_.drain_quietly(true);
        }
        const auto source = checks_.check(s.check);
        if (!source.ok()) {
            throw library_failure(
                error_class::corrupt, "backup",
                resilite::detail::format("the database failed its {} check, so it was not backed up ({}: {})",
                                         to_string(s.check), to_string(source.result), source.detail),
                path.string());
        }
        // 2. Copy through SQLite into a temporary file.
        const sqlite::file_set tmp{dir / backup_temp_name(path)};
        tmp.remove_all();
        backup_result r;
        try {
            create_backup_temp(dir, tmp.database(), path);  // a directory that takes no file, said so
            if (s.how == backup_settings::method::online) {
                r.restarts = copy_online(tmp.database(), s, started);
                r.vacuumed = r.restarts > s.max_restarts;  // other processes kept restarting it
                if (r.vacuumed) tmp.remove_all();
            }
            if (s.how == backup_settings::method::vacuum_into || r.vacuumed) {
                // A reader of its own: under WAL it runs beside the writer instead of blocking it,
                // and reads one snapshot, which no other process's write can restart.
                r.vacuumed = true;
                sqlite::connection reader{path, SQLITE_OPEN_READONLY, ctx_.vfs_name()};
                reader.exec("VACUUM INTO ?", tmp.database().string());
            }
            inspect_copy(tmp.database(), r);
            // 3. Check the copy before it is called a backup.
            r.check = check_health(tmp.database(), s.check == check_level::header ? check_level::quick : s.check);
            if (!r.check.ok()) {
                throw library_failure(error_class::corrupt, "backup",
                                      resilite::detail::format(
                                          "the copy failed its check ({}); it was discarded", r.check.detail),
                                      path.string());
            }
            // 4. Durable promotion: sync the file; its manifest line, then its name (a backup
            //    never shows under its name without its entry); sync the directory.
            if (!fsync_path(tmp.database(), false))
                throw library_failure(error_class::io, "backup", "could not sync the copy", path.string());
            r.taken = ctx_.clock.utc_now();
            r.bytes = std::filesystem::file_size(tmp.database());
            r.crc32 = file_crc32(tmp.database()).value_or(0);
            promote_backup(tmp.database(), dir, path, r, [&] { ctx_.inject("backup:promote", 1); });
            static_cast<void>(fsync_path(dir, true));
        } catch (...) {
            tmp.remove_all();
            throw;
        }
        tmp.remove_all();
        r.duration = ctx_.now() - started;
        // 5. Retention, off-machine copy.
        // Only this database's backups rotate, as the manifest recorded them: a copy renamed,
        // changed or put there by hand is no backup a heal would use, so it must not count toward
        // keep_last (later names would push out every real one), and it is not ours to delete.
        // Another database with the same file name may keep its backups in this directory, and a
        // backup whose identity cannot be read is never taken for this database's. None of these
        // is counted or removed. (A database with no identity, opened in report_only mode,
        // rotates every backup of its name the manifest vouches for, as before identities.)
        auto all = list_backups(path, dir);
        const auto manifest = read_manifest(dir);  // (empty when unreadable: by identity alone)
        std::erase_if(all, [&](const backup_file& b) {
            // (by name and size: reading every backup whole at every backup would cost more than
            // the backup; the checksum is checked by whatever restores one)
            if (!manifest.empty() && untrusted_backup(b.path, manifest, false)) return true;
            return !ctx_.identity.empty() && identity_in_file(b.path) != ctx_.identity;
        });
        auto keep = retained(all, s);
        // The backup just taken stays, even when it is not the newest by the time in its name
        // (the system clock was set back): backup_now() never returns a path it removed.
        keep.insert(r.path);
        for (const auto& b : all) {
            std::error_code ec;
            if (keep.count(b.path) == 0) std::filesystem::remove(b.path, ec);
        }
        r.sink_error = run_sink(s.sink, r.path, s.sink_timeout);
        offsite_.queue_backup(r.path);  // off the machine at the next round, never under the writer lock
        std::lock_guard lock(ctx_.mutex);
        last_time_ = r.taken;
        return r;
    }

    // A backup is one self-contained file; a copy of another database must never rotate out a
    // backup of this one; the copy records how far into the archive it holds.
    void inspect_copy(const std::filesystem::path& file, backup_result& r) {
        sqlite::connection copy{file};
        copy.exec_script("PRAGMA journal_mode=DELETE");
        r.pages = copy.query_one<std::int64_t>("PRAGMA page_count").value_or(0);
        if (const auto id = read_identity(copy).value_or("none"); !ctx_.identity.empty() && id != ctx_.identity) {
            throw library_failure(
                error_class::corrupt, "backup",
                resilite::detail::format("the file at the path is not the database this Database opened "
                                         "(identity {}, expected {}): replaced while open? The copy was "
                                         "discarded and earlier backups kept",
                                         id, ctx_.identity),
                ctx_.path.string());
        }
        r.archive_seq = archive::stored_archive_seq(copy);
    }

    // The backup API from the writer connection, a few pages at a time under the lock, so that
    // writers go on between steps (their changes reach the copy without restarting it). Returns
    // the restarts seen; more than max_restarts means the caller takes VACUUM INTO instead.
    int copy_online(const std::filesystem::path& file, const backup_settings& s, time_point started) {
        std::optional<sqlite::connection> opened;
        try {
            opened.emplace(file);
        } catch (error& e) {
            e.annotate(1, ctx_.now() - started, "backup");
            throw;
        }
        auto& dst = *opened;
        // The copy needs no journal and no syncs of its own: a failed copy is thrown away, a
        // finished one is synced once before it is promoted. (Best effort: only speed depends on it.)
        sqlite3_exec(dst.native_handle(), "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;", nullptr, nullptr,
                     nullptr);
        std::optional<sqlite::backup> b;
        ctx_.with_lock([&] { b.emplace(dst, ctx_.connection()); });
        // Finishing unlinks the backup from the writer connection's pager: under the lock.
        struct finish_under_lock {
            context<R>& ctx;
            std::optional<sqlite::backup>& b;
            ~finish_under_lock() {
                std::lock_guard lock(ctx.mutex);
                b.reset();
            }
        } finally{ctx_, b};
        int restarts = 0;
        int last_remaining = -1;
        std::optional<progress_meter> meter;
        for (;;) {
            int rc = SQLITE_OK;
            int remaining = 0, pages = 0;
            {
                auto lock = ctx_.lock_for_backup();
                rc = b->step(s.pages_per_step);
                remaining = b->remaining();
                pages = b->pagecount();
            }
            if (!meter && ctx_.on_progress)
                meter.emplace(&ctx_.on_progress, "backup", "copying pages", "pages", static_cast<std::uint64_t>(pages));
            if (meter) meter->set(static_cast<std::uint64_t>(std::max(0, pages - remaining)));
            if (rc == SQLITE_DONE) break;
            if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
                throw sqlite_failure(dst.native_handle(), rc, "backup", {}, ctx_.path.string());
            if (last_remaining >= 0 && remaining > last_remaining) ++restarts;  // another process wrote
            last_remaining = remaining;
            if (restarts > s.max_restarts) return restarts;
            if (ctx_.now() - started > s.time_limit) {
                throw library_failure(
                    error_class::busy, "backup",
                    resilite::detail::format("the backup could not finish within {} s ({} restarts, {} pages "
                                             "left); other writers kept changing the database",
                                             s.time_limit.count(), restarts, remaining),
                    ctx_.path.string());
            }
            ctx_.clock.sleep_for(s.pause);
        }
        const int rc = ctx_.with_lock([&] { return b->finish(); });
        if (rc != SQLITE_OK) throw sqlite_failure(dst.native_handle(), rc, "backup", {}, ctx_.path.string());
        if (meter) meter->finish();
        return restarts;
    }

    context<R>& ctx_;
    checker<R>& checks_;
    archive_flow<R>& archive_;
    offsite_flow<R>& offsite_;
    mutable std::optional<std::chrono::system_clock::time_point> last_time_;
    mutable bool looked_ = false;  // the directory was searched for an earlier backup
};

}  // namespace resilite::detail
