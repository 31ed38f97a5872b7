#pragma once
// The archive flow. Capture triggers put every change of every table into the outbox inside
// the same transaction. With flush on commit the transaction's record is written ahead: formatted
// and synced into the segment before its COMMIT, its number stored by the same transaction; an
// archive that cannot take it fails the transaction (class archive), so an acknowledged commit
// is always in the archive, and a record whose COMMIT failed is taken back. Batched, the drain
// moves the outbox into the segments every interval, at close and before a backup; a failed
// batched drain never fails a commit: the changes wait in the outbox.
//
// With the no_archive policy every member is a no-op the compiler removes.

#include <resilite/archive/archive_settings.hpp>
#include <resilite/archive/detail/archive_apply.hpp>
#include <resilite/archive/detail/archive_writer.hpp>
#include <resilite/archive/detail/segment_file.hpp>
#include <resilite/archive/inspect_archive.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/detail/link_path.hpp>
#include <resilite/flow/detail/context.hpp>
#include <resilite/monitor/health_snapshot.hpp>
#include <resilite/schema/detail/schema_sync.hpp>
#include <resilite/sqlite/detail/identity.hpp>
#include <resilite/sqlite/detail/marker.hpp>
#include <resilite/sqlite/transaction.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <set>
#include <string>

namespace resilite::detail {

template <class R>
class archive_flow {
public:
    using time_point = std::chrono::steady_clock::time_point;

    explicit archive_flow(context<R>& ctx) : ctx_(ctx) {}

    // Where the segments are: settings().archive.directory, or "<database>.archive".
    // (Read from the published settings: no writer lock, so archive reading goes on during a heal.)
    [[nodiscard]] std::filesystem::path directory() const {
        std::string dir;
        {
            std::lock_guard lock(ctx_.published_mutex);
            dir = ctx_.published.archive.directory;
        }
        return archive::archive_directory(ctx_.path, dir);
    }

    [[nodiscard]] bool active() const noexcept { return writer_.has_value(); }

    // At open, after schema sync and migrations: the capture triggers match the tables, schema
    // changes are recorded, and whatever a crash left in the outbox is archived. `migrated`:
    // migrations ran at this open, so a full snapshot is taken.
    void start(bool migrated) {
        if (ctx_.read_only || !ctx_.config.archive.enabled) return;
        if (!ctx_.on_disk()) {
            throw library_failure(error_class::misuse, "open", "an archive needs a database file",
                                  ctx_.path.string());
        }
        std::lock_guard lock(ctx_.mutex);
        const auto start = ctx_.now();
        // The archive belongs to one database: records of two databases in one directory could
        // rebuild neither. Acknowledged means archived: a directory that cannot be used fails
        // the open rather than leave archiving off (this database's commits would be
        // acknowledged and archived nowhere).
        const auto dir = directory();
        if (is_link_path(dir))
            throw library_failure(error_class::permission, "open",
                                  resilite::detail::format(
                                      "the archive directory {} is a symbolic link; resilite never follows "
                                      "one: give the directory's real path in settings().archive.directory",
                                      dir.string()),
                                  ctx_.path.string());
        if (const auto owner = read_archive_identity(dir); owner && *owner != ctx_.identity) {
            throw library_failure(
                error_class::archive, "open",
                resilite::detail::format(
                    "the archive directory {} belongs to another database (identity {}, this one is {}): give "
                    "this database its own directory in settings().archive.directory, or, if this database "
                    "replaced the one that archive belongs to (a point-in-time restore), move that archive "
                    "aside first; archiving is never turned off by itself",
                    dir.string(), *owner, ctx_.identity),
                ctx_.path.string());
        }
        writer_.emplace(dir, ctx_.path.filename().string(), archive::capture_tables(R::schema::definition()),
                        ctx_.config.archive.settle_rows, ctx_.path, ctx_.identity);
        if (ctx_.inject_archive_sync_failure) writer_->set_sync_fault(ctx_.inject_archive_sync_failure);
        behind_.clear();
        std::vector<std::string> notes;
        try {
            notes = writer_->catch_up(ctx_.connection(), migrated);
        } catch (...) {
            behind_ = writer_->behind();
            throw;
        }
        claim_directory();
        next_ = ctx_.now() + ctx_.config.archive.interval;
        drain_quietly(true);  // what a crash left in the outbox, and the schema records
        if (!pending_) forget_rollback();  // (the snapshot after the rolled-back records is archived)
        ctx_.emit_since("archive", start, notes.empty() ? outcome::ok : outcome::warning, writer_->last_seq(),
                        error_class::none, resilite::detail::format("{}", fmt::join(notes, "; ")));
    }

