#pragma once
// The state every component of a Database shares: the path, the connection and the writer lock
// that guards it, the settings in force, the clock and the observer, and the few services every
// flow needs (events, damage, the test hook). Components receive it by reference; none of them
// reaches back into the Database that owns it.

#include <resilite/core/detail/file_gate.hpp>
#include <resilite/core/detail/op_failure.hpp>
#include <resilite/core/error.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/flow/database_options.hpp>
#include <resilite/flow/detail/availability.hpp>
#include <resilite/flow/detail/read_pool.hpp>
#include <resilite/flow/settings.hpp>
#include <resilite/monitor/detail/metrics.hpp>
#include <resilite/monitor/event.hpp>
#include <resilite/sqlite/connection.hpp>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace resilite::detail {

// Marks a user's statement running inside a transaction for its length (the commit hook then
// refuses a COMMIT it runs: context::user_statement_in_transaction). Outside one (`inside`
// false) it touches nothing: the flag belongs to whichever thread holds the writer lock.
class user_statement_scope {
public:
    user_statement_scope(bool& flag, bool inside) noexcept
        : flag_(inside ? &flag : nullptr), was_(inside && std::exchange(flag, true)) {}
    ~user_statement_scope() {
        if (flag_ != nullptr) *flag_ = was_;
    }
    user_statement_scope(const user_statement_scope&) = delete;
    user_statement_scope& operator=(const user_statement_scope&) = delete;

private:
    bool* flag_;
    bool was_;
};

[[nodiscard]] inline bool is_file_path(const std::filesystem::path& p) noexcept {
    return !p.empty() && p.native() != ":memory:" && !p.native().starts_with("file:");
}

// A database file's path made absolute once, at open: every later look at the path (the file's
// identity, the sidecar, a heal's swap, the archive beside it) must find the same file after
// the process changes its working directory, as a daemon does; a relative path then named
// another directory's database, and a heal reopened that one.
[[nodiscard]] inline std::filesystem::path absolute_file(std::filesystem::path p) {
    if (!is_file_path(p)) return p;
    std::error_code ec;
    auto abs = std::filesystem::absolute(p, ec);
    return ec ? p : abs;
}

template <class R>  // R: resolved_policies<...>
class context {
public:
    using observer_type = typename R::observer;
    using clock_type = typename R::clock;
    using time_point = std::chrono::steady_clock::time_point;

    context(std::filesystem::path p, database_options<observer_type, clock_type>&& opts, settings initial)
        : path(absolute_file(std::move(p))),
          observer(std::move(opts.observer)),
          clock(std::move(opts.clock)),
          config(std::move(initial)),
          published(config),
          vfs(std::move(opts.vfs)),
          inject_failure(std::move(opts.inject_failure)),
          inject_archive_sync_failure(std::move(opts.inject_archive_sync_failure)),
          before_migrations(std::move(opts.before_migrations)),
          on_connect(std::move(opts.on_connect)),
          on_progress(std::move(opts.on_progress)),
          settings_file(std::move(opts.settings_file)),
          rng(std::random_device{}()),
          healing_on(R::healing::enabled && config.healing.enabled) {}

