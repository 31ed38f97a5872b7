#pragma once
// The heal flow, top to bottom (heal_flow::run):
//   1. take the gate (waiting, within the time limit, for operations of other processes to end;
//      none starts until the heal is over: core/detail/file_gate.hpp), let the caller drain the
//      archive and close its connection, then take the heal lock (one healer per database across
//      processes); a heal another process finished while we waited is not repeated;
//   2. the circuit breaker: after max_attempts heals in a row that did not succeed, stop and
//      say so until resilite::reset_healing(path); otherwise count this attempt (in the sidecar,
//      so that it survives restarts);
//   3. quarantine the database with its -wal/-shm/-journal into <quarantine>/<name>-<UTC>/
//      (mode 0700, files 0600); never deleted by a heal, only by retention later;
//   4. build a candidate beside the database, source by source, until one verifies:
//      a. each backup, newest first, that matches its manifest entry, plus the archive records after the
//         backup's archive_seq (a backup alone only when the policy accepts the loss);
//      b. the archive alone;
//      verify each: integrity_check, foreign keys, and, with an archive, every table equal to
//      what a rebuild of the archive gives (secret columns, never archived, left out);
//   5. swap: sync the candidate, rename it into place, sync the directory;
//   6. record: attempts reset, the heal epoch increased, one JSON line in the heal log,
//      quarantines past retention removed, heal_finished reported;
//   7. a Database that is open reopens the healed file before the gate is released.
// When no source verifies, nothing is deleted and the error's text is the manual recovery
// steps; a quarantined database that passes an integrity check after all is put back. Killed at any point, the next open finds the database missing or damaged, with the
// heal recorded in the sidecar, and heals again.

#include <resilite/archive/detail/archive_capture.hpp>
#include <resilite/archive/detail/archive_state.hpp>
#include <resilite/archive/detail/high_water.hpp>
#include <resilite/archive/detail/segment_file.hpp>
#include <resilite/archive/inspect_archive.hpp>
#include <resilite/archive/rebuild.hpp>
#include <resilite/archive/replay_archive.hpp>
#include <resilite/backup/detail/backup_files.hpp>
#include <resilite/backup/detail/offsite_copy.hpp>
#include <resilite/core/detail/background_sync.hpp>
#include <resilite/core/detail/file_gate.hpp>
#include <resilite/core/progress.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/flow/detail/archive_flow.hpp>
#include <resilite/flow/detail/connect.hpp>
#include <resilite/flow/detail/context.hpp>
#include <resilite/heal/detail/heal_files.hpp>
#include <resilite/heal/heal_report.hpp>
#include <resilite/monitor/check_health.hpp>
#include <resilite/schema/detail/schema_sync.hpp>
#include <resilite/sqlite/connection.hpp>
#include <resilite/sqlite/detail/durable_file.hpp>
#include <resilite/sqlite/detail/identity.hpp>
#include <resilite/sqlite/detail/integrity_check.hpp>
#include <resilite/sqlite/detail/marker.hpp>
#include <resilite/sqlite/file_set.hpp>

#include <resilite/detail/utc_format.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <tuple>
#include <functional>
#include <iterator>
#include <map>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace resilite::detail {

// A heal's candidate flushed to disk on a helper thread while the heal goes on with it; the
// caller takes the result with finish() before the swap. Without a descriptor (the file could not
// be opened) nothing runs here and the swap's own fsync does the work.
// Closing a descriptor drops every POSIX lock this process holds on the file: this one is closed
// only by finish() or the destructor, which the heal reaches after the connections it opens on
// the candidate (the replay's, the checks') have closed within their own scopes; the candidate is
// a private scratch file no other connection of this process opens.
class candidate_flush {
public:
    // `fail`: a test's injected fault; the flush then reports EIO after it ran.
    candidate_flush(const std::filesystem::path& file, bool fail)
        : fd_(::open(file.c_str(), O_RDONLY | O_CLOEXEC)) {
        if (fd_ >= 0) sync_.start(fd_, fail);
    }
    candidate_flush(const candidate_flush&) = delete;
    candidate_flush& operator=(const candidate_flush&) = delete;
    ~candidate_flush() { static_cast<void>(finish()); }
    // 0, or the errno of the failed flush. Waits for it.
    [[nodiscard]] int finish() noexcept {
        if (fd_ < 0) return 0;
        const int err = sync_.wait();
        ::close(std::exchange(fd_, -1));
        return err;
    }

private:
    int fd_;
    background_sync sync_;
};

// What a heal found when nothing was seen damaged and db.heal() asked for one.
inline constexpr std::string_view heal_asked_for = "a heal was asked for";

template <class R>
class heal_flow {
public:
    using time_point = std::chrono::steady_clock::time_point;

    explicit heal_flow(context<R>& ctx) : ctx_(ctx) {}

    // The last heal since open, if any (the caller holds the writer lock).
    [[nodiscard]] const std::optional<heal_report>& last() const noexcept { return last_; }

    // Heals the database at the path (the caller has no connection open on it). Returns the
    // report; throws a resilite::error (class corrupt) whose technical().report holds the
    // manual recovery steps when it cannot.
    // What a Database that is open adds: `epoch_seen`, the heal epoch of the file it has open (a
    // heal another process finished since is not repeated); `let_go`, run once the heal holds
    // the gate (drain the archive, close the connection); `take_up`, run after a heal while the
    // gate is still held (reopen), so that no other heal starts in between.
    struct open_database {
        std::optional<std::uint64_t> epoch_seen;
        std::function<void()> let_go;
        std::function<void()> take_up;
    };

    heal_report run(std::string found, std::string detected_by, const open_database& db = {}) {
        const auto what = resilite::detail::format("{} (seen by {})", found, detected_by);
        try {
            auto rep = run_flow(std::move(found), std::move(detected_by), db);
            audit(rep, what);
            return rep;
        } catch (const std::filesystem::filesystem_error& e) {
            auto failure = library_failure(
                error_class::io, "heal",
                resilite::detail::format("{}; nothing was deleted (see the quarantine directory)", e.what()),
                ctx_.path.string());
            audit_failure(failure, what);
            throw failure;
        } catch (const error& e) {
            if (!refused_) audit_failure(e, what);
            throw;
        }
    }

    // The audit log (flow/detail/audit_flow.hpp): one line per heal, once it is over (the healed
    // database in place and, for an open Database, opened again).
    std::function<void(const std::string&)> on_finished;

private:
    void audit(const heal_report& rep, const std::string& what) noexcept {
        if (!on_finished) return;
        // Another process's heal taken up: that process audits it; this process's own, opened
        // again: audited when it healed.
        if (rep.sources.size() == 1 && rep.sources.front().source == "another process") return;
        if (!rep.sources.empty() && rep.sources.back().source == opened_again) return;
        try {
            std::string used;
            for (const auto& s : rep.sources)
                if (s.healed) used = s.source;
            auto line =
                resilite::detail::format("healed {}: found {}; from {}", ctx_.path.string(), what, used);
            if (!rep.may_be_lost.empty())
                line += resilite::detail::format("; may be lost: {}", rep.may_be_lost);
            std::replace(line.begin(), line.end(), '\n', ' ');
            on_finished(line);
        } catch (...) {
        }
    }
    void audit_failure(const error& e, const std::string& what) noexcept {
        if (!on_finished) return;
        try {
            const std::string text = e.what();
            auto line = resilite::detail::format("NOT healed {}: found {}; {}", ctx_.path.string(), what,
                                                 text.substr(0, text.find('\n')));
            std::replace(line.begin(), line.end(), '\n', ' ');
            on_finished(line);
        } catch (...) {
        }
    }

