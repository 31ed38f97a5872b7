#pragma once
// The steps that put a connection in place, shared by the open flow and by reconnects: refusals
// said at once (no retry can cure them), the connection with its durability settings, and the
// identity check that keeps a Database from ever writing into a file that is not its database.

#include <resilite/core/detail/read_only_volume.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/detail/link_path.hpp>
#include <resilite/durability/detail/pragmas.hpp>
#include <resilite/flow/detail/context.hpp>
#include <resilite/flow/detail/settings_fields.hpp>
#include <resilite/monitor/check_health.hpp>
#include <resilite/retry/detail/retry_state.hpp>
#include <resilite/schema/schema_mode.hpp>
#include <resilite/sqlite/detail/identity.hpp>
#include <resilite/sqlite/detail/marker.hpp>
#include <resilite/sqlite/transaction.hpp>

#include <fmt/format.h>

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace resilite::detail {

// Why these settings cannot be used by this Database type, or nothing: settings::problem(), each
// field's range (flow/detail/settings_fields.hpp), and what the policies allow. Pure: no lock.
template <class R>
[[nodiscard]] std::optional<std::string> settings_problem(const settings& s) {
    auto problem = s.problem();
    if (!problem) problem = field_range_problem(s);
    if (!problem && s.sync == synchronous::normal && !R::durability::allows_normal) {
        problem = "sync: synchronous=NORMAL needs the explicit opt-in resilite::relaxed_durability<>";
    }
    if (!problem && s.archive.enabled && !R::archiving) {
        problem =
            "archive.enabled: true needs the resilite::archive<> policy (it installs the capture triggers)";
    }
    if (!problem && s.healing.enabled && !R::healing::enabled) {
        problem = "healing.enabled: true needs the resilite::healing<> policy in the Database type";
    }
    return problem;
}

template <class R>
void refuse_invalid(const context<R>& ctx, const settings& s, std::string_view operation) {
    if (auto problem = settings_problem<R>(s))
        throw library_failure(error_class::invalid_setting, operation, *problem, ctx.path.string());
}

// A non-empty regular file without SQLite's header string that resilite never opened (no sidecar).
// (Read through the Database's VFS: one that encrypts or transforms the file shows the header.)
[[nodiscard]] inline bool never_a_database(const std::filesystem::path& path, const char* vfs) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(std::filesystem::symlink_status(path, ec))) return false;
    const auto size = std::filesystem::file_size(path, ec);
    return !ec && size > 0 && !read_marker(path).exists && !starts_like_sqlite(path, vfs);
}

// Problems no retry can solve, said at once instead of after the retry deadline.
template <class R>
void refuse_unusable_path(const context<R>& ctx) {
    if (!ctx.on_disk()) return;
    const auto& path = ctx.path;
    const auto dir = std::filesystem::absolute(path).parent_path();
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
        throw library_failure(error_class::cant_open, "open",
                              resilite::detail::format("the directory {} does not exist", dir.string()),
                              path.string());
    }
    // A heal moves the database's files by their names: through a link it would move the link and
    // leave the damaged file (and the -wal SQLite keeps beside it) where they are.
    if (R::healing::enabled && is_link_path(path)) {
        throw library_failure(
            error_class::permission, "open",
            resilite::detail::format(
                "the database path {} is a symbolic link (to {}); with healing<> resilite never follows one: "
                "open the file's real path, {}",
                path.string(), std::filesystem::read_symlink(path, ec).string(),
                std::filesystem::weakly_canonical(path, ec).string()),
            path.string());
    }
    // A file resilite never opened (no sidecar) that is not an SQLite database, a configuration
    // file named by mistake, is not damage: a heal would move it into quarantine and put a new
    // database in its place (`resilite heal` refuses it the same way).
    if (R::healing::enabled && never_a_database(path, ctx.vfs_name())) {
        throw library_failure(error_class::not_a_database, "open",
                              resilite::detail::format(
                                  "{} is not an SQLite database and resilite never opened it (no sidecar): "
                                  "not healed, nothing was changed",
                                  path.string()),
                              path.string());
    }
    // The longest side file resilite makes is the sidecar ("-resilite"), and backups add a time
    // to the name; a name too long for them would fail later, one feature at a time.
    const auto name = path.filename().string().size();
    const auto limit = static_cast<std::size_t>(::pathconf(dir.c_str(), _PC_NAME_MAX));
    // (healing adds "<name>.heal-log.jsonl" and "quarantine/<name>-<UTC>-<n>")
    const bool backups = ctx.config.backup.enabled;
    const std::size_t longest_suffix = backups ? 30 : ctx.config.healing.enabled ? 20 : 9;
    if (limit > longest_suffix && name > limit - longest_suffix) {
        throw library_failure(
            error_class::cant_open, "open",
            resilite::detail::format(
                "the file name is {} bytes; at most {} fit with the side files resilite keeps beside "
                "it{}",
                name, limit - longest_suffix, backups ? " and its backups" : ""),
            path.string());
    }
}

