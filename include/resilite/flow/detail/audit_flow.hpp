#pragma once
// The audit log (P15), top to bottom (audit_flow::audit):
//   1. the entry is stamped: UTC to the millisecond, which host and process;
//   2. attempts under the retry policy (busy, a broken connection, an I/O error are retried
//      with backoff, as every operation's are); each attempt, under the writer lock and through
//      the gate, first imports what waits in the fallback file (so entries keep their order),
//      then inserts the row in a write transaction of its own (the archive takes it like any
//      committed row: a heal keeps it);
//   3. when no attempt could, the entry is appended to the fallback file beside the database
//      (monitor/detail/audit_fallback.hpp), synced, and audit() returns saying so; it throws
//      (class io, both failures in the message) only when the fallback could not be written
//      either;
//   4. one `audit` event.
// The import (at open, before each audit, on the background thread's tick while the file
// exists): every sound entry in ONE transaction, each row carrying its fallback file id and
// number (the marker: entries at or below the highest imported number of their file are
// skipped, so a crash between the commit and the file's removal never imports twice); the file
// removed (or, when a whole line failed its CRC, renamed `.rejected-<UTC>` for a person) only
// after the commit, and the directory synced. Heals, reconfigurations (and, from the fallback,
// restore() and reset_healing()) are audited with actor "resilite".

#include <resilite/core/transaction_mode.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/flow/audit_result.hpp>
#include <resilite/flow/detail/archive_flow.hpp>
#include <resilite/flow/detail/connect.hpp>
#include <resilite/flow/detail/context.hpp>
#include <resilite/flow/detail/gate_pass.hpp>
#include <resilite/flow/detail/heal_flow.hpp>
#include <resilite/flow/detail/operation_flow.hpp>
#include <resilite/flow/settings.hpp>
#include <resilite/heal/heal_report.hpp>
#include <resilite/monitor/detail/audit_fallback.hpp>
#include <resilite/policy/retry.hpp>
#include <resilite/retry/detail/retry_state.hpp>
#include <resilite/sqlite/transaction.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace resilite::detail {

// Declared by the library, created at the first entry. Archived like a user table
// (archive::reserved_name lets it through): its rows are committed data. `fallback_file` and
// `fallback_seq` say which fallback entry a row was imported from (NULL: written directly);
// their highest value per file is the import's marker, and UNIQUE keeps it exactly once.
inline constexpr std::string_view audit_table_sql =
    "CREATE TABLE IF NOT EXISTS resilite_audit(seq INTEGER PRIMARY KEY, at_utc TEXT NOT NULL, "
    "action TEXT NOT NULL, actor TEXT NOT NULL, detail TEXT NOT NULL, source TEXT NOT NULL, "
    "fallback_file TEXT, fallback_seq INTEGER, UNIQUE(fallback_file, fallback_seq))";

// reconfigure(): which parts of the settings changed, on one line.
[[nodiscard]] inline std::string settings_change_summary(const settings& a, const settings& b) {
    std::vector<std::string_view> names;
    if (a.sync != b.sync) names.push_back("sync");
    if (a.checkpoint_interval != b.checkpoint_interval) names.push_back("checkpoint_interval");
    if (a.wal_alert_bytes != b.wal_alert_bytes) names.push_back("wal_alert_bytes");
    if (a.busy_timeout != b.busy_timeout) names.push_back("busy_timeout");
    if (a.statement_cache_capacity != b.statement_cache_capacity) names.push_back("statement_cache_capacity");
    if (a.retry != b.retry) names.push_back("retry");
    if (a.backup != b.backup) names.push_back("backup");
    if (a.archive != b.archive) names.push_back("archive");
    if (a.healing != b.healing) names.push_back("healing");
    if (a.quick_check_interval != b.quick_check_interval) names.push_back("quick_check_interval");
    if (a.integrity_check_interval != b.integrity_check_interval) names.push_back("integrity_check_interval");
    return names.empty() ? std::string{"settings applied again, unchanged"}
                         : resilite::detail::format("settings changed: {}", fmt::join(names, ", "));
}

[[nodiscard]] inline std::string first_line(std::string_view text) {
    std::string out{text.substr(0, text.find('\n'))};
    return out;
}

template <class R>
class audit_flow {
public:
    using time_point = std::chrono::steady_clock::time_point;