    void stop() noexcept {
        writer_.reset();
        behind_.clear();  // (read by the open before it stops the archive)
    }

    // Why the last start() refused a database behind its archive (acknowledged commits the file
    // lost): damage a heal repairs. Empty: it did not.
    [[nodiscard]] std::string behind_its_archive() const { return behind_; }

    // Db::drain_archive(): archives the outbox now; returns the last archived sequence number.
    // The caller holds the writer lock.
    std::int64_t drain_now() {
        if (!writer_) {
            throw library_failure(error_class::misuse, "archive", "archiving is off (read-only or not a file)",
                                  ctx_.path.string());
        }
        reclaim_if_lost();
        static_cast<void>(writer_->drain(ctx_.connection(), ctx_.clock.utc_now(), true));
        pending_ = false;
        return writer_->last_seq();
    }

    // Db::write_baseline(), and the schedule below: a baseline now, after what the outbox holds.
    // Returns its number (0: `unless_below` bytes were not reached after all). The caller holds
    // the writer lock.
    std::int64_t write_baseline(std::int64_t unless_below = 0) {
        if (!writer_) {
            throw library_failure(error_class::misuse, "baseline", "archiving is off (read-only or not a file)",
                                  ctx_.path.string());
        }
        if (ctx_.own_transaction_open())  // (its BEGIN would fail; inside it, it would hold it up)
            throw library_failure(error_class::misuse, "baseline",
                                  "write_baseline() while a transaction is open on the database's connection (this "
                                  "thread's, or one begun with a BEGIN statement): call it after the transaction ends",
                                  ctx_.path.string());
        reclaim_if_lost();
        const auto seq = writer_->write_baseline(ctx_.connection(), ctx_.clock.utc_now(), unless_below);
        pending_ = false;
        report_notes();
        return seq;
    }

    // archive.baseline_after_bytes: whether the records since the newest baseline hold that many
    // bytes (the count stored by the last write to the archive, this process's or another's).
    [[nodiscard]] bool baseline_due() const noexcept {
        if constexpr (!R::archiving) {
            return false;
        } else {
            const auto after = ctx_.config.archive.baseline_after_bytes;
            return writer_ && after > 0 && static_cast<std::uint64_t>(writer_->since_baseline()) >= after &&
                   ctx_.now() >= baseline_retry_ && !ctx_.own_transaction_open();
        }
    }

    // A scheduled baseline that fails is a warning: nothing was written, and a round after
    // checkpoint_interval tries again.
    void baseline_quietly() noexcept {
        if constexpr (R::archiving) {
            const auto start = ctx_.now();
            try {
                const auto after = static_cast<std::int64_t>(
                    std::min<std::uint64_t>(ctx_.config.archive.baseline_after_bytes, std::numeric_limits<std::int64_t>::max()));
                const auto seq = write_baseline(after);
                if (seq == 0) return;  // another process wrote one meanwhile
                ctx_.emit_since("baseline", start, outcome::ok, 0, error_class::none,
                                resilite::detail::format("txn {} is a full snapshot (archive.baseline_after_bytes: "
                                                         "the records since the previous one held at least {} bytes)",
                                                         seq, after));
            } catch (...) {
                // Not again at every round (a full disk, a directory that cannot be written):
                // after a checkpoint interval.
                baseline_retry_ = ctx_.now() + ctx_.config.checkpoint_interval;
                try {
                    auto f = op_failure::from_current_exception();
                    ctx_.emit_since("baseline", start, outcome::warning, 0, f.klass,
                                    resilite::detail::format("no baseline written (tried again by a maintenance "
                                                             "round after checkpoint_interval): {}",
                                                             f.detail));
                } catch (...) {
                }
            }
        }
    }