// A failure to open that no retry can end, said at once instead of after the retry deadline:
// the volume holding the database is mounted read-only (resilite opens it to write: the WAL, its
// sidecar), or has no free space left.
template <class R>
void refuse_hopeless_open(const context<R>& ctx, const error& failure) {
    if (!ctx.on_disk()) return;
    const auto dir = std::filesystem::absolute(ctx.path).parent_path();
    technical_detail d = failure.technical();
    if (on_read_only_volume(ctx.path)) {
        d.note = resilite::detail::format(
            "the volume holding {} is mounted read-only: remount it read-write (or copy the database to a "
            "writable volume) and open it again; nothing was changed",
            dir.string());
        throw error{error_class::read_only, std::move(d)};
    }
    struct statvfs fs {};
    if (::statvfs(dir.c_str(), &fs) != 0 || fs.f_bavail > 0) return;
    d.note = resilite::detail::format("the volume holding {} has no free space", dir.string());
    throw error{error_class::full, std::move(d)};
}

// A header-level look before SQLite touches the file: opening a damaged or emptied database
// would let SQLite (or schema sync) write over what is left of it.
template <class R>
void refuse_damaged(const context<R>& ctx) {
    if (!ctx.on_disk()) return;
    const auto health = check_health(ctx.path, check_level::header);
    if (health.ok()) return;
    using F = health_report::finding;
    const auto klass = health.result == F::not_a_database ? error_class::not_a_database
                       : health.result == F::io_error     ? error_class::io
                                                          : error_class::corrupt;
    const std::string advice = health.result == F::missing
                                   ? resilite::detail::format("; if it was removed on purpose, remove {} too",
                                                              marker_path(ctx.path).string())
                                   : std::string{"; nothing was changed: restore it from a backup"};
    throw library_failure(
        klass, "open", resilite::detail::format("{}: {}{}", to_string(health.result), health.detail, advice),
        ctx.path.string());
}

// Before an attempt: SQLite's busy wait never runs past the operation's deadline. (The first
// attempt starts with the whole deadline ahead: no clock read needed.) The caller holds the
// writer lock.
template <class R>
void apply_busy_timeout(context<R>& ctx, std::chrono::milliseconds wait) {
    ctx.connection().busy_timeout(wait);
    ctx.applied_busy_timeout = wait;
}

// (On every operation's path: small enough to be inlined; the rare change is not.)
// (The first attempt's time left is the whole deadline unless it waited for the writer lock: no
// clock read on the common path.)
template <class R>
inline void prepare_attempt(context<R>& ctx, const retry_state& st) {
    const auto remaining = st.attempt <= 1 && !st.waited_for_lock
                               ? st.limits.deadline
                               : std::chrono::duration_cast<std::chrono::milliseconds>(st.remaining(ctx.now()));
    const auto wait = std::clamp(remaining, std::chrono::milliseconds{0}, st.busy_timeout);
    if (wait != ctx.applied_busy_timeout) [[unlikely]] apply_busy_timeout(ctx, wait);
}

// The retry limits of `s`.
inline void load_limits(const settings& s, retry_state& st) {
    st.previous_delay = std::chrono::nanoseconds{s.retry.base};
    st.limits = s.retry;
    st.busy_timeout = s.busy_timeout;
    st.limits_loaded = true;
}

// The retry limits in force (the caller holds the writer lock).
template <class R>
void load_limits(const context<R>& ctx, retry_state& st) {
    load_limits(ctx.config, st);
}

// The published copy: never waits behind another thread's transaction (lock_writer bounds that
// wait by these limits).
template <class R>
[[nodiscard]] retry_state start_retry(context<R>& ctx) {
    retry_state st;
    st.start = ctx.now();
    std::lock_guard lock(ctx.published_mutex);
    load_limits(ctx.published, st);
    return st;
}

// For lock_writer: when a wait for the writer lock gives up, the operation's retry deadline.
// Asked only when the lock is taken; an attempt that has not loaded its limits under the lock yet
// loads the published ones here, so that the retry policy then judges the failure by them too
// (with the defaults, a call gave up only at the default deadline, retrying meanwhile).
template <class R>
[[nodiscard]] auto lock_deadline(context<R>& ctx, retry_state& st) {
    return [&ctx, &st] {
        st.waited_for_lock = true;
        if (!st.limits_loaded) {
            std::lock_guard lock(ctx.published_mutex);
            load_limits(ctx.published, st);
        }
        return st.start + st.limits.deadline;
    };
}