    audit_flow(context<R>& ctx, operation_flow<R>& flow, archive_flow<R>& archive, heal_flow<R>& heals)
        : ctx_(ctx), flow_(flow), archive_(archive), heals_(heals) {
        heals_.on_finished = [this](const std::string& summary) { library("heal", summary); };
    }
    audit_flow(const audit_flow&) = delete;
    audit_flow& operator=(const audit_flow&) = delete;
    ~audit_flow() { heals_.on_finished = nullptr; }

    // Db::audit().
    [[nodiscard]] audit_result audit(std::string_view action, std::string_view actor, std::string_view detail) {
        const auto start = ctx_.now();
        if (!audit_text_ok(action) || !audit_text_ok(actor) || !audit_text_ok(detail)) {
            auto e = library_failure(error_class::misuse, "audit",
                                     "an audit entry's action, actor and detail must be UTF-8 text; nothing was written",
                                     ctx_.path.string());
            ctx_.emit_since("audit", start, outcome::failed, 0, e.klass(), e.what());
            throw e;
        }
        // (Another thread's transaction is waited for by write(), within the retry deadline.)
        if (ctx_.own_transaction_open()) {
            auto e = library_failure(error_class::misuse, "audit",
                                     "audit() inside a transaction: an audit entry must not roll back with it; call "
                                     "audit() after the transaction ends",
                                     ctx_.path.string());
            ctx_.emit_since("audit", start, outcome::failed, 0, e.klass(), e.what());
            throw e;
        }
        // A heal here or elsewhere, or damage not healed (docs/degradation.md): straight to the
        // fallback rather than wait for the writer lock a heal holds.
        if (const auto why = ctx_.avail.reason(); file_in_doubt(why)) {
            return to_fallback(stamp(action, actor, detail), start, error_class::degraded,
                               resilite::detail::format("the database is unavailable ({})", to_string(why)));
        }
        return write(stamp(action, actor, detail), start);
    }

    // What the library does on its own (a heal, a reconfiguration): audited with actor
    // "resilite"; straight to the fallback when the database cannot be written now (a heal at
    // open, one that failed, a call inside a transaction). Never throws: its event says when
    // even the fallback failed.
    void library(std::string_view action, std::string_view detail) noexcept {
        try {
            const auto start = ctx_.now();
            auto e = stamp(action, "resilite", first_line(detail));
            const bool usable = ctx_.with_lock([&] {
                return ctx_.conn && !ctx_.conn->in_transaction() && ctx_.gate.depth() == 0 && !ctx_.read_only;
            });
            if (usable) {
                static_cast<void>(write(std::move(e), start));
            } else {
                static_cast<void>(to_fallback(std::move(e), start, error_class::cant_open,
                                              "the database is not open for writing now"));
            }
        } catch (...) {  // reported by the audit event
        }
    }

    // At the end of open, and on the background thread's tick: imports the fallback when there
    // is one. Never throws (an `audit_import` event says what failed; the next chance retries).
    // Returns true when there was a file.
    bool import_waiting() noexcept {
        try {
            if (!std::filesystem::exists(audit_fallback_path(ctx_.path))) return false;
        } catch (...) {
            return false;
        }
        const auto start = ctx_.now();
        try {
            std::lock_guard lock(ctx_.mutex);
            if (!ctx_.conn || ctx_.read_only || ctx_.conn->in_transaction()) return true;
            if (leave_to_archiver(ctx_.connection())) return true;
            gate_pass_for<R> pass{ctx_, archive_};
            static_cast<void>(import_locked(ctx_.connection()));
        } catch (...) {
            auto f = op_failure::from_current_exception();
            ctx_.emit_since(
                "audit_import", start, outcome::failed, 0, f.klass,
                resilite::detail::format(
                    "the audit fallback was not imported (it stays, and is imported later): {}", f.detail));
        }
        return true;
    }

    // Entries waiting in the fallback file (health()); never waits for a lock.
    [[nodiscard]] std::uint64_t waiting() const noexcept {
        return ctx_.on_disk() ? audit_fallback_depth(ctx_.path) : 0;
    }

private:
    [[nodiscard]] audit_entry stamp(std::string_view action, std::string_view actor, std::string_view detail) const {
        audit_entry e;
        e.at_utc = audit_time(ctx_.clock.utc_now());
        e.action = action;
        e.actor = actor;
        e.detail = detail;
        e.source = audit_source();
        return e;
    }