    // A failed drain never fails the operation that committed: the changes are safe in the
    // outbox, a warning says so, and the next drain archives them.
    void drain_quietly(bool settle) noexcept {
        if constexpr (R::archiving) {
            if (!writer_ || !ctx_.conn) return;
            const auto start = ctx_.now();
            try {
                reclaim_if_lost();
                static_cast<void>(writer_->drain(*ctx_.conn, ctx_.clock.utc_now(), settle));
                pending_ = false;
                report_notes();
            } catch (...) {
                pending_ = true;
                try {
                    auto f = op_failure::from_current_exception();
                    ctx_.emit_since(
                        "archive", start, outcome::warning, 0, f.klass,
                        resilite::detail::format("not archived yet (the changes are kept in the outbox and "
                                                 "archived at the next drain): {}",
                                                 f.detail));
                } catch (...) {
                }
            }
        }
    }

    // With flush on commit, records are written ahead of each COMMIT (before_commit); this
    // catches what was committed around the library (with_connection, another program).
    void after_commit() noexcept {
        if constexpr (R::archiving) {
            try {
                if (writer_ && ctx_.conn && writes_ahead() && !ctx_.conn->in_transaction() &&
                    writer_->pending(*ctx_.conn) > 0)
                    drain_quietly(false);
            } catch (...) {  // the next drain catches up
            }
            report_notes();
        }
    }

    [[nodiscard]] bool writes_ahead() const noexcept {
        return R::archiving && writer_ && ctx_.config.archive.when == archive_settings::flush::on_commit;
    }

    // Inside a write transaction, just before its COMMIT (the caller holds the writer lock):
    // schema records and triggers for tables created or changed meanwhile; with flush on commit,
    // the transaction's record written ahead. Throws (class archive) when the archive cannot
    // take it: the caller must roll back. Then committed() or cancel_pending().
    void before_commit(sqlite::connection& c) {
        if constexpr (R::archiving) {
            if (!writer_ || sqlite3_txn_state(c.native_handle(), "main") != SQLITE_TXN_WRITE) return;
            if (writes_ahead()) reclaim_if_lost();
            writer_->before_commit(c, ctx_.clock.utc_now(), writes_ahead(), true);
        }
    }
    void committed() noexcept {
        if (writer_) writer_->committed();
    }
    // `c`: the connection, when SQLite already ended its transaction (see archive_writer).
    void cancel_pending(sqlite::connection* c = nullptr) noexcept {
        if (writer_) writer_->cancel_pending(c);
    }

    // One statement outside a transaction, with the record written ahead: f runs inside BEGIN,
    // and a write it made is archived before the COMMIT. Reads pay a BEGIN and a COMMIT.
    template <class F>
    auto autocommit(sqlite::connection& c, F&& f) {
        sqlite::transaction tx{c, transaction_mode::deferred};
        auto result = f();
        if (!c.in_transaction()) {  // the statement ended the transaction itself
            tx.abandon();
            after_commit();
            return result;
        }
        before_commit(c);
        writer_->commit(tx);
        report_notes();
        return result;
    }

    // Rows changed on the connection so far, less the outbox rows the capture triggers wrote:
    // transactions report the application's rows, not the archive's bookkeeping.
    [[nodiscard]] std::int64_t direct_changes(sqlite::connection& c) {
        auto n = c.total_changes();
        if constexpr (R::archiving) {
            if (writer_) {
                n -= c.template query_one<std::int64_t>("SELECT ifnull(max(id), 0) FROM resilite_archive_outbox")
                         .value_or(0) +
                     writer_->bookkeeping();
            }
        }
        return n;
    }

    // ---- schedule (the caller holds the writer lock) ----------------------------------------------