    std::filesystem::path path;
    // A file on disk (not ":memory:" nor a URI), decided once: asked at every statement.
    const bool disk_file = is_file_path(path);
    [[no_unique_address]] observer_type observer;
    clock_type clock;
    // The writer lock; recursive so tx.exec can re-enter; timed so that a call waiting for it can
    // see a heal start meanwhile and stop waiting (lock_writer).
    using writer_mutex = std::recursive_timed_mutex;
    mutable writer_mutex mutex;
    settings config;                     // guarded by `mutex`
    // A copy of `config` for readers that never wait behind the writer lock (current_settings()).
    mutable std::mutex published_mutex;
    settings published;  // guarded by `published_mutex`
    std::optional<sqlite::connection> conn;
    std::optional<error> broken;  // why the last reconnect failed (conn is empty then)
    std::string identity;         // this database's identity (sqlite/detail/identity.hpp)
    bool read_only = false;
    std::uint64_t file_dev = 0, file_ino = 0;  // the file the connection opened (0: unknown)
    std::uint64_t heal_epoch = 0;              // healing<>: the sidecar's heal epoch when it was opened
    std::uint64_t heals_seen = 0;              // healing<>: the gate's heal count when the file was last looked at
    bool look_at_file = false;  // healing<>: a commit found the file replaced, or a reconnect found it moved
    std::chrono::milliseconds applied_busy_timeout{-1};  // what SQLite's busy handler has now
    std::string vfs;
    std::function<int(std::string_view, int)> inject_failure;
    std::function<bool()> inject_archive_sync_failure;
    std::function<void(int, int)> before_migrations;
    std::function<void(sqlite::connection&)> on_connect;  // every connection this Database opens
    progress_fn on_progress;  // long operations' progress (options.on_progress)
    std::filesystem::path settings_file;  // options.settings_file (flow/detail/settings_flow.hpp)
    // Settings accepted while another thread held the writer lock, applied under it by the next
    // operation (settle_settings()) or the background thread: reconfigure() never waits (P14).
    std::atomic<bool> settings_pending{false};
    std::function<void()> settle_pending_settings;  // set by the settings flow; never throws
    metrics counters;
    std::atomic<std::uint64_t> retries{0};
    std::mutex rng_mutex;
    std::mt19937_64 rng;  // jitter
    // A user's statement inside a transaction is running (the caller holds the writer lock):
    // a commit now is its COMMIT or END, refused by the commit hook (flow/detail/connect.hpp).
    bool user_statement_in_transaction = false;
    // A resilite transaction (basic_transaction) is open on the connection, from its BEGIN until
    // it ends (its thread holds the writer lock meanwhile). A transaction the application began
    // with its own BEGIN statement is not one: its COMMIT statement is its own to run.
    bool library_transaction = false;
    // SQLite ended this transaction by itself (a trigger's RAISE(ROLLBACK), INSERT OR ROLLBACK, a
    // ROLLBACK statement) while the thread still holds it, and the writer lock: the thread's
    // statements through the Database are refused (they would run on their own, outside it, and
    // commit) until it ends it (rollback(), or the transaction object is gone).
    bool transaction_lost = false;
    // Statements of the open resilite transaction that failed (their events say so, uncounted):
    // counted as failures when it commits, their failure absorbed by the application; forgotten
    // when it fails or rolls back, whose own event counts it once (the holder of the writer lock).
    std::vector<std::pair<error_class, std::chrono::nanoseconds>> absorbed_failures;
    // Without healing<>: the commit hook found the file at the path is not the one open (removed,
    // renamed or replaced) and rolled the commit back (flow/detail/connect.hpp).
    bool file_gone = false;
    std::atomic<bool> heal_due{false};  // damage seen with healing on: the next call heals first
    // healing<> and settings().healing.enabled: read without the writer lock (a call that meets
    // damage, the background thread), changed by reconfigure under it.
    std::atomic<bool> healing_on;
    std::function<void()> on_heal_due;  // wakes the background thread, which heals without a call
    std::function<void()> wake_background;  // set once when the background thread starts
    file_gate gate;                     // healing<>: held shared by every operation (core/detail/file_gate.hpp)
    // settings().read_connections: open only while `conn` is (flow/detail/read_pool.hpp). Declared
    // after `conn`: destroyed first.
    read_pool readers;
    availability avail;                 // degradation: unavailable, why and since when

    [[nodiscard]] time_point now() const { return clock.now(); }
    [[nodiscard]] const char* vfs_name() const noexcept { return vfs.empty() ? nullptr : vfs.c_str(); }

    // The open connection (the caller holds the writer lock).
    [[nodiscard]] sqlite::connection& connection() {
        if (!conn) [[unlikely]] {
            // A reconnect failed: say why (a missing or foreign file is not "busy").
            if (broken) throw *broken;
            throw library_failure(error_class::cant_open, "connection", "no open connection", path.string());
        }
        return *conn;
    }

    // The writer lock for an operation: at once when free (the common case), else waited for in
    // short steps, and given up with class degraded when a heal of this process starts meanwhile
    // (it holds the lock for its whole length; docs/degradation.md), or with class busy once
    // give_up() (this clock's time; asked only when the lock is taken) has passed: another
    // thread's transaction is waited for as another process's lock is, within the retry deadline.
    template <class GiveUp>
    [[nodiscard]] std::unique_lock<writer_mutex> lock_writer(std::string_view operation, GiveUp&& give_up) {
        std::unique_lock lock(mutex, std::try_to_lock);
        if (!lock.owns_lock()) [[unlikely]] {
            const time_point until = give_up();
            while (!lock.owns_lock()) {
                if (avail.reason() == unavailable_reason::healing) {
                    throw library_failure(error_class::degraded, operation,
                                          "the database is unavailable (healing): a heal started in this process",
                                          path.string());
                }
                if (now() >= until) {
                    throw library_failure(
                        error_class::busy, operation,
                        "another thread of this process held the database (an open transaction, a backup "
                        "step or a checkpoint) until the retry deadline passed",
                        path.string());
                }
                // Until a system_clock time: libstdc++ waits for it with pthread_mutex_timedlock,
                // which ThreadSanitizer sees; a steady_clock wait uses pthread_mutex_clocklock,
                // which GCC 12's does not, and every lock taken this way went unseen (false
                // reports of races).
                static_cast<void>(
                    lock.try_lock_until(std::chrono::system_clock::now() + std::chrono::milliseconds{1}));
            }
        }
        if (pages_stale_.load(std::memory_order_acquire)) [[unlikely]] {  // forget_cached_pages()
            pages_stale_.store(false, std::memory_order_relaxed);
            if (conn) sqlite3_db_release_memory(conn->native_handle());
        }
        return lock;
    }