    // 2. and 3.
    audit_result write(audit_entry e, time_point start) {
        retry_state st;
        st.start = start;
        op_failure failure{error_class::none, {}};
        for (;;) {
            ++st.attempt;
            try {
                ctx_.yield_to_backup();
                auto lock = ctx_.lock_writer("audit", lock_deadline(ctx_, st));  // (degraded when a heal starts here)
                if (st.attempt == 1) load_limits(ctx_, st);
                gate_pass_for<R> pass{ctx_, archive_};
                auto& c = ctx_.connection();
                if (leave_to_archiver(c)) {
                    pass.leave();
                    lock.unlock();
                    return to_fallback(std::move(e), start, error_class::none,
                                       "the audit table is created by the application that keeps the archive, so "
                                       "that its archive records it",
                                       st.attempt, "that application opens or writes the database");
                }
                prepare_attempt(ctx_, st);
                ctx_.inject("audit", st.attempt);
                if (ctx_.on_disk()) static_cast<void>(import_locked(c));  // older entries first
                sqlite::transaction tx{c, transaction_mode::immediate};
                c.exec_script(audit_table_sql);
                c.exec("INSERT INTO resilite_audit(at_utc, action, actor, detail, source) VALUES(?, ?, ?, ?, ?)",
                       e.at_utc, e.action, e.actor, e.detail, e.source);
                const auto seq = c.last_insert_rowid();
                flow_.commit_with_retry(tx, st);
                flow_.after_commit();
                pass.leave();
                lock.unlock();
                ctx_.emit_since("audit", start, outcome::ok, 1, error_class::none, e.action, st.attempt);
                return {true, seq, 0};
            } catch (...) {
                if (retry_after(st, failure)) continue;
                break;
            }
        }
        if (!ctx_.on_disk()) {  // (":memory:" has no place beside it)
            ctx_.emit_since("audit", start, outcome::failed, 0, failure.klass, failure.detail, st.attempt);
            throw library_failure(
                failure.klass, "audit",
                resilite::detail::format("the audit entry was not written: {}", failure.detail),
                ctx_.path.string());
        }
        return to_fallback(std::move(e), start, failure.klass, failure.detail, st.attempt);
    }

    // In a catch block: true after the backoff delay when the retry policy retries the failure.
    bool retry_after(retry_state& st, op_failure& failure) {
        try {
            throw;
        } catch (const error& e) {
            failure = {e.klass(), e.what()};
            ctx_.note_damage(e.klass(), e.what());
            const auto scope = retry_scope_for<typename R::retry>(e);
            const auto remaining = st.remaining(ctx_.now());
            if (scope == retry_scope::none || st.attempt >= st.limits.max_attempts ||
                remaining <= std::chrono::nanoseconds{0})
                return false;
            flow_.back_off("audit", st, e, remaining);
            if (scope == retry_scope::reconnect) reconnect(ctx_);
            return true;
        } catch (...) {
            failure = op_failure::from_current_exception();
            return false;
        }
    }