    // Whether maintain() should drain now (a failed drain, or the batched interval passed).
    [[nodiscard]] bool due(time_point t) {
        if constexpr (!R::archiving) {
            return false;
        } else {
            const bool batched = ctx_.config.archive.when == archive_settings::flush::batched;
            if (!writer_ || !(pending_ || (batched && t >= next_))) return false;
            next_ = t + ctx_.config.archive.interval;
            return true;
        }
    }
    // The next batched drain, when there is one.
    [[nodiscard]] std::optional<time_point> next_due() const {
        if (writer_ && ctx_.config.archive.when == archive_settings::flush::batched) return next_;
        return std::nullopt;
    }
    // After reconfigure(): returns true when the schedule changed.
    bool reconfigured(const archive_settings& next, const archive_settings& previous) {
        if (!R::archiving) return false;
        if (writer_) writer_->set_settle_rows(next.settle_rows);
        if (next.interval == previous.interval && next.when == previous.when) return false;
        next_ = ctx_.now() + next.interval;
        return true;
    }

    // ---- reports ----------------------------------------------------------------------------------

    void fill(health_snapshot& s) {
        if (!writer_ || !ctx_.conn) return;
        s.archive_seq = writer_->last_seq();
        s.archive_pending = writer_->pending(*ctx_.conn);
    }

    // What check_archive() compares: every table, less the secret columns (never archived).
    // The caller holds the writer lock.
    [[nodiscard]] inspect_options inspection() {
        inspect_options o;
        o.live_database = ctx_.path;
        for (const auto& t : writer_->declared())
            for (const auto& c : t.secrets)
                o.excluded_columns.insert(lower(t.name) + "." + c);
        return o;
    }

private:
    void report_notes() noexcept {
        if (!writer_) return;
        try {
            for (auto& note : writer_->take_notes())
                ctx_.emit_since("archive", ctx_.now(), outcome::warning, 0, error_class::archive, note);
        } catch (...) {
        }
    }

    // Writes the directory's identity file (an archive from before identities is adopted). Its
    // absence later means the directory was removed or replaced while open.
    void claim_directory() {
        std::error_code ec;
        std::filesystem::create_directories(writer_->directory(), ec);
        claimed_ = !ec && write_archive_identity(writer_->directory(), ctx_.identity);
    }

    // Before a drain: a directory removed (or emptied) while open would otherwise be recreated
    // silently, holding only the changes from now on, so the archive could never rebuild the
    // database again. The write about to go there carries a full snapshot first (a debt kept
    // until one such write is durable, whichever it is), and a warning says so.
    void reclaim_if_lost() {
        std::error_code ec;
        if (std::filesystem::exists(archive_identity_path(writer_->directory()), ec) || ec) return;
        if (!claimed_) {  // never written (the directory could not be): try again
            claim_directory();
            return;
        }
        const auto why = resilite::detail::format(
            "the archive directory {} was removed or replaced while the database was open",
            writer_->directory().string());
        writer_->owe_snapshot(why);
        claim_directory();
        ctx_.emit_since("archive", ctx_.now(), outcome::warning, 0, error_class::none,
                        resilite::detail::format(
                            "{}: the next write to it carries a full snapshot of the database, so that the "
                            "archive alone can rebuild it again",
                            why));
    }

    // resilite::restore()'s note in the sidecar has served once the snapshot after the
    // rolled-back records is in the archive: left there, a later loss of the -wal that put the
    // file back at that number would pass for the same rollback.
    void forget_rollback() noexcept {
        if (read_marker(ctx_.path).rolled_back_to < 0) return;
        const sidecar_lock lock{ctx_.path};
        auto m = read_marker(ctx_.path);
        m.rolled_back_to = -1;
        static_cast<void>(write_marker(ctx_.path, m));
    }

    context<R>& ctx_;
    std::optional<archive::archive_writer> writer_;
    bool pending_ = false;  // a drain failed: maintain() and the next commit try again
    bool claimed_ = false;  // the directory's identity file was written
    std::string behind_;    // behind_its_archive()
    time_point next_{};
    time_point baseline_retry_{};  // a scheduled baseline failed: not before then
};

}  // namespace resilite::detail