// Which file the connection has open, to notice later that another one took its place (a heal
// by another process, a restore, a replacement).
template <class R>
void remember_file(context<R>& ctx) noexcept {
    // The count first: a heal that counts after this makes the next read look at the file.
    if constexpr (R::healing::enabled) {
        if (ctx.on_disk()) ctx.heals_seen = ctx.gate.heals(ctx.path).value_or(0);
    }
    struct stat st {};
    if (ctx.on_disk() && ::stat(ctx.path.c_str(), &st) == 0) {
        ctx.file_dev = static_cast<std::uint64_t>(st.st_dev);
        ctx.file_ino = static_cast<std::uint64_t>(st.st_ino);
    } else {
        ctx.file_dev = ctx.file_ino = 0;
    }
    if constexpr (R::healing::enabled) {
        ctx.heal_epoch = read_marker(ctx.path).heal_epoch;
        // A reconnect runs outside the gate: a heal elsewhere may have put another file at the
        // path between SQLite's open and the stat above. Then the next call looks again.
        int moved = 0;
        if (ctx.conn && sqlite3_file_control(ctx.conn->native_handle(), "main", SQLITE_FCNTL_HAS_MOVED, &moved) ==
                            SQLITE_OK &&
            moved != 0)
            ctx.look_at_file = true;
    }
}

// True when the file at the path is no longer the one the connection has open (one stat).
template <class R>
[[nodiscard]] bool file_replaced(const context<R>& ctx) noexcept {
    if (ctx.file_ino == 0) return false;
    struct stat st {};
    if (::stat(ctx.path.c_str(), &st) != 0) return true;
    return static_cast<std::uint64_t>(st.st_ino) != ctx.file_ino || static_cast<std::uint64_t>(st.st_dev) != ctx.file_dev;
}

// SQLite calls this before every commit on the connection (never for a read); non-zero turns
// the COMMIT into a ROLLBACK. A COMMIT or END a user's statement runs inside a transaction is
// refused: it would commit outside what the transaction promises (the archive's record written
// ahead, commit()'s retries). healing<>: a single statement enters the gate here
// (core/detail/file_gate.hpp), which looks at the file at the path. Every commit, a
// transaction's too, then asks whether the file moved (one stat per commit): a commit into a
// file removed, renamed or replaced since it was opened would be acknowledged and then lost
// with that file. SQLite's own look
// (SQLITE_FCNTL_HAS_MOVED) goes by the absolute path it opened, so a chdir() after the open
// is no move.
template <class R>
int commit_hook(void* self) noexcept {
    auto& ctx = *static_cast<context<R>*>(self);
    if (ctx.user_statement_in_transaction) return 1;
    if constexpr (R::healing::enabled) {
        bool looked = false;
        if (ctx.gate.at_commit(ctx.path, [&] {
                looked = true;
                return file_replaced(ctx);
            }) != 0)
            return 1;
        if (looked) return 0;
        // (A transaction holds the gate from its BEGIN, so the gate did not look: no heal can
        // have moved the file meanwhile, but anything else can.)
    }
    int moved = 0;
    if (ctx.on_disk() && ctx.conn &&
        sqlite3_file_control(ctx.conn->native_handle(), "main", SQLITE_FCNTL_HAS_MOVED, &moved) == SQLITE_OK &&
        moved != 0) [[unlikely]] {
        ctx.file_gone = true;
        return 1;
    }
    return 0;
}

// The caller holds the writer lock.
template <class R>
void open_connection(context<R>& ctx, const retry_state& st, bool create) {
    ctx.drop_connection();
    ctx.conn.emplace(ctx.path, SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX,
                     ctx.vfs_name(), ctx.config.statement_cache_capacity);
    sqlite3_commit_hook(ctx.conn->native_handle(), &commit_hook<R>, &ctx);
    ctx.applied_busy_timeout = std::chrono::milliseconds{-1};
    prepare_attempt(ctx, st);
    apply_durability(*ctx.conn, ctx.config.sync, ctx.path.string());
    // Declared foreign keys are enforced on every connection (SQLite's default is off, per
    // connection); before on_connect, so the user's hook has the last word.
    if (R::schema::definition().has_foreign_keys()) ctx.conn->exec_script("PRAGMA foreign_keys = ON");
    if (ctx.on_connect) ctx.on_connect(*ctx.conn);
    remember_file(ctx);
}