    // True when this thread holds the writer lock inside a transaction (its own, or one begun on
    // the connection by hand). Never waits: the recursive lock is free to its holder, and a lock
    // another thread holds means the transaction, if any, is not this thread's.
    [[nodiscard]] bool own_transaction_open() {
        std::unique_lock held(mutex, std::try_to_lock);
        return held.owns_lock() && ((conn && conn->in_transaction()) || library_transaction || transaction_lost);
    }

    // Closes the connection, the read connections first (the caller holds the writer lock).
    void drop_connection() noexcept {
        readers.close();
        conn.reset();
    }

    template <class F>
    decltype(auto) with_lock(F&& f) {
        std::lock_guard lock(mutex);
        return f();
    }

    // A file on disk (not ":memory:" nor a URI): the side files, identity and archive apply.
    [[nodiscard]] bool on_disk() const noexcept { return disk_file; }

    // Every operation ends here: exactly one event per operation (P17), plus one "retry" event
    // per attempt that failed and was retried. `counted`: false for a statement whose failure
    // the enclosing transaction counts.
    void emit_since(std::string_view name, time_point start, outcome o, std::int64_t rows, error_class klass,
                    std::string_view detail, int attempts = 1, bool counted = true) noexcept {
        const auto duration = now() - start;
        if (counted && counts_as_operation(name)) counters.record(o, klass, duration);
        if constexpr (observer_type::enabled) {
            try {
                observer.on_event(event{name, o, duration, rows, attempts, klass, detail});
            } catch (...) {  // an observer must never change what an operation does
            }
        }
    }

    // Events that are not operations of their own (a retry, an alert, a state change) stay out
    // of the operation counters. On every statement's path: one switch, at most two compares.
    [[nodiscard]] static bool counts_as_operation(std::string_view name) noexcept {
        if (name.empty()) return true;
        switch (name.front()) {
            case 'r': return name != "retry" && name != "recovered" && name != "read_connection";
            case 'w': return name != "wal_size_alert";
            case 'o': return name != "offsite";
            case 'c': return name != "corrupt";
            case 'd': return name != "degraded";
            default: return true;
        }
    }

    // Adds what only this layer knows (attempts, elapsed time) to an escaping resilite::error.
    void annotate_current(time_point start, std::string_view operation, int attempt = 1) {
        try {
            throw;
        } catch (error& e) {
            e.annotate(attempt, now() - start, operation);
        } catch (...) {
        }
    }

    // Test hook: a failure injected before an attempt, as if SQLite had returned it.
    void inject(std::string_view operation, int attempt) {
        if (!inject_failure) return;
        if (const int code = inject_failure(operation, attempt); code != SQLITE_OK) {
            throw sqlite_failure(nullptr, code, operation, {}, path.string());
        }
    }

    // Test hook, where the failure is not SQLite's to return (a flush on a helper thread):
    // whether inject_failure asks `operation` to fail.
    [[nodiscard]] bool injected(std::string_view operation) {
        return inject_failure && inject_failure(operation, 1) != SQLITE_OK;
    }

    // At the start of an operation: settings accepted meanwhile take effect (one load when none).
    // Never waits: while another thread holds the writer lock, the settings stay pending for the
    // next holder (every operation settles them under the lock it takes; so does the background
    // thread's round).
    void settle_settings() {
        if (!settings_pending.load(std::memory_order_acquire)) [[likely]] return;
        std::unique_lock lock(mutex, std::try_to_lock);
        if (lock.owns_lock() && settle_pending_settings) settle_pending_settings();
    }

    // healing<> turned on or off at run time (the caller holds the writer lock): damage already
    // seen heals at the next call once it is on again; nothing heals while it is off.
    void set_healing(bool on) {
        healing_on.store(on);
        heal_due.store(on && !damage().empty());
        if (heal_due.load() && on_heal_due) on_heal_due();
    }