    heal_report run_flow(std::string found, std::string detected_by, const open_database& db) {
        const auto& path = ctx_.path;
        const auto s = ctx_.with_lock([&] { return ctx_.config; });
        heal_report rep;
        rep.database = path;
        rep.started = ctx_.clock.utc_now();
        rep.found = std::move(found);
        rep.detected_by = std::move(detected_by);
        start_ = ctx_.now();
        time_limit_ = s.healing.time_limit;
        refused_ = false;
        // 2., looked at first without any lock: a refusal is not a heal (no event, no audit line,
        // so that a restart loop grows neither); looked at again below under the heal lock.
        const auto before = read_marker(path);
        if (before.heal_attempts >= s.healing.max_attempts) refuse(before);
        ctx_.emit_since("heal_started", start_, outcome::warning, 0,
                        rep.found == heal_asked_for ? error_class::none : error_class::corrupt, rep.found);

        const auto epoch_before = db.epoch_seen.value_or(before.heal_epoch);
        exclusive_gate gate{path};  // 1.
        wait_for_gate(gate, s, rep);
        if (!gate.counted()) {  // (a gate file this process may lock but not write)
            ctx_.emit_since("heal_progress", ctx_.now(), outcome::warning, 0, error_class::permission,
                            resilite::detail::format(
                                "could not count this heal in {}: reads of other processes notice it at "
                                "their next write or transaction, not their next read",
                                gate_path(path).string()));
        }
        if (db.let_go) db.let_go();
        heal_lock lock{path};
        auto m = read_marker(path);
        if (m.heal_epoch != epoch_before && check_health(path, check_level::quick).ok()) {
            // This process's own heal, whose reopen failed: its report stands, with a line that
            // says the database is opened again now. Otherwise another process healed it.
            if (const auto earlier = ctx_.with_lock([&] { return last_; });
                own_epoch_ == m.heal_epoch && earlier && earlier->healed) {
                rep = *earlier;
                rep.sources.push_back({std::string{opened_again}, true,
                                       "the database this process healed is opened again (the open after the heal "
                                       "had failed)"});
            } else {
                rep.healed = true;
                rep.sources.push_back({"another process", true, "healed since this database was opened"});
            }
            m.damage_seen.clear();
            m.restore_requested.clear();
            auto done = finish(rep, m, s, false);  // the healer's own line is in the log already
            if (db.take_up) db.take_up();
            return done;
        }
        if (m.heal_attempts >= s.healing.max_attempts) refuse(m);  // 2. (another process's heals meanwhile)
        // Never worse: a heal asked for (no damage seen) of a database that passes its integrity
        // check and holds changes its archive has not received (another program's, which a
        // Database without archive<> cannot drain: the operator's command has none) would throw
        // them away. Refused before anything is moved or counted.
        if (rep.found == heal_asked_for) {
            if (const auto pending = archive::unarchived_in(path).value_or(0);
                pending > 0 && check_health(path, check_level::full).ok()) {
                const auto text = resilite::detail::format(
                    "the database passes its integrity check and holds {} captured changes its archive has not "
                    "received, which every source lacks: a heal would lose them, so nothing was moved. Open it "
                    "with the application, whose archive<> takes them, then heal again",
                    pending);
                ctx_.emit_since("heal_finished", start_, outcome::failed, 0, error_class::aborted, text);
                throw library_failure(error_class::aborted, "heal", text, path.string());
            }
        }
        rep.attempt = ++m.heal_attempts;
        save(m);  // counted before anything can go wrong: a heal that kills the process counts too

        rep.quarantine = quarantine(m, s.healing);  // 3. (reports its own progress)
        save(m);
        gather_evidence(rep, s);

        fetch_from_offsite(s, rep);  // a dead disk, a new machine: what went off it comes back first

        const auto here = std::filesystem::absolute(path).parent_path();  // 4.
        remove_stale_temp_files(here, ".resilite-heal-");                  // of a heal that was killed
        const auto archive_dir = archive_directory(s);
        const bool has_archive = archive_holds_records(archive_dir);
        const auto candidate = sqlite::file_set{here / scratch_name(".resilite-heal-", path)};
        bool healed = false;
        bool out_of_time = false;
        const auto backups = newest_first(s);
        for (const auto& b : backups) {
            if ((out_of_time = over_time(s, rep))) break;
            if (from_backup(b, has_archive, archive_dir, candidate, s, rep)) {
                healed = true;
                break;
            }
            if (!has_archive && !s.healing.accept_loss_since_backup) break;  // every backup would say the same
        }
        if (!healed && has_archive && !out_of_time && !(out_of_time = over_time(s, rep)))
            healed = from_archive(archive_dir, candidate, rep);
        if (!healed) {
            const auto none = [](const std::filesystem::path& d, std::string_view what) {
                return is_link_path(d)
                           ? resilite::detail::format("{} is a symbolic link, never followed", d.string())
                           : resilite::detail::format("{} {}", what, d.string());
            };
            if (!has_archive) rep.sources.push_back({"archive alone", false, none(archive_dir, "no archive at")});
            if (backups.empty())
                rep.sources.push_back({"backups", false, none(backup_directory(path, s.backup), "none in")});
            candidate.remove_all();
            if (put_back_if_sound(rep, m)) fail_put_back(rep);
            fail(rep, s, archive_dir);
        }

        const auto swap_start = ctx_.now();  // 5.
        ctx_.inject("heal:swap", rep.attempt);
        if (!fsync_path(candidate.database(), false))
            throw library_failure(error_class::io, "heal", "could not sync the healed database", path.string());
        sqlite::file_set{path}.remove_side_files();  // (moved to quarantine; none may meet the new file)
        if (::renameat2(AT_FDCWD, candidate.database().c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
            throw library_failure(
                error_class::io, "heal",
                resilite::detail::format(
                    "the healed database could not be put in place ({}); it is kept at {}{}",
                    std::strerror(errno), candidate.database().string(),
                    errno == EEXIST ? ": another file appeared at the path during the heal and was left alone"
                                    : ""),
                path.string());
        }
        candidate.remove_side_files();
        static_cast<void>(fsync_path(std::filesystem::absolute(path).parent_path(), true));
        rep.phases.push_back({"swap", ctx_.now() - swap_start});
        progress("swap", 100);
        rep.healed = true;
        m.heal_attempts = 0;  // 6.
        m.heal_quarantine.clear();
        m.damage_seen.clear();
        m.restore_requested.clear();
        ++m.heal_epoch;
        own_epoch_ = m.heal_epoch;
        static_cast<void>(gate.count_heal());  // the file is in place: every read looks again
        auto done = finish(rep, m, s);
        if (db.take_up) db.take_up();  // (under the gate: 7.)
        return done;
    }

    // The circuit breaker is open (step 2.).
    [[noreturn]] void refuse(const marker& m) {
        refused_ = true;
        throw library_failure(
            error_class::corrupt, "heal",
            resilite::detail::format(
                "healing stopped: {} heals in a row did not succeed, and healing never loops; the "
                "damaged files are kept in {}. Recover by hand, then call "
                "resilite::reset_healing(\"{}\") to let healing run again",
                m.heal_attempts, m.heal_quarantine.empty() ? "(nothing was moved)" : m.heal_quarantine,
                ctx_.path.string()),
            ctx_.path.string());
    }

    heal_report finish(heal_report& rep, marker& m, const settings& s, bool log = true) {
        if (!write_marker(ctx_.path, m)) {  // the heal is done: a sidecar not updated costs a count only
            ctx_.emit_since(
                "heal_progress", ctx_.now(), outcome::warning, 100, error_class::io,
                resilite::detail::format("could not update the sidecar {}", marker_path(ctx_.path).string()));
        }
        rep.duration = ctx_.now() - start_;
        ctx_.with_lock([&] { last_ = rep; });
        if (log) append_log(rep);
        remove_expired_quarantines(s.healing, rep.quarantine);
        std::int64_t rows = 0;
        for (const auto& t : rep.tables)
            rows += t.rows;
        ctx_.emit_since("heal_finished", start_, rep.may_be_lost.empty() ? outcome::ok : outcome::warning, rows,
                        error_class::none, rep.to_text());
        return rep;
    }

    [[noreturn]] void fail(heal_report& rep, const settings& s, const std::filesystem::path& archive_dir) {
        rep.duration = ctx_.now() - start_;
        ctx_.with_lock([&] { last_ = rep; });
        append_log(rep);
        const auto& path = ctx_.path;
        std::string tried;
        for (const auto& src : rep.sources)
            tried += resilite::detail::format("\n  - {}: {}", src.source, src.detail);
        const auto text = resilite::detail::format(
            "the database is damaged and no source could heal it; nothing was deleted\n"
            "found: {}\n"
            "the damaged files are in {}\n"
            "sources tried:{}\n"
            "to recover by hand:\n"
            "  1. salvage what the damaged copy holds: sqlite3 '{}' '.recover' > salvaged.sql\n"
            "  2. or rebuild from the archive with what it holds: resilite::rebuild(\"{}\", \"new.db\", "
            "{{.keep_going = true}}), or restore a backup from {} with resilite::restore()\n"
            "  3. put the result at {}, then call resilite::reset_healing(\"{}\") so that healing may run "
            "again",
            rep.found, rep.quarantine.empty() ? std::string{"(nothing was moved)"} : rep.quarantine.string(),
            tried, (rep.quarantine / path.filename()).string(), archive_dir.string(),
            backup_directory(path, s.backup).string(), path.string(), path.string());
        // Out of room is not damage: it says what to do about it.
        const auto room = short_of_space(rep, s);
        const auto klass = room ? error_class::full : error_class::corrupt;
        const auto full_text = room ? resilite::detail::format(
                                          "{}\nthe volume has {} bytes free and a heal needs about {}: free "
                                          "space and open again",
                                          text, room->first, room->second)
                                    : text;
        ctx_.emit_since("heal_finished", start_, outcome::failed, 0, klass, full_text);
        throw library_failure(klass, "heal", full_text, path.string());
    }

    // Free bytes and the bytes a heal needs (a restored copy of the newest backup, or of the
    // damaged database), when there is less free than that.
    [[nodiscard]] std::optional<std::pair<std::uintmax_t, std::uintmax_t>> short_of_space(const heal_report& rep,
                                                                                            const settings& s) const {
        std::error_code ec;
        const auto info = std::filesystem::space(std::filesystem::absolute(ctx_.path).parent_path(), ec);
        if (ec) return std::nullopt;
        std::uintmax_t needed = 0;
        const auto consider = [&](const std::filesystem::path& p) {
            std::error_code size_ec;
            const auto size = std::filesystem::file_size(p, size_ec);
            if (!size_ec) needed = std::max(needed, size);
        };
        if (const auto backups = newest_first(s); !backups.empty()) consider(backups.front().path);
        if (!rep.quarantine.empty()) consider(rep.quarantine / ctx_.path.filename());
        if (needed == 0 || info.available >= needed) return std::nullopt;
        return std::pair{info.available, needed};
    }

    // Never worse: when no source verified (out of time, say) and what was quarantined passes an
    // integrity check after all (an on-demand heal of a sound database), it goes back where it
    // was, rather than leave the path empty.
    bool put_back_if_sound(heal_report& rep, marker& m) {
        if (rep.quarantine.empty()) return false;
        const auto& path = ctx_.path;
        const sqlite::file_set kept{rep.quarantine / path.filename()};
        std::error_code ec;
        if (std::filesystem::exists(path, ec) || !std::filesystem::exists(kept.database(), ec)) return false;
        if (!check_health(kept.database(), check_level::full).ok()) return false;
        for (const auto& [from, to] : {std::pair{kept.database(), path}, std::pair{kept.wal(), sqlite::file_set{path}.wal()}}) {
            if (!std::filesystem::exists(from, ec)) continue;
            if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) != 0) return false;
        }
        static_cast<void>(fsync_path(std::filesystem::absolute(path).parent_path(), true));
        m.heal_quarantine.clear();
        save(m);
        return true;
    }

    [[noreturn]] void fail_put_back(heal_report& rep) {
        rep.duration = ctx_.now() - start_;
        rep.quarantine.clear();
        ctx_.with_lock([&] { last_ = rep; });
        append_log(rep);
        std::string tried;
        for (const auto& src : rep.sources)
            tried += resilite::detail::format("; {}: {}", src.source, src.detail);
        const auto text = resilite::detail::format(
            "the heal did not finish ({}); the database passes its integrity check, so it was put back where "
            "it "
            "was, unchanged",
            tried.empty() ? "no source" : tried.substr(2));
        ctx_.emit_since("heal_finished", start_, outcome::failed, 0, error_class::aborted, text);
        throw library_failure(error_class::aborted, "heal", text, ctx_.path.string());
    }

    // Moves the database and its side files aside; a heal interrupted after this step finds them
    // where the sidecar says.
    std::filesystem::path quarantine(marker& m, const healing_settings& hs) {
        const auto& path = ctx_.path;
        const auto start = ctx_.now();
        const sqlite::file_set files{path};
        std::error_code ec;
        bool any = false;
        for (const auto& f : {files.database(), files.wal(), files.shm(), files.journal()})
            any = any || std::filesystem::exists(f, ec);
        if (!any) return m.heal_quarantine;  // a heal interrupted after its quarantine
        // A heal interrupted during its quarantine recorded the directory first: the rest of the
        // files join the ones already there (a -wal never parted from its database).
        std::filesystem::path dir = m.heal_quarantine;
        if (dir.empty() || !std::filesystem::is_directory(dir, ec)) {
            const auto root = quarantine_root(path, hs);
            // A link is never followed: the damaged files could be moved anywhere.
            if (is_link_path(root))
                throw library_failure(
                    error_class::permission, "heal",
                    resilite::detail::format("the quarantine directory {} is a symbolic link; resilite never "
                                             "follows one: replace it with a directory; nothing was moved",
                                             root.string()),
                    path.string());
            std::filesystem::create_directories(root);
            const auto stamp = utc_format(ctx_.clock.utc_now(), "%Y%m%dT%H%M%SZ");
            dir = root / resilite::detail::format("{}-{}", path.filename().string(), stamp);
            for (int n = 2; std::filesystem::exists(dir); ++n)
                dir = root / resilite::detail::format("{}-{}-{}", path.filename().string(), stamp, n);
            std::filesystem::create_directory(dir);
            std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
            static_cast<void>(fsync_path(root, true));
            m.heal_quarantine = dir.string();
            save(m);  // recorded before anything moves
        }
        ctx_.inject("heal:quarantine", 1);
        for (const auto& f : {files.database(), files.wal(), files.shm(), files.journal()}) {
            if (!std::filesystem::exists(f, ec)) continue;
            auto target = dir / f.filename();
            for (int n = 2; std::filesystem::exists(target, ec); ++n)  // never over a quarantined file
                target = dir / resilite::detail::format("{}.{}", f.filename().string(), n);
            std::filesystem::rename(f, target);
            std::filesystem::permissions(target, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
            ctx_.inject("heal:quarantine:moved", 1);
        }
        static_cast<void>(fsync_path(dir, true));
        static_cast<void>(fsync_path(std::filesystem::absolute(path).parent_path(), true));
        ctx_.emit_since("heal_progress", start, outcome::ok, 10, error_class::none,
                        resilite::detail::format("quarantined into {}", dir.string()));
        return dir;
    }

    bool from_backup(const backup_file& b, bool has_archive, const std::filesystem::path& archive_dir,
                     const sqlite::file_set& candidate, const settings& s, heal_report& rep) {
        const auto name = resilite::detail::format("backup {}{}", b.path.filename().string(),
                                                   has_archive ? " + archive" : "");
        try {
            const auto restore_start = ctx_.now();
            candidate.remove_all();
            if (auto why = untrusted_backup(b.path, read_manifest(b.path.parent_path()))) {
                rep.sources.push_back({name, false, *why});
                return false;
            }
            // (No quick_check of the backup here: it matches the checksum taken with it, and the
            // result is integrity-checked after the replay (verify), which a damaged backup fails.)
            if (!has_archive && !s.healing.accept_loss_since_backup) {
                rep.sources.push_back({name, false,
                                       resilite::detail::format(
                                           "there is no archive, so the commits after this backup ({} UTC) "
                                           "would be lost; healing from a backup alone needs "
                                           "resilite::accept_loss_since_backup",
                                           utc_format(b.taken, "%Y-%m-%d %H:%M:%S"))});
                return false;
            }
            std::filesystem::copy_file(b.path, candidate.database());
            const auto foreign = drop_foreign_code(candidate.database(), has_archive ? &archive_dir : nullptr);
            // The columns its capture triggers leave out, read before the replay adds columns
            // those triggers never knew (which are archived, not secret).
            const auto backup_unarchived = unarchived_columns_of(candidate.database());
            // The copy goes to disk while the tail is replayed and the result checked: it must be
            // durable before the swap, not before it is checked (229 MB here: 0.17 s to flush,
            // 0.19 s to check). What the replay changes after this starts, the swap's fsync takes.
            candidate_flush flush{candidate.database(), ctx_.injected("heal:flush")};
            rep.phases.push_back({"restore", ctx_.now() - restore_start});
            progress("restore", 30);
            if (past_limit()) {
                rep.sources.push_back({name, false, "stopped after the restore: the heal reached its time limit"});
                return false;
            }
            std::optional<std::int64_t> from, to;
            bool archive_covers = false;  // the archive reaches at least this backup's last record
            if (has_archive) {
                const auto replay_start = ctx_.now();
                from = archive_seq_of(candidate.database());
                ctx_.inject("heal:replay", 1);
                replay_options o;
                o.stop_when = [this] { return past_limit(); };
                o.on_progress = sub_progress("replaying the archive");
                o.count_rows = false;  // verify() counts them, after the integrity check
                o.sync = false;        // flushed beside it (candidate_flush) and at the swap
                const auto r = replay_archive(archive_dir, candidate.database(), o);
                archive_covers = r.last_seq >= *from;
                to = std::max(r.last_seq, *from);
                rep.phases.push_back({"replay", ctx_.now() - replay_start});
                progress("replay", 60);
            }
            // An archive that ends before the backup (its tail cut or lost) cannot be compared
            // with it: the backup is newer, and is kept rather than an older one. Nor can one that
            // never received changes the backup holds in its outbox (a batched archive).
            const auto pending = has_archive ? archive::unarchived_in(candidate.database()).value_or(0) : 0;
            if (auto problem =
                    verify(candidate.database(), archive_covers && pending == 0 ? &archive_dir : nullptr, rep)) {
                rep.sources.push_back({name, false, *problem});
                return false;
            }
            const auto salvaged = take_what_the_archive_lacks(candidate.database());
            if (const int err = flush.finish(); err != 0) {
                // (Not retried: a second fsync after a failed one can report success for data the
                // kernel dropped.)
                throw library_failure(
                    error_class::io, "heal",
                    resilite::detail::format("could not sync the healed database: {}",
                                             std::error_code(err, std::generic_category()).message()),
                    ctx_.path.string());
            }
            if (has_archive && archive_covers && pending > 0)
                rep.verification += resilite::detail::format(
                    "; the backup holds {} change{} the archive never received (its "
                    "outbox): not compared",
                    pending, pending == 1 ? "" : "s");
            if (has_archive && !archive_covers)
                rep.verification += resilite::detail::format(
                    "; the archive ends at record {}, before this backup's record {}: "
                    "not compared",
                    archive_last(archive_dir), *from);
            const auto loss = loss_beyond(to.value_or(0), archive_dir);
            if (loss && !s.healing.accept_loss_since_backup) {
                rep.sources.push_back({name, false, *loss + "; healing with that loss needs resilite::accept_loss_since_backup"});
                return false;
            }
            rep.backup_used = b.path;
            rep.archive_from_seq = from;
            rep.archive_to_seq = to;
            rep.healed_seq = to;
            if (!has_archive) {
                rep.may_be_lost = resilite::detail::format(
                    "every commit after the backup taken {} UTC (there is no "
                    "archive to replay)",
                    utc_format(b.taken, "%Y-%m-%d %H:%M:%S"));
            } else if (loss) {
                rep.may_be_lost = *loss;
                number_after_loss(candidate.database());
            } else if (to && from && *to > *from) {
                rep.may_be_lost = secrets_note("in rows written after the backup, the secret columns",
                                               damaged_unarchived_.value_or(backup_unarchived));
            }
            add_loss(rep, unarchived_window());
            if (has_archive) add_loss(rep, missing_tables_note(candidate.database()));
            add_loss(rep, offsite_window_);
            if (has_archive)
                add_loss(rep, virtual_tables_note("the rows written after the backup", candidate.database()));
            std::string detail =
                to ? resilite::detail::format("archive replayed up to record {}", *to) : std::string{};
            add_detail(detail, salvaged);
            add_detail(detail, bring_back_code(candidate.database(), rep));
            if (!foreign.dropped.empty()) {
                detail += resilite::detail::format(
                    "{}dropped what {} (a backup is data, not code): {}", detail.empty() ? "" : "; ",
                    foreign.damaged_read ? "the database did not have"
                                         : "neither the damaged database (it cannot be read) nor the "
                                           "archive vouches for",
                    fmt::join(foreign.dropped, ", "));
                if (!foreign.damaged_read)
                    add_loss(rep, resilite::detail::format(
                                      "the schema objects {} of the backup (the damaged database cannot be "
                                      "read to tell whether it still had them; views are not archived)",
                                      fmt::join(foreign.dropped, ", ")));
            }
            rep.sources.push_back({name, true, detail});
            return true;
        } catch (const std::exception& e) {
            rep.sources.push_back({name, false, e.what()});
            return false;
        }
    }

    bool from_archive(const std::filesystem::path& archive_dir, const sqlite::file_set& candidate, heal_report& rep) {
        const std::string name = "archive alone";
        try {
            const auto start = ctx_.now();
            candidate.remove_all();
            ctx_.inject("heal:replay", 1);
            rebuild_options o;
            o.stop_when = [this] { return past_limit(); };
            o.on_progress = sub_progress("rebuilding from the archive");
            const auto r = rebuild(archive_dir, candidate.database(), o);
            rep.phases.push_back({"rebuild", ctx_.now() - start});
            progress("rebuild", 60);
            if (auto problem = verify(candidate.database(), nullptr, rep)) {
                rep.sources.push_back({name, false, *problem});
                return false;
            }
            const auto salvaged = take_what_the_archive_lacks(candidate.database());
            const auto loss = loss_beyond(r.last_seq, archive_dir);
            if (loss && !ctx_.with_lock([&] { return ctx_.config.healing.accept_loss_since_backup; })) {
                rep.sources.push_back({name, false, *loss + "; healing with that loss needs resilite::accept_loss_since_backup"});
                return false;
            }
            rep.archive_from_seq = 0;
            rep.archive_to_seq = r.last_seq;
            rep.healed_seq = r.last_seq;
            rep.may_be_lost = loss ? *loss : secrets_note("the secret columns", damaged_unarchived_.value_or(
                                                                                     std::set<std::string>{}));
            if (loss) number_after_loss(candidate.database());
            add_loss(rep, unarchived_window());
            add_loss(rep, missing_tables_note(candidate.database()));
            add_loss(rep, offsite_window_);
            add_loss(rep, virtual_tables_note("every row", candidate.database()));
            auto detail = resilite::detail::format("{} records", r.applied_records);
            add_detail(detail, salvaged);
            add_detail(detail, bring_back_code(candidate.database(), rep));
            rep.sources.push_back({name, true, detail});
            return true;
        } catch (const std::exception& e) {
            rep.sources.push_back({name, false, e.what()});
            return false;
        }
    }

    // With settings().offsite.remote, when this machine has no backup or no archive: the remote's
    // copies are fetched first (never over a local file). Its failure leaves the local sources,
    // and the report says why.
    void fetch_from_offsite(const settings& s, heal_report& rep) {
        offsite_window_.clear();  // (this flow lives as long as the Database: not a past heal's)
        if (s.offsite.remote.empty()) return;
        const auto start = ctx_.now();
        const auto archive_dir = archive_directory(s);
        const auto backup_dir = backup_directory(ctx_.path, s.backup);
        std::error_code ec;
        const bool no_archive = !archive_holds_records(archive_dir) && !is_link_path(archive_dir);
        const bool no_backups = !is_link_path(backup_dir) && (!std::filesystem::is_directory(backup_dir, ec) ||
                                                              list_backups(ctx_.path, backup_dir).empty());
        if (!no_archive && !no_backups) return;
        std::vector<std::string> fetched, failed;
        // Only this database's copies, and the archive fetched says whose it is (the remote
        // folder's IDENTITY): a database created at the path later is refused it at its open,
        // instead of taking it over with a snapshot of nothing.
        const auto mine = read_marker(ctx_.path).identity;
        const auto remote = offsite_identity(s.offsite, ctx_.path);
        const auto& theirs = remote.identity;
        if (!remote.error.empty()) {
            failed.push_back(resilite::detail::format("{}: nothing fetched", remote.error));
        } else if (!mine.empty() && theirs && *theirs != mine) {
            failed.push_back(resilite::detail::format(
                "the remote folder {} holds another database's copies (identity {}; this database is {}): "
                "nothing fetched",
                offsite_folder(s.offsite, ctx_.path), *theirs, mine));
        } else {
            for (const auto& [missing, kind, dir] : {std::tuple{no_archive, "archive", archive_dir},
                                                    std::tuple{no_backups, "backups", backup_dir}}) {
                if (!missing) continue;
                if (auto e = offsite_fetch(s.offsite, ctx_.path, kind, dir); e.empty()) fetched.push_back(kind);
                else failed.push_back(e);
            }
            const auto owner = !mine.empty() ? mine : theirs.value_or("");
            if (no_archive && !owner.empty() && !read_archive_identity(archive_dir) &&
                archive_holds_records(archive_dir))
                static_cast<void>(write_archive_identity(archive_dir, owner));
        }
        if (no_archive && std::find(fetched.begin(), fetched.end(), std::string{"archive"}) != fetched.end() &&
            evidence_seq_ == 0) {
            // What is known: where the copy off the machine ends. Not how far the lost one reached.
            const auto copy = archive::read_archive(archive_dir);
            offsite_window_ =
                copy.records.empty()
                    ? std::string{"every commit: the archive fetched from the remote holds no record"}
                    : resilite::detail::format(
                          "commits after archive record {} ({} UTC), the last the remote holds, before this "
                          "machine lost its archive (a copy goes off the machine once per offsite.interval, "
                          "{} s, while the remote is reachable; no high-water mark is left here to say more)",
                          copy.records.back().header.seq, copy.records.back().header.utc,
                          s.offsite.interval.count());
        }
        rep.sources.push_back(
            {resilite::detail::format("off the machine ({})", offsite_folder(s.offsite, ctx_.path)), false,
             resilite::detail::format(
                 "{}{}{}",
                 fetched.empty()
                     ? ""
                     : "fetched the " + resilite::detail::format("{}", fmt::join(fetched, " and the ")) +
                           ", missing on this machine, for the sources below",
                 fetched.empty() || failed.empty() ? "" : "; ",
                 resilite::detail::format("{}", fmt::join(failed, "; ")))});
        rep.phases.push_back({"fetch", ctx_.now() - start});
    }

    // Backups are data, not code: a trigger or view in a restored copy that the damaged database
    // did not have (the same name and text) is dropped, so a planted one never reaches the live
    // database. When the damaged database cannot be read, a trigger whose text the archive holds
    // (its schema records) is vouched for by it; views are not archived, so nothing vouches for
    // them then. The declared schema adds its own triggers at the next open; the library's
    // capture triggers are regenerated there too.
    struct foreign_code {
        std::vector<std::string> dropped;  // "trigger t", "view v"
        bool damaged_read = false;         // vouched for by the damaged database (else by the archive)
    };
    // Views are not archived, and a replay never creates a trigger: the views and triggers the
    // damaged database had (when it can be read) and the result lacks, created after the backup
    // or lost with it, are created again from their text there (the database's own code). One
    // that cannot be is named in may_be_lost. Returns what was created, for the source's detail.
    std::string bring_back_code(const std::filesystem::path& candidate, heal_report& rep) {
        std::vector<std::string> created, failed;
        sqlite::connection c{candidate, SQLITE_OPEN_READWRITE};
        for (const auto& [type, name, table, sql] : damaged_code_) {
            if (c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = ?", name) != 0) continue;
            if (type == "trigger" &&
                c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", table) != 1)
                continue;  // (its table is not there: what the result lacks is named elsewhere)
            try {
                c.exec_script(sql);
                created.push_back(resilite::detail::format("{} {}", type, name));
            } catch (const std::exception&) {
                failed.push_back(resilite::detail::format("{} {}", type, name));
            }
        }
        if (!failed.empty())
            add_loss(rep, resilite::detail::format(
                              "the schema objects {} of the damaged database (not archived; their text there "
                              "could not be created again)",
                              fmt::join(failed, ", ")));
        if (created.empty()) return {};
        return resilite::detail::format(
            "created again from the damaged database (views are not archived, a replay creates no "
            "trigger): {}",
            fmt::join(created, ", "));
    }

    // Where the newest baseline record of a segment's text starts, if it holds one.
    [[nodiscard]] static std::optional<std::size_t> newest_baseline_at(std::string_view text) {
        for (auto at = text.rfind(" baseline outbox "); at != std::string_view::npos;
             at = at == 0 ? std::string_view::npos : text.rfind(" baseline outbox ", at - 1)) {
            const auto line = text.rfind('\n', at);
            const auto start = line == std::string_view::npos ? 0 : line + 1;
            if (text.substr(start).starts_with(archive::header_prefix)) return start;
        }
        return std::nullopt;
    }

    foreign_code drop_foreign_code(const std::filesystem::path& candidate, const std::filesystem::path* archive_dir) {
        foreign_code out;
        std::set<std::pair<std::string, std::string>> had;
        out.damaged_read = damaged_code_read_;  // (gather_evidence read them)
        for (const auto& [type, name, table, sql] : damaged_code_)
            had.emplace(name, sql);
        sqlite::connection c{candidate, SQLITE_OPEN_READWRITE};
        auto code = c.query_all<std::string, std::string, std::string>(
            "SELECT type, name, ifnull(sql, '') FROM sqlite_master WHERE type IN ('trigger', 'view')");
        if (!out.damaged_read && archive_dir != nullptr) {
            // The schema as the archive last described it: from its newest baseline on (dropping
            // a trigger writes one, which no longer holds it), newest segment first.
            const auto segments = archive::list_segments(*archive_dir);
            for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
                const auto file = archive::read_file(*archive_dir / *it);
                std::string_view text = file;
                const auto baseline = newest_baseline_at(text);
                if (baseline) text = text.substr(*baseline);
                for (const auto& [type, name, sql] : code)
                    if (type == "trigger" && text.find(archive::if_not_exists(sql)) != std::string::npos)
                        had.emplace(name, sql);
                if (baseline) break;
            }
        }
        for (auto& [type, name, sql] : code) {
            if (archive::reserved_name(name) || had.count({name, sql}) != 0) continue;
            c.exec_script(
                resilite::detail::format("DROP {} {}", type == "view" ? "VIEW" : "TRIGGER", quote_id(name)));
            out.dropped.push_back(resilite::detail::format("{} {}", type, name));
        }
        return out;
    }

    // What shows which archive records committed, from outside the archive: the high-water mark
    // beside the database, and the damaged database's own record number where it can be read.
    void gather_evidence(heal_report& rep, const settings& s) {
        std::vector<std::string> what;
        std::int64_t best = 0;
        // The database's identity from its sidecar (the damaged file may not be readable).
        const auto mark = archive::read_high_water(archive::high_water_path(ctx_.path));
        const auto sidecar = read_marker(ctx_.path);
        const auto& mine = sidecar.identity;
        if (const auto hwm = mark.for_database(mine); hwm > 0) {
            best = hwm;
            what.push_back(resilite::detail::format("high-water mark {}", hwm));
        } else if (mark.names_another(mine)) {
            what.push_back(
                resilite::detail::format("a high-water mark {} of another database (identity {}), not taken",
                                         mark.seq, mark.identity));
        }
        damaged_outbox_.reset();
        outbox_stale_.clear();
        const auto mark_seq = best;  // (the high-water mark's, before the damaged file's own)
        damaged_violations_.reset();
        damaged_virtual_.clear();
        damaged_tables_.clear();
        damaged_unarchived_.reset();
        damaged_readable_ = false;
        damaged_sound_.reset();
        damaged_code_.clear();
        damaged_code_read_ = false;
        if (!rep.quarantine.empty()) {
            // Each part read on its own: a damaged table must not hide the rest (its record
            // number, its views and triggers).
            damaged_file_ = rep.quarantine / ctx_.path.filename();
            std::vector<std::string> unread;
            std::size_t tried = 0;
            const auto read = [&](std::string_view part, auto&& f) {
                ++tried;
                try {
                    f();
                    return true;
                } catch (const std::exception&) {
                    unread.emplace_back(part);
                    return false;
                }
            };
            std::int64_t seq = 0;
            read("its record number", [&] { seq = archive_seq_of(damaged_file_).value_or(0); });
            if (seq > 0) {
                best = std::max(best, seq);
                // (Exact only when the file is not behind the mark: one that lost its -wal holds
                // an older number, and the last commits are then known from the mark alone.)
                rep.committed_exact = seq >= mark_seq || sidecar.rolled_back_to == seq;
                what.push_back(resilite::detail::format("the damaged database holds record {}", seq));
            }
            if (!read("its outbox", [&] { damaged_outbox_ = archive::unarchived_in(damaged_file_); }))
                damaged_outbox_.reset();
            // A file holding fewer records than the mark says committed lost its latest commits
            // (its -wal removed after a crash, an older copy put in its place): its outbox is that
            // older state's, no count of what the archive lacks (a batched archive's last
            // interval went with the -wal).
            // (Not a copy resilite::restore() put back on purpose: it rolled back to that number.)
            if (damaged_outbox_ && seq < mark_seq && sidecar.rolled_back_to != seq) {
                damaged_outbox_.reset();
                outbox_stale_ = resilite::detail::format(
                    "the damaged database holds record {} where record {} is known committed: it lost its "
                    "latest commits, and its outbox cannot tell",
                    seq, mark_seq);
            }
            std::optional<sqlite::connection> damaged;
            if (read("anything", [&] { damaged.emplace(damaged_file_, SQLITE_OPEN_READONLY); })) {
                if (!read("its foreign keys", [&] { damaged_violations_ = foreign_key_violations(*damaged); }))
                    damaged_violations_.reset();
                if (!read("its virtual tables", [&] { damaged_virtual_ = virtual_tables(*damaged); }))
                    damaged_virtual_.clear();
                // Its tables that its archived schema never described (created where no capture
                // trigger saw them); not virtual tables, nor their shadow tables: never archived.
                if (!read("its tables", [&] {
                        std::set<std::string> described;
                        if (damaged->query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = "
                                                    "'resilite_archive_schema'") == 1)
                            for (auto& t : damaged->query_all<std::string>(
                                     "SELECT lower(name) FROM resilite_archive_schema WHERE type = 'table'"))
                                described.insert(std::move(t));
                        for (auto& t : damaged->query_all<std::string>(
                                 "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table'")) {
                            const bool shadow = std::any_of(damaged_virtual_.begin(), damaged_virtual_.end(),
                                                            [&](const std::string& v) {
                                                                return lower(t).starts_with(lower(v) + "_");
                                                            });
                            if (!archive::reserved_name(t) && !shadow && described.count(lower(t)) == 0)
                                damaged_tables_.insert(std::move(t));
                        }
                    }))
                    damaged_tables_.clear();
                if (!read("its capture triggers", [&] { damaged_unarchived_ = archive::unarchived_columns(*damaged); }))
                    damaged_unarchived_.reset();
                damaged_code_read_ = read("its views and triggers", [&] {
                    for (auto& [type, name, table, sql] :
                         damaged->query_all<std::string, std::string, std::string, std::string>(
                             "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE type IN ('view', 'trigger') "
                             "AND sql IS NOT NULL"))
                        if (!archive::reserved_name(name)) damaged_code_.push_back({type, name, table, sql});
                });
                if (!damaged_code_read_) damaged_code_.clear();
                damaged_readable_ = damaged_unarchived_.has_value() && unread.empty();
            }
            // (Nothing read, as with a damaged header: it cannot be read. Some parts: which.)
            const bool none = std::find(unread.begin(), unread.end(), "anything") != unread.end() ||
                              (unread.size() + 1 == tried);  // (every part but the open)
            if (none)
                what.emplace_back("the damaged database cannot be read");
            else if (!unread.empty())
                what.push_back(resilite::detail::format("the damaged database cannot be read in part ({})",
                                                        fmt::join(unread, ", ")));
        }
        batched_ = s.archive.enabled && s.archive.when == archive_settings::flush::batched;
        batch_interval_ = s.archive.interval;
        if (best > 0) rep.committed_seq = best;
        rep.evidence = resilite::detail::format("{}", fmt::join(what, "; "));
        evidence_seq_ = best;
        evidence_ = rep.evidence;
    }

    // The acknowledged commits a result holding records up to `reached` lacks, by the evidence.
    [[nodiscard]] std::optional<std::string> loss_beyond(std::int64_t reached, const std::filesystem::path& archive_dir) {
        const auto committed = committed_seq_();
        if (committed <= reached) return std::nullopt;
        return resilite::detail::format(
            "acknowledged commits in archive records {} to {} are missing: the archive ends at record {} "
            "(its tail was cut or lost), while record {} is known committed ({})",
            reached + 1, committed, archive_last(archive_dir), committed, evidence_);
    }
    [[nodiscard]] std::int64_t committed_seq_() const { return evidence_seq_; }

    // After a loss accepted, the lost records' numbers are never used again: the healed database
    // continues after them, and its next open writes a full snapshot (the archive has a gap).
    void number_after_loss(const std::filesystem::path& candidate) const {
        sqlite::connection c{candidate, SQLITE_OPEN_READWRITE};
        c.exec("UPDATE resilite_archive_state SET last_seq = max(last_seq, ?)", evidence_seq_);
    }

    static void add_loss(heal_report& rep, const std::string& more) {
        if (more.empty()) return;
        rep.may_be_lost = rep.may_be_lost.empty() ? more : more + "; " + rep.may_be_lost;
    }

    // Changes captured in the damaged database that never reached the archive: a batched
    // archive's last interval, or, with flush on commit, writes committed around the library
    // (with_connection, another program) that no drain took before the damage.
    [[nodiscard]] std::string unarchived_window() const {
        if (damaged_outbox_ && *damaged_outbox_ > 0)
            return resilite::detail::format(
                "{} changes captured in the damaged database were never archived ({})", *damaged_outbox_,
                batched_ ? "batched archive"
                         : "committed around the library, with with_connection or by another program, "
                           "and not drained before the damage");
        if (!batched_ || damaged_outbox_) return {};
        return resilite::detail::format(
            "the changes committed in the last {} ms before the damage, which the batched archive "
            "may not have taken yet ({})",
            std::chrono::duration_cast<std::chrono::milliseconds>(batch_interval_).count(),
            outbox_stale_.empty() ? std::string{"the damaged database cannot be read to tell"} : outbox_stale_);
    }

    // Tables the damaged database held (when it could be read) and its archived schema never
    // described, that the result lacks: created where no capture trigger saw them (another
    // program, since the library last wrote).
    [[nodiscard]] std::string missing_tables_note(const std::filesystem::path& result) const {
        if (damaged_tables_.empty()) return {};
        sqlite::connection c{result, SQLITE_OPEN_READONLY};  // (verified: it can be read)
        std::set<std::string> have;
        for (auto& t : archive::user_tables(c))
            have.insert(lower(t));
        std::vector<std::string> missing;
        for (const auto& t : damaged_tables_)
            if (have.count(lower(t)) == 0) missing.push_back(t);
        if (missing.empty()) return {};
        return resilite::detail::format(
            "the table{} {} and {} rows, which the damaged database held and the archive never "
            "described (created where no capture trigger saw {}, by another program or around the "
            "library)",
            missing.size() == 1 ? "" : "s", fmt::join(missing, ", "), missing.size() == 1 ? "its" : "their",
            missing.size() == 1 ? "it" : "them");
    }

    // "table rowid -> parent" for every row that fails the foreign-key check, sorted.
    [[nodiscard]] static std::vector<std::string> foreign_key_violations(sqlite::connection& c) {
        std::vector<std::string> out;
        for (auto& [table, rowid, parent] : c.query_all<std::string, std::optional<std::int64_t>, std::string>(
                 "SELECT \"table\", rowid, parent FROM pragma_foreign_key_check"))
            out.push_back(resilite::detail::format(
                "{} row {} -> {}", table, rowid ? resilite::detail::format("{}", *rowid) : "?", parent));
        std::sort(out.begin(), out.end());
        return out;
    }

    // Outbox rows above the last archived one in a (damaged) database: captured, never archived.
    [[nodiscard]] static std::int64_t archive_last(const std::filesystem::path& dir) {
        const auto segments = archive::list_segments(dir);
        for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
            std::error_code ec;
            const auto size = std::filesystem::file_size(dir / *it, ec);
            if (ec) continue;
            if (const auto t = archive::read_last_record(dir / *it, size, *it)) return t->seq;
            const auto text = archive::read_file(dir / *it);
            const auto contents = archive::read_segment(text, *it);
            std::int64_t best = 0;
            for (const auto& r : contents.records)
                best = std::max(best, r.header.seq);
            if (best > 0) return best;
        }
        return 0;
    }

    // Virtual tables (FTS5, R*Tree, ...) are not archived: the ones the result or the damaged
    // database (when it could be read, gather_evidence) holds are named, so that the report never
    // says nothing committed is missing because of them.
    [[nodiscard]] static std::set<std::string> unarchived_columns_of(const std::filesystem::path& db) {
        try {
            sqlite::connection c{db, SQLITE_OPEN_READONLY};
            return archive::unarchived_columns(c);
        } catch (const std::exception&) {  // (the declared ones are still named)
            return {};
        }
    }

    [[nodiscard]] std::string virtual_tables_note(std::string_view which, const std::filesystem::path& result) const {
        auto names = damaged_virtual_;
        sqlite::connection c{result, SQLITE_OPEN_READONLY};  // (verified: it can be read)
        names.merge(virtual_tables(c));
        for (const auto& n : restored_virtual_)
            names.erase(n);
        if (names.empty()) return {};
        return resilite::detail::format("{} of the virtual table{} {} (virtual tables are not archived)",
                                        which, names.size() == 1 ? "" : "s", fmt::join(names, ", "));
    }
    [[nodiscard]] static std::set<std::string> virtual_tables(sqlite::connection& c) {
        std::set<std::string> out;
        for (auto& n : c.query_all<std::string>("SELECT name FROM sqlite_master WHERE type = 'table' AND "
                                                "sql LIKE 'CREATE VIRTUAL TABLE%'"))
            out.insert(std::move(n));
        return out;
    }

    // Secret columns are never archived: what the archive wrote holds a placeholder there.
    // The declared ones, and `unarchived`: those the capture triggers leave out (a program that
    // does not declare the schema, such as the resilite command, must name them too), read from
    // the damaged database where it can be read (its triggers are the newest), else from the
    // backup as restored. Never from the result: a column added after the backup is in its table
    // but not in the backup's triggers, though every value of it was archived.
    // Those salvage_secrets took back from the damaged database are not named.
    [[nodiscard]] std::string secrets_note(std::string_view which, std::set<std::string> unarchived) const {
        auto secrets = secret_columns(std::move(unarchived));
        for (const auto& c : salvaged_)
            secrets.erase(c);
        if (secrets.empty()) return {};
        return resilite::detail::format("{} ({}) hold placeholders: secrets are never archived", which,
                                        fmt::join(secrets, ", "));
    }
    // "table.column" (lower case): the declared secrets and `unarchived`.
    [[nodiscard]] static std::set<std::string> secret_columns(std::set<std::string> unarchived) {
        for (const auto& t : archive::capture_tables(R::schema::definition()))
            for (const auto& c : t.secrets)
                unarchived.insert(lower(t.name) + "." + lower(c));
        return unarchived;
    }
    // Whether the damaged database, read in every part, passes a full integrity check: asked only
    // when something would be taken from it (the check reads every page; it stops at the first
    // problem), once per heal.
    [[nodiscard]] bool damaged_sound() {
        if (!damaged_sound_) {
            damaged_sound_ = false;
            if (damaged_readable_) {
                try {
                    sqlite::connection c{damaged_file_, SQLITE_OPEN_READONLY};
                    const auto r = integrity_findings(c, true, 1);
                    damaged_sound_ = r.size() == 1 && r.front() == "ok";
                } catch (const std::exception&) {  // (damage the check itself meets)
                }
            }
        }
        return *damaged_sound_;
    }

    // The damaged database attached to the result as resilite_damaged (read-only), once, when
    // first needed.
    struct damaged_attachment {
        sqlite::connection& c;
        const std::filesystem::path& file;
        bool attached = false;
        void need() {
            if (std::exchange(attached, true)) return;
            c.exec("ATTACH DATABASE ? AS resilite_damaged", read_only_uri(file));
        }
    };

    // What the archive does not hold, taken where it can be (a verified source's result): the
    // secret columns and the virtual tables' rows. One connection, with no trigger firing (a
    // user's trigger must not run for a copy, the capture triggers must not archive it). Returns
    // what the source's detail says.
    std::string take_what_the_archive_lacks(const std::filesystem::path& result) {
        sqlite::connection c{result, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI};
        sqlite3_db_config(c.native_handle(), SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, nullptr);
        damaged_attachment damaged_db{c, damaged_file_};
        auto out = salvage_secrets(c, damaged_db);
        add_detail(out, restore_virtual_tables(c, damaged_db));
        if (damaged_db.attached) c.exec("DETACH DATABASE resilite_damaged");
        return out;
    }

    // Secret columns are never archived: the result holds placeholders there, or the backup's
    // older values. A damaged database that passes its integrity check (an on-demand heal of a
    // sound database) still holds them: they are copied from it into each row whose archived
    // columns all equal the damaged database's row (so a secret never joins another version of
    // its row). The columns salvaged in every row are remembered for
    // secrets_note; returns what the source's detail says, or nothing.
    std::string salvage_secrets(sqlite::connection& c, damaged_attachment& damaged_db) {
        salvaged_.clear();
        if (!damaged_unarchived_) return {};
        const auto wanted = secret_columns(*damaged_unarchived_);
        if (wanted.empty() || !damaged_sound()) return {};
        damaged_db.need();
        std::map<std::string, std::vector<std::string>> by_table;  // lower(table) -> its secret columns
        for (const auto& tc : wanted)
            by_table[tc.substr(0, tc.find('.'))].push_back(tc.substr(tc.find('.') + 1));
        std::vector<std::string> done;
        std::set<std::string> partly;
        for (auto& [table, secrets] : by_table) {
            const auto shape = archive::shape_of(c, table);
            const auto theirs = c.query_all<std::string>("SELECT lower(name) FROM pragma_table_info(?, 'resilite_damaged')", table);
            const auto has = [&](const std::string& col) {
                return std::find(theirs.begin(), theirs.end(), lower(col)) != theirs.end();
            };
            // (A table whose columns differ from the damaged one's, or whose key is secret: no row is
            // known to be the same.)
            std::vector<std::string> copy, match;
            bool comparable = !shape.columns.empty();
            for (const auto& col : shape.columns) {
                const bool secret = std::find(secrets.begin(), secrets.end(), lower(col.name)) != secrets.end();
                comparable = comparable && has(col.name) && !(secret && col.pk > 0);
                (secret ? copy : match).push_back(col.name);
            }
            if (!comparable || copy.empty()) continue;
            const auto ours = "main." + quote_id(table);
            const auto damaged = "resilite_damaged." + quote_id(table);
            std::string same = shape.key.empty()
                                   ? resilite::detail::format("{0}.{2} = {1}.{2}", damaged, ours, shape.rowid)
                                   : "1";
            for (const auto& col : match)
                same += resilite::detail::format(" AND {0}.{2} IS {1}.{2}", damaged, ours, quote_id(col));
            std::vector<std::string> quoted, from;
            for (const auto& col : copy) {
                quoted.push_back(quote_id(col));
                from.push_back(damaged + "." + quote_id(col));
            }
            c.exec(resilite::detail::format(
                "UPDATE {0} SET ({1}) = (SELECT {2} FROM {3} WHERE {4}) WHERE EXISTS (SELECT 1 FROM {3} "
                "WHERE {4})",
                ours, fmt::join(quoted, ", "), fmt::join(from, ", "), damaged, same));
            const auto left =
                c
                    .query_one<std::int64_t>(resilite::detail::format(
                        "SELECT count(*) FROM {0} WHERE NOT EXISTS (SELECT 1 FROM {1} WHERE {2})", ours,
                        damaged, same))
                    .value_or(0);
            for (const auto& col : copy) {
                const auto name = lower(table) + "." + lower(col);
                if (left == 0) {
                    salvaged_.insert(name);
                    done.push_back(name);
                } else {
                    partly.insert(name);
                }
            }
        }
        std::string out;
        if (!done.empty())
            out = resilite::detail::format(
                "secret columns {} taken from the damaged database (it passes its integrity check)",
                fmt::join(done, ", "));
        if (!partly.empty())
            out += resilite::detail::format(
                "{}secret columns {} taken from the damaged database where its row is the same",
                out.empty() ? "" : "; ", fmt::join(partly, ", "));
        return out;
    }
    // Virtual tables are not archived. What a heal can do for each one in the result: an FTS
    // index over a table of its own (content=...) is rebuilt from that table, which is archived
    // (the backup's index would answer from the backup's rows, silently); the rows of an FTS
    // table that holds its own text, or of an R*Tree, are copied from a damaged database that
    // passes its integrity check and defines the table the same way. Returns what the source's
    // detail says; the tables done are left out of virtual_tables_note.
    std::string restore_virtual_tables(sqlite::connection& c, damaged_attachment& damaged_db) {
        restored_virtual_.clear();
        std::vector<std::string> rebuilt, copied, created;
        if (!damaged_virtual_.empty() && damaged_sound()) {  // (the archive alone: none in the result)
            damaged_db.need();
            for (auto& [name, sql] : c.query_all<std::string, std::string>(
                     "SELECT name, sql FROM resilite_damaged.sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE "
                     "VIRTUAL TABLE%' AND name NOT IN (SELECT name FROM main.sqlite_master)")) {
                c.exec_script(sql);
                created.push_back(name);
            }
        }
        for (auto& [name, sql] : c.query_all<std::string, std::string>(
                 "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'")) {
            const auto module = virtual_module(sql);
            const bool fts = module == "fts5" || module == "fts4" || module == "fts3";
            const auto content = content_option(sql);
            if (fts && content && !content->empty()) {
                c.exec(resilite::detail::format("INSERT INTO {0}({0}) VALUES('rebuild')", quote_id(name)));
                rebuilt.push_back(name);
                restored_virtual_.insert(name);
                continue;
            }
            const bool copyable = (fts && !content) || module == "rtree" || module == "rtree_i32";
            if (!copyable || !damaged_sound()) continue;
            damaged_db.need();
            if (c.query_one<std::string>(
                     "SELECT sql FROM resilite_damaged.sqlite_master WHERE type = 'table' AND name = ?", name) != sql)
                continue;
            std::vector<std::string> columns;
            if (fts) columns.emplace_back("rowid");  // (an R*Tree's first column is its rowid)
            for (auto& col : c.query_all<std::string>("SELECT name FROM pragma_table_info(?)", name))
                columns.push_back(quote_id(col));
            c.exec(resilite::detail::format("DELETE FROM main.{}", quote_id(name)));
            c.exec(resilite::detail::format("INSERT INTO main.{0}({1}) SELECT {1} FROM resilite_damaged.{0}",
                                            quote_id(name), fmt::join(columns, ", ")));
            copied.push_back(name);
            restored_virtual_.insert(name);
        }
        std::string out;
        if (!created.empty())
            out = resilite::detail::format("virtual table{} {} created again from the damaged database",
                                           created.size() == 1 ? "" : "s", fmt::join(created, ", "));
        if (!rebuilt.empty())
            add_detail(out, resilite::detail::format(
                                "FTS index{} {} rebuilt from {} table{}", rebuilt.size() == 1 ? "" : "es",
                                fmt::join(rebuilt, ", "), rebuilt.size() == 1 ? "its" : "their",
                                rebuilt.size() == 1 ? "" : "s"));
        if (!copied.empty())
            add_detail(out, resilite::detail::format(
                                "the rows of the virtual table{} {} taken from the damaged database (it "
                                "passes its integrity check)",
                                copied.size() == 1 ? "" : "s", fmt::join(copied, ", ")));
        return out;
    }
    static void add_detail(std::string& detail, const std::string& more) {
        if (more.empty()) return;
        detail += (detail.empty() ? "" : "; ") + more;
    }
    // "CREATE VIRTUAL TABLE x USING fts5(...)" -> "fts5" (lower case).
    [[nodiscard]] static std::string virtual_module(std::string_view sql) {
        const auto text = lower(sql);
        const auto at = text.find(" using ");
        if (at == std::string::npos) return {};
        auto rest = std::string_view{text}.substr(at + 7);
        while (!rest.empty() && rest.front() == ' ')
            rest.remove_prefix(1);
        return std::string{rest.substr(0, std::min(rest.find('('), rest.find(' ')))};
    }
    // The value of an FTS table's content= option (unquoted; empty: contentless), or nothing.
    [[nodiscard]] static std::optional<std::string> content_option(std::string_view sql) {
        const auto text = lower(sql);
        for (auto at = text.find("content"); at != std::string::npos; at = text.find("content", at + 1)) {
            const char before = at == 0 ? ' ' : text[at - 1];
            if (std::isalnum(static_cast<unsigned char>(before)) || before == '_') continue;
            auto i = at + 7;
            while (i < text.size() && text[i] == ' ')
                ++i;
            if (i >= text.size() || text[i] != '=') continue;  // (content_rowid, or a column named so)
            ++i;
            while (i < text.size() && text[i] == ' ')
                ++i;
            std::string value;
            if (i < text.size() && (text[i] == '\'' || text[i] == '"')) {
                const char q = text[i];
                for (++i; i < text.size(); ++i) {
                    if (text[i] == q && (i + 1 >= text.size() || text[++i] != q)) break;  // ('' inside: one ')
                    value += sql[i];
                }
            } else {
                for (; i < text.size() && text[i] != ',' && text[i] != ')' && text[i] != ' '; ++i)
                    value += sql[i];
            }
            return value;
        }
        return std::nullopt;
    }
    // file: URI of a path, read-only ('%', '?' and '#' escaped).
    [[nodiscard]] static std::string read_only_uri(const std::filesystem::path& p) {
        std::string out = "file:";
        for (const char ch : std::filesystem::absolute(p).string()) {
            if (ch == '%' || ch == '?' || ch == '#')
                out += resilite::detail::format("%{:02X}", static_cast<unsigned char>(ch));
            else
                out += ch;
        }
        return out + "?mode=ro";
    }

    // Why the candidate is not good enough, or nothing. Fills the rows per table.
    std::optional<std::string> verify(const std::filesystem::path& candidate, const std::filesystem::path* archive_dir,
                                      heal_report& rep) {
        const auto start = ctx_.now();
        ctx_.inject("heal:verify", 1);
        rep.tables.clear();
        std::set<std::string> unarchived;  // "table.column" the archive never holds, "table.*" of virtual tables
        {
            sqlite::connection c{candidate, SQLITE_OPEN_READWRITE};
            // A long check stops at the time limit (SQLITE_INTERRUPT: this source fails).
            sqlite3_progress_handler(
                c.native_handle(), 100000, [](void* self) { return static_cast<heal_flow*>(self)->past_limit() ? 1 : 0; },
                this);
            const auto integrity = integrity_findings(c, true);
            if (integrity.size() != 1 || integrity.front() != "ok")
                return resilite::detail::format("the result fails its integrity check: {}",
                                                integrity.empty() ? "?" : integrity.front());
            // Foreign-key violations the database already had (SQLite does not enforce foreign
            // keys unless asked) are reported; ones the damaged database did not have are damage.
            const auto violations = foreign_key_violations(c);
            if (!violations.empty()) {
                std::vector<std::string> extra;
                if (damaged_violations_)
                    std::set_difference(violations.begin(), violations.end(), damaged_violations_->begin(),
                                        damaged_violations_->end(), std::back_inserter(extra));
                if (!extra.empty())
                    return resilite::detail::format(
                        "the result has foreign-key violations the damaged database did not have ({})",
                        fmt::join(extra, ", "));
                fk_note_ = resilite::detail::format(
                    "; {} foreign-key violation{} ({}) that the database {}, kept as they were",
                    violations.size(), violations.size() == 1 ? "" : "s",
                    fmt::join(violations.begin(),
                              violations.begin() +
                                  static_cast<std::ptrdiff_t>(std::min<std::size_t>(violations.size(), 5)),
                              ", "),
                    damaged_violations_ ? "had already" : "may have had (it cannot be read to tell)");
            } else {
                fk_note_.clear();
            }
            const auto expected = read_marker(ctx_.path).identity;
            if (const auto id = read_identity(c).value_or(""); !expected.empty() && id != expected)
                return resilite::detail::format("the result is another database (identity {}, expected {})",
                                                id.empty() ? "none" : id, expected);
            for (const auto& t : archive::user_tables(c))
                rep.tables.push_back({t, c.query_one<std::int64_t>("SELECT count(*) FROM " + quote_id(t)).value_or(0)});
            // Virtual tables and their shadow tables are not archived (named in may_be_lost):
            // not compared with the trial rebuild.
            // Nor are the columns the capture triggers leave out: the secrets of a program that does
            // not declare the schema (the resilite command), which hold placeholders in a rebuild.
            unarchived = archive::unarchived_columns(c);
            for (auto& t : c.query_all<std::string>(
                     "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type IN ('virtual', 'shadow')"))
                unarchived.insert(lower(t) + ".*");
        }
        if (archive_dir != nullptr && archive_bytes(*archive_dir) > ctx_.with_lock([&] {
                return ctx_.config.healing.trial_rebuild_limit_bytes;
            })) {
            rep.verification = "integrity and foreign keys (the archive is above the trial-rebuild limit)";
        } else if (archive_dir != nullptr) {
            rep.verification = "integrity, foreign keys, every table equal to a trial rebuild of the archive";
            inspect_options o;
            o.live_database = candidate;
            o.whole_archive = true;
            for (const auto& t : archive::capture_tables(R::schema::definition()))
                for (const auto& c : t.secrets)
                    o.excluded_columns.insert(lower(t.name) + "." + c);
            o.excluded_columns.merge(unarchived);
            const auto r = inspect_archive(*archive_dir, o);
            if (!r.rebuildable()) {
                // Damaged records the replay did not need (before the backup's): reported, and
                // the trial rebuild that would need them is not possible.
                std::string problems;
                for (const auto& p : r.problems)
                    if (p.fatal) problems += (problems.empty() ? "" : "; ") + p.message;
                rep.verification = resilite::detail::format(
                    "integrity and foreign keys (the archive alone cannot be rebuilt, so "
                    "no trial rebuild: {})",
                    problems);
            } else if (r.reproduces_live != true) {
                std::string differs;
                for (const auto& t : r.tables)
                    if (t.matches_live == false) differs += (differs.empty() ? "" : ", ") + t.name;
                if (!differs.empty())
                    return resilite::detail::format(
                        "the result differs from what the archive holds (tables {})", differs);
                // Only tables the archive does not describe at all (a table a backup holds that
                // was created after the archive's last record, whose schema the archive never
                // received): nothing to compare them with, and no sign of loss.
                std::vector<std::string> unknown;
                for (const auto& p : r.problems)
                    if (p.what == archive_problem::kind::mismatch) unknown.push_back(p.message);
                rep.verification = resilite::detail::format(
                    "integrity, foreign keys, every table the archive describes equal to "
                    "a trial rebuild of it (not compared: {})",
                    fmt::join(unknown, "; "));
            }
        }
        if (archive_dir == nullptr) rep.verification = "integrity and foreign keys";
        rep.verification += fk_note_;
        rep.phases.push_back({"verify", ctx_.now() - start});
        progress("verify", 80);
        return std::nullopt;
    }

    [[nodiscard]] std::filesystem::path archive_directory(const settings& s) const {
        return archive::archive_directory(ctx_.path, s.archive.directory);
    }

    [[nodiscard]] static std::uintmax_t archive_bytes(const std::filesystem::path& dir) {
        std::uintmax_t n = 0;
        for (const auto& name : archive::list_segments(dir)) {
            std::error_code ec;
            const auto size = std::filesystem::file_size(dir / name, ec);
            n += ec ? 0 : size;
        }
        return n;
    }

    [[nodiscard]] static bool archive_holds_records(const std::filesystem::path& dir) {
        std::error_code ec;
        return std::filesystem::is_directory(dir, ec) && !archive::list_segments(dir).empty();
    }

    [[nodiscard]] std::vector<backup_file> newest_first(const settings& s) const {
        const auto dir = backup_directory(ctx_.path, s.backup);
        std::error_code ec;
        if (!std::filesystem::is_directory(dir, ec)) return {};
        auto all = list_backups(ctx_.path, dir);
        std::reverse(all.begin(), all.end());
        return all;
    }

    [[nodiscard]] static std::optional<std::int64_t> archive_seq_of(const std::filesystem::path& db) {
        sqlite::connection c{db, SQLITE_OPEN_READONLY};
        return archive::stored_archive_seq(c).value_or(0);
    }

    // Operations of other processes end (each holds the gate for one operation or transaction);
    // ours hold the writer lock, which the caller has. Waiting is polling: a flock cannot time
    // out. Sleeps on the real clock; the limit is counted on the Database's clock and on the
    // real one (a manual clock moves only when a test says, and a Database of this process
    // holding the gate on another thread would otherwise keep us waiting forever).
    void wait_for_gate(exclusive_gate& gate, const settings& s, heal_report& rep) {
        if (gate.try_take()) return;
        progress("waiting for operations of other processes on the database to end", 0);
        const auto real_start = std::chrono::steady_clock::now();
        while (!gate.try_take()) {
            if (past_limit() || std::chrono::steady_clock::now() - real_start > time_limit_) {
                rep.duration = ctx_.now() - start_;
                const auto text = resilite::detail::format(
                    "operations of other processes held the database for longer than the heal's time limit "
                    "of {} s; "
                    "nothing was moved (the heal runs again on the next call or open)",
                    s.healing.time_limit.count());
                ctx_.emit_since("heal_finished", start_, outcome::failed, 0, error_class::busy, text);
                throw library_failure(error_class::busy, "heal", text, ctx_.path.string());
            }
            std::this_thread::sleep_for(std::chrono::milliseconds{1});
        }
    }

    [[nodiscard]] bool past_limit() const { return ctx_.now() - start_ > time_limit_; }

    bool over_time(const settings& s, heal_report& rep) {
        if (!past_limit()) return false;
        rep.sources.push_back(
            {"time limit", false,
             resilite::detail::format("the heal took longer than its limit of {} s and stopped there",
                                      s.healing.time_limit.count())});
        return true;
    }

    void progress(std::string_view phase, int percent) {
        ctx_.emit_since("heal_progress", ctx_.now(), outcome::ok, percent, error_class::none, phase);
        if (!ctx_.on_progress) return;
        try {
            ctx_.on_progress(resilite::progress{"heal", phase, static_cast<std::uint64_t>(percent), 100, "%"});
        } catch (...) {  // a display's failure never fails the heal
        }
    }
    // A replay's or rebuild's own progress, told as the heal's.
    [[nodiscard]] progress_fn sub_progress(std::string_view step) const {
        if (!ctx_.on_progress) return {};
        return [this, step](const resilite::progress& p) {
            ctx_.on_progress(resilite::progress{"heal", step, p.done, p.total, p.unit});
        };
    }

    void save(const marker& m) {
        if (!write_marker(ctx_.path, m)) {
            throw library_failure(
                error_class::io, "heal",
                resilite::detail::format("could not write the sidecar {}", marker_path(ctx_.path).string()),
                ctx_.path.string());
        }
    }

    // One JSON line per heal, synced: the audit trail.
    void append_log(const heal_report& rep) noexcept {
        try {
            const auto log = heal_log_path(ctx_.path);
            {
                std::ofstream out(log, std::ios::app);
                out << rep.to_json() << '\n';
            }
            static_cast<void>(fsync_path(log, false));
        } catch (...) {
        }
    }

    // Quarantined files older than the retention go, never the one this heal made.
    void remove_expired_quarantines(const healing_settings& hs, const std::filesystem::path& keep) noexcept {
        try {
            const auto now = std::filesystem::file_time_type::clock::now();
            std::error_code ec;
            for (const auto& q : list_quarantines(ctx_.path, quarantine_root(ctx_.path, hs))) {
                if (q == keep) continue;
                const auto t = std::filesystem::last_write_time(q, ec);
                if (!ec && now - t > hs.retention) std::filesystem::remove_all(q, ec);
            }
        } catch (...) {
        }
    }

    static constexpr std::string_view opened_again = "this process's heal, opened again";
    context<R>& ctx_;
    std::optional<std::uint64_t> own_epoch_;  // the heal epoch this process's last heal made
    std::int64_t evidence_seq_ = 0;
    std::string evidence_;
    // The archive came back from the remote and nothing on this machine says how far it reached:
    // the commits of the last offsite interval may never have gone off the machine.
    std::string offsite_window_;
    std::optional<std::int64_t> damaged_outbox_;
    std::string outbox_stale_;  // why the damaged file's outbox was not taken as a count
    std::optional<std::vector<std::string>> damaged_violations_;  // nothing: the damaged file is unreadable
    std::optional<std::set<std::string>> damaged_unarchived_;  // unarchived_columns of the damaged file, when readable
    bool damaged_readable_ = false;             // every part of it could be read (gather_evidence)
    std::optional<bool> damaged_sound_;         // damaged_sound(), once asked
    std::filesystem::path damaged_file_;  // in the quarantine
    std::set<std::string> salvaged_;      // the secret columns salvage_secrets took back in every row
    std::set<std::string> restored_virtual_;  // the virtual tables restore_virtual_tables rebuilt or took back
    // The views and triggers of the damaged database (type, name, table, text), when readable.
    std::vector<std::tuple<std::string, std::string, std::string, std::string>> damaged_code_;
    bool damaged_code_read_ = false;  // (an empty damaged_code_ then means it had none)
    std::set<std::string> damaged_virtual_;  // the virtual tables the damaged file holds (when readable)
    std::set<std::string> damaged_tables_;   // its other tables, not the library's (when readable)
    std::string fk_note_;
    bool batched_ = false;
    std::chrono::milliseconds batch_interval_{0};
    bool refused_ = false;  // the circuit breaker refused this heal (not audited)
    time_point start_{};
    std::chrono::nanoseconds time_limit_{};
    std::optional<heal_report> last_;
};

}  // namespace resilite::detail