    // A Database without archive<> never creates the audit table in a database whose archive
    // another program keeps (the operator's command, beside the application): the table would be
    // in no record until that program's next write, and a drill or an archive report meanwhile
    // would find the archive short of it. The entries wait in the fallback file for that program.
    [[nodiscard]] static bool leave_to_archiver([[maybe_unused]] sqlite::connection& c) {
        if constexpr (R::archiving) {
            return false;
        } else {
            // (capture triggers installed: an application archives it now, not one that stopped)
            return c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE "
                                    "'resilite\\_archive\\_%' ESCAPE '\\'") > 0 &&
                   c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = "
                                    "'resilite_audit'") == 0;
        }
    }

    // 3.
    audit_result to_fallback(audit_entry e, time_point start, error_class klass, const std::string& why,
                             int attempts = 1, std::string_view imported_when = "the database is back") {
        try {
            std::size_t torn = 0;
            const auto written = append_audit_fallback(ctx_.path, std::move(e), &torn);
            ctx_.emit_since(
                "audit", start, outcome::warning, 0, klass,
                resilite::detail::format(
                    "the database could not take the audit entry ({}); it is entry {} of the "
                    "fallback file {}, imported when {}{}",
                    why, written.seq, audit_fallback_path(ctx_.path).string(), imported_when,
                    torn == 0 ? std::string{}
                              : resilite::detail::format("; a torn last line ({} bytes, never acknowledged) "
                                                         "was cut from the file first",
                                                         torn)),
                attempts);
            return {false, 0, written.seq};
        } catch (const std::exception& fallback) {
            auto both = library_failure(
                error_class::io, "audit",
                resilite::detail::format(
                    "the audit entry was not written: the database could not take it ({}), nor the fallback "
                    "file ({})",
                    why, fallback.what()),
                ctx_.path.string());
            ctx_.emit_since("audit", start, outcome::failed, 0, both.klass(), both.what(), attempts);
            throw both;
        }
    }

    // The import (the caller holds the writer lock and the gate; no transaction is open).
    // Returns the rows imported. Throws when the database or the file fails: nothing is removed.
    std::size_t import_locked(sqlite::connection& c) {
        audit_fallback_file f{audit_fallback_path(ctx_.path), false};
        if (!f.exists()) return 0;
        const auto start = ctx_.now();
        const auto have = parse_audit_fallback(f.read());
        ctx_.inject("audit_import", 1);
        std::size_t imported = 0, skipped = 0, late = 0;
        {
            sqlite::transaction tx{c, transaction_mode::immediate};
            c.exec_script(audit_table_sql);
            std::map<std::string, std::uint64_t> marker;  // file id -> highest number imported
            for (const auto& e : have.entries) {
                auto it = marker.find(e.file);
                if (it == marker.end()) {
                    const auto done = c.template query_one<std::int64_t>(
                                           "SELECT ifnull(max(fallback_seq), 0) FROM resilite_audit WHERE fallback_file = ?",
                                           e.file)
                                          .value_or(0);
                    it = marker.emplace(e.file, static_cast<std::uint64_t>(done)).first;
                }
                // At or below the marker: imported before (a crash before the file was removed,
                // or the file put back), unless the table lacks it: passed over when a copy of
                // the file was rejected for a damaged line, and sound in this one.
                if (e.seq <= it->second) {
                    if (c.template query_one<std::int64_t>(
                             "SELECT count(*) FROM resilite_audit WHERE fallback_file = ? AND fallback_seq = ?", e.file,
                             static_cast<std::int64_t>(e.seq))
                            .value_or(0) > 0) {
                        ++skipped;
                        continue;
                    }
                    ++late;
                }
                c.exec("INSERT INTO resilite_audit(at_utc, action, actor, detail, source, fallback_file, fallback_seq) "
                       "VALUES(?, ?, ?, ?, ?, ?, ?)",
                       e.at_utc, e.action, e.actor, e.detail, e.source, e.file, static_cast<std::int64_t>(e.seq));
                it->second = std::max(it->second, e.seq);
                ++imported;
            }
            auto st = start_retry(ctx_);
            flow_.commit_with_retry(tx, st);
        }
        flow_.after_commit();
        ctx_.inject("audit_import_retire", 1);  // (tests: a crash after the commit, before the file goes)
        const auto aside = f.retire(!have.bad_lines.empty(), ctx_.clock.utc_now());
        std::vector<std::string> notes;
        if (skipped > 0)
            notes.push_back(resilite::detail::format("{} entr{} already in the audit table skipped", skipped,
                                                     skipped == 1 ? "y" : "ies"));
        if (late > 0)
            notes.push_back(resilite::detail::format(
                "{} entr{} numbered below ones already imported from this file, yet not in the "
                "table (passed over when a copy of the file was rejected for a damaged line), "
                "imported now",
                late, late == 1 ? "y" : "ies"));
        if (have.torn_bytes > 0)
            notes.push_back(resilite::detail::format(
                "a torn last line ({} bytes: a write a crash cut short, never acknowledged) "
                "ignored",
                have.torn_bytes));
        if (aside)
            notes.push_back(resilite::detail::format(
                "line{} {} failed {} CRC and {} kept in {} for a person to read",
                have.bad_lines.size() == 1 ? "" : "s", fmt::join(have.bad_lines, ", "),
                have.bad_lines.size() == 1 ? "its" : "their", have.bad_lines.size() == 1 ? "is" : "are",
                aside->string()));
        const bool clean = have.torn_bytes == 0 && !aside;
        ctx_.emit_since("audit_import", start, clean ? outcome::ok : outcome::warning,
                        static_cast<std::int64_t>(imported), aside ? error_class::corrupt : error_class::none,
                        resilite::detail::format("{}", fmt::join(notes, "; ")));
        return imported;
    }

    context<R>& ctx_;
    operation_flow<R>& flow_;
    archive_flow<R>& archive_;
    heal_flow<R>& heals_;
};

}  // namespace resilite::detail