    // SQLite said the file is damaged: never silent. The database is marked unhealthy (health()
    // shows it) and a `corrupt` event says what was seen, once. Healing will start from here.
    void note_damage(error_class klass, std::string_view what) noexcept {
        if (klass != error_class::corrupt && klass != error_class::not_a_database) return;
        try {
            {
                std::lock_guard lock(damage_mutex_);
                if (!damage_.empty()) return;
                damage_ = std::string{what};
            }
            if constexpr (R::healing::enabled) {
                if (healing_on.load()) {
                    heal_due.store(true, std::memory_order_relaxed);
                    if (on_heal_due) on_heal_due();
                }
            }
            emit_since("corrupt", now(), outcome::failed, 0, klass, what);
            note_unavailable(unavailable_reason::damaged, what);
        } catch (...) {
        }
    }

    // The database cannot be used for `why` (docs/degradation.md): one `degraded` event when the
    // state changes; calls then fail at once (or are served or queued, by the policy).
    void note_unavailable(unavailable_reason why, std::string_view what) noexcept {
        try {
            const auto first = std::chrono::duration_cast<std::chrono::nanoseconds>(config_probe_interval());
            if (avail.enter(why, what, now(), clock.utc_now(), first))
            {
                emit_since("degraded", now(), outcome::warning, 0, error_class::degraded,
                           resilite::detail::format("unavailable ({}): {}", to_string(why), what));
                if (wake_background && needs_probe(why)) wake_background();  // it probes
            }
        } catch (...) {
        }
    }

    // A failure that makes the database unavailable (rather than failing one call): disk full, a
    // read-only volume, I/O errors past the retry policy.
    void note_failure(error_class klass, std::string_view what) noexcept {
        if (klass == error_class::full) note_unavailable(unavailable_reason::disk_full, what);
        else if (klass == error_class::read_only && !read_only) note_unavailable(unavailable_reason::read_only_volume, what);
    }

    // Available again, if the state was one of `ended`: one `recovered` event.
    template <class... Reasons>
    void note_available(std::string_view how, Reasons... ended) noexcept {
        if (avail.available()) [[likely]] return;  // one atomic load on every gate entry
        try {
            if (auto was = avail.leave(now(), ended...))
                emit_since("recovered", was->since_steady, outcome::ok, 0, error_class::none,
                           resilite::detail::format("available again ({}; was {}: {})", how,
                                                    to_string(was->reason), was->detail));
        } catch (...) {
        }
    }

    // The first damage seen since open (empty: none); never waits for the writer lock.
    [[nodiscard]] std::string damage() const {
        std::lock_guard lock(damage_mutex_);
        return damage_;
    }

    // Damage repaired by hand while open: a page a connection cached may be the damaged one, and
    // SQLite trusts its cache until the WAL index says the file changed (a repair by hand does
    // not touch it). The read connections drop theirs now; the writer connection's is dropped by
    // the next operation that takes the writer lock (never waited for here).
    void forget_cached_pages() noexcept {
        readers.forget_cached_pages();
        pages_stale_.store(true, std::memory_order_release);
    }

    // After a heal: the database in place is sound again.
    void clear_damage() noexcept {
        {
            std::lock_guard lock(damage_mutex_);
            damage_.clear();
            heal_due.store(false, std::memory_order_relaxed);
        }
        note_available("the database in place is sound", unavailable_reason::damaged, unavailable_reason::healing,
                       unavailable_reason::healing_elsewhere);
    }

    // The writer lock is not fair: a thread committing in a loop takes it back before a waiting
    // backup wakes up. A backup step announces itself; new operations wait (briefly) for it.
    [[nodiscard]] std::unique_lock<writer_mutex> lock_for_backup() {
        backup_waiting_.store(true, std::memory_order_relaxed);
        std::unique_lock lock(mutex);
        {
            std::lock_guard g(backup_turn_mutex_);
            backup_waiting_.store(false, std::memory_order_relaxed);
        }
        backup_turn_.notify_all();
        return lock;
    }

    void yield_to_backup() {
        if (!backup_waiting_.load(std::memory_order_relaxed)) return;  // the common case: one load
        std::unique_lock g(backup_turn_mutex_);
        backup_turn_.wait_for(g, std::chrono::milliseconds{5}, [&] { return !backup_waiting_.load(); });
    }

private:
    // Read without the writer lock: the published copy.
    [[nodiscard]] std::chrono::milliseconds config_probe_interval() const {
        std::lock_guard lock(published_mutex);
        return published.degradation.probe_interval;
    }

    mutable std::mutex damage_mutex_;
    std::string damage_;
    std::atomic<bool> backup_waiting_{false};  // a backup step wants the writer lock next
    std::atomic<bool> pages_stale_{false};     // forget_cached_pages(): the writer's cache goes next
    std::mutex backup_turn_mutex_;
    std::condition_variable backup_turn_;
};

}  // namespace resilite::detail