// settings().read_connections: the read connections open on the file the connection has open,
// once it is verified (identity, and after a heal or a reconnect, the database it found). The
// caller holds the writer lock.
template <class R>
void open_readers(context<R>& ctx) {
    if (!ctx.conn || !ctx.on_disk() || ctx.config.read_connections == 0 || ctx.file_ino == 0) return;
    const auto deadline = std::chrono::duration_cast<std::chrono::milliseconds>(ctx.config.retry.deadline);
    ctx.readers.open(reader_setup{ctx.path, ctx.vfs, ctx.config.statement_cache_capacity,
                                  std::clamp(deadline, std::chrono::milliseconds{0}, ctx.config.busy_timeout),
                                  ctx.on_connect, ctx.file_dev, ctx.file_ino, ctx.identity, R::healing::enabled,
                                  ctx.gate.heals_mapping(), ctx.heals_seen},
                     ctx.config.read_connections);
}

// A database newer than the code is opened read-only (newer_database::read_only).
template <class R>
void reopen_read_only(context<R>& ctx) {
    std::lock_guard lock(ctx.mutex);
    ctx.drop_connection();
    ctx.conn.emplace(ctx.path, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, ctx.vfs_name(),
                     ctx.config.statement_cache_capacity);
    ctx.applied_busy_timeout = std::chrono::milliseconds{-1};
    prepare_attempt(ctx, start_retry(ctx));
    if (ctx.on_connect) ctx.on_connect(*ctx.conn);
    ctx.read_only = true;
    open_readers(ctx);
}

// The identity stored in the database must be the one its sidecar records (both empty for a
// database resilite never saw; the first open stamps them). Reads only: runs before anything
// writes. The caller holds the writer lock.
template <class R>
void verify_identity(context<R>& ctx) {
    if (!ctx.on_disk()) return;
    auto found = check_identity(ctx.path, ctx.connection());
    if (!found.problem.empty())
        throw library_failure(error_class::corrupt, "open", std::move(found.problem), ctx.path.string());
    ctx.identity = found.identity.value_or("");
}

// After schema sync: a database without identity gets one, and the sidecar records it with the
// synchronous level in use.
template <class R>
void finish_identity(context<R>& ctx) {
    if (!ctx.on_disk()) return;
    std::lock_guard lock(ctx.mutex);
    auto& c = ctx.connection();
    const auto sync = ctx.config.sync;
    const auto path = ctx.path.string();
    // (report_only promises to change nothing: no identity is stamped then.)
    if (ctx.identity.empty() && !ctx.read_only && R::schema::mode != schema_mode::report_only) {
        // Synced whatever the durability policy: the sidecar names it next, and a sidecar naming
        // an identity the database lost would refuse a healthy database.
        if (sync == synchronous::normal) apply_synchronous(c, synchronous::full, path);
        {
            sqlite::transaction tx{c, transaction_mode::immediate};
            stamp_identity(c, new_identity());
            tx.commit();
        }
        if (sync == synchronous::normal) apply_synchronous(c, synchronous::normal, path);
        ctx.identity = read_identity(c).value_or("");  // another process may have won
    }
    if (ctx.read_only) return;
    std::optional<sidecar_lock> sidecar;  // with healing, a heal in another process may be writing it
    if constexpr (R::healing::enabled) sidecar.emplace(ctx.path);
    auto m = read_marker(ctx.path);  // keeps the healing state it holds
    if (m.identity != ctx.identity || m.synchronous != to_string(sync)) {
        m.identity = ctx.identity;
        m.synchronous = std::string{to_string(sync)};
        if (!write_marker(ctx.path, m)) {
            throw library_failure(
                error_class::io, "open",
                resilite::detail::format("could not write the sidecar {}", marker_path(ctx.path).string()),
                path);
        }
    }
}

// Closes a connection SQLite reported unusable and opens a new one; if that fails too, the next
// attempt reports it. A reconnect never creates a file and runs open's damage checks: a file
// removed, emptied or replaced while we were connected is damage, not a fresh start.
template <class R>
void reconnect(context<R>& ctx) noexcept {
    std::lock_guard lock(ctx.mutex);
    if (ctx.conn && ctx.conn->in_transaction()) return;  // never drop an open transaction
    ctx.drop_connection();
    try {
        refuse_damaged(ctx);
        open_connection(ctx, start_retry(ctx), false);
        verify_identity(ctx);
        open_readers(ctx);
        ctx.broken.reset();
    } catch (...) {
        ctx.drop_connection();
        try {
            throw;
        } catch (const error& e) {
            ctx.broken = e;
        } catch (...) {
        }
    }
}

}  // namespace resilite::detail
