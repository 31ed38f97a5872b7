#pragma once
// resilite::Database<Policies...>: one declaration of how a database should behave, composed
// from policies (one per slot, defaults for the rest).
//
// A thin front: it resolves the policies, owns the shared context and the components, and
// gives each public call to the component that does it. The flows read top to bottom in their
// own files (docs/architecture.md): open (flow/detail/open_flow.hpp), every operation
// (flow/detail/operation_flow.hpp), degradation (flow/detail/degradation_flow.hpp), backup
// (flow/detail/backup_flow.hpp), archive drain (flow/detail/archive_flow.hpp), heal
// (flow/detail/heal_flow.hpp), close (flow/detail/close_flow.hpp).

#include <resilite/archive/archive_report.hpp>
#include <resilite/archive/inspect_archive.hpp>
#include <resilite/backup/backup_result.hpp>
#include <resilite/core/transaction_mode.hpp>
#include <resilite/durability/checkpoint_mode.hpp>
#include <resilite/durability/checkpoint_result.hpp>
#include <resilite/flow/audit_result.hpp>
#include <resilite/flow/database_options.hpp>
#include <resilite/flow/detail/archive_flow.hpp>
#include <resilite/flow/detail/audit_flow.hpp>
#include <resilite/flow/detail/backup_flow.hpp>
#include <resilite/flow/detail/checker.hpp>
#include <resilite/flow/detail/close_flow.hpp>
#include <resilite/flow/detail/connect.hpp>
#include <resilite/flow/detail/context.hpp>
#include <resilite/flow/detail/degradation_flow.hpp>
#include <resilite/flow/detail/drill_flow.hpp>
#include <resilite/flow/detail/gate_pass.hpp>
#include <resilite/flow/detail/heal_flow.hpp>
#include <resilite/flow/detail/heal_while_open.hpp>
#include <resilite/flow/detail/open_flow.hpp>
#include <resilite/flow/detail/operation_flow.hpp>
#include <resilite/flow/detail/scheduler.hpp>
#include <resilite/flow/detail/schema_setup.hpp>
#include <resilite/flow/detail/settings_flow.hpp>
#include <resilite/flow/detail/statement_api.hpp>
#include <resilite/flow/settings.hpp>
#include <resilite/flow/transaction.hpp>
#include <resilite/flow/write_result.hpp>
#include <resilite/heal/drill_report.hpp>
#include <resilite/heal/heal_report.hpp>
#include <resilite/monitor/health_snapshot.hpp>
#include <resilite/policy/detail/policy_set.hpp>
#include <resilite/schema/schema_report.hpp>
#include <resilite/sqlite/detail/marker.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <type_traits>
#include <utility>

namespace resilite {

template <class... Policies>
class Database
    : public detail::statement_api<Database<Policies...>,
                                   typename detail::resolved_policies<Policies...>::schema> {
    using policies = detail::resolved_policies<Policies...>;
    static_assert(policies::set::all_policies, "resilite::Database<...>: see the message above");
    static_assert(policies::valid);

public:
    using durability_type = typename policies::durability;
    using observer_type = typename policies::observer;
    using clock_type = typename policies::clock;
    using retry_type = typename policies::retry;
    using schema_type = typename policies::schema;
    using migrations_type = typename policies::migrations;
    using backup_type = typename policies::backup;
    using archive_type = typename policies::archive;
    using healing_type = typename policies::healing;
    using degradation_type = typename policies::degradation;
    using time_point = std::chrono::steady_clock::time_point;
    using flow_type = detail::operation_flow<policies>;
    using transaction_type = basic_transaction<Database>;
    using savepoint_type = basic_savepoint<Database>;
    using options = database_options<observer_type, clock_type>;

    // The settings the policies ask for, before any run-time change.
    [[nodiscard]] static settings default_settings() {
        settings s;
        s.sync = durability_type::sync;
        s.checkpoint_interval = std::chrono::seconds{durability_type::checkpoint_seconds};
        s.wal_alert_bytes = durability_type::wal_alert_bytes;
        s.retry = retry_type::defaults;
        s.backup = backup_type::defaults();
        s.archive = archive_type::defaults();
        s.healing = healing_type::defaults();
        return s;
    }

    // Opens (creating if missing), switches to WAL with the policy's synchronous level and
    // reads both back, then starts background maintenance if the policy wants it. A busy or
    // unavailable file is retried under the retry policy (connection recovery).
    explicit Database(std::filesystem::path path, options opts = {})
        : ctx_(std::move(path), std::move(opts), opts.settings ? *opts.settings : default_settings()) {
        settings_.load_at_open();  // the settings file and the environment (docs/settings.md)
        detail::open_flow(*this, ctx_, flow_, schema_, archive_, backups_, heal_, schedule_);
        degrade_.after_open();  // queue_writes: writes queued before this open, replayed first
        static_cast<void>(audits_.import_waiting());  // audit entries that waited for the database
    }

    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;
    Database(Database&&) = delete;
    Database& operator=(Database&&) = delete;

    // Stops background work, runs a TRUNCATE checkpoint and closes. Never throws: a failed
    // checkpoint is reported as an event and left to the next open.
    ~Database() { detail::close_flow(ctx_, archive_, schedule_); }

    // exec, exec_script, query, query_one and the typed rows (insert, upsert, get, select,
    // erase) come from detail::statement_api: each is one operation, retried while busy.

    // What schema sync did at open (empty when no schema is declared).
    [[nodiscard]] const schema_report& sync_report() const noexcept { return schema_.report(); }
    // True when the database was opened read-only (newer than the code, newer_database::read_only).
    [[nodiscard]] bool read_only() const noexcept { return ctx_.read_only; }
    // PRAGMA user_version: the last migration applied.
    [[nodiscard]] int version() { return this->template query_one<int>("PRAGMA user_version").value_or(0); }

    // ---- transactions -----------------------------------------------------------------------

    // Runs f(tx) in a transaction: committed when f returns, rolled back when it throws (the
    // exception is passed on). Returns what f returns.
    //
    // When the database is busy (another connection writing, a stale snapshot) the whole
    // transaction is rolled back and f runs again, under the retry policy: f must not have
    // effects outside the database, or must make them depend on tx.attempt().
    template <class F>
    decltype(auto) transaction(F&& f, transaction_mode mode = transaction_mode::immediate) {
        static_assert(std::is_invocable_v<F, transaction_type&>,
                      "resilite::Database::transaction(f): f must be callable as f(tx), e.g. "
                      "[&](auto& tx) { tx.exec(...); }");
        heal_if_due();
        return admitted(degrade_.admit(detail::op_kind::write, "transaction"), [&]() -> decltype(auto) {
            return flow_.template transaction<transaction_type>(*this, std::forward<F>(f), mode);
        });
    }

    // An explicit transaction: call commit(); leaving it any other way rolls back. BEGIN and
    // COMMIT are retried when busy; statements inside are not (the transaction cannot be
    // replayed without your code: use transaction(f) for that).
    [[nodiscard]] transaction_type begin(transaction_mode mode = transaction_mode::immediate) {
        heal_if_due();
        return admitted(degrade_.admit(detail::op_kind::write, "transaction"),
                        [&] { return flow_.template begin<transaction_type>(*this, mode); });
    }

    // ---- durability and maintenance ---------------------------------------------------------

    checkpoint_result checkpoint(checkpoint_mode mode = checkpoint_mode::passive) {
        return admitted(degrade_.admit(detail::op_kind::write, "checkpoint"), [&] { return schedule_.checkpoint(mode); });
    }

    // Runs whatever periodic work is due by the clock (PASSIVE checkpoint, WAL size check,
    // scheduled checks, batched archive drains, scheduled backups). Called by the background
    // thread, or by the application when the policy has none. Returns true when something was due.
    bool maintain() { return schedule_.maintain(); }

    // ---- checks, backups, health ---------------------------------------------------------------

    // Checks the open database (quick_check or integrity_check; header: the file's header and
    // WAL). The result is kept for health().
    health_report check(check_level level = check_level::quick) {
        return through_gate([&] { return checks_.check(level); });
    }

    // Takes a backup now, through SQLite: refuses a source that fails its check, copies to a
    // temporary file, checks the copy, syncs it, renames it into place and syncs the directory,
    // appends to the manifest, applies retention, then runs the sink command if any.
    backup_result backup_now() {
        auto r = through_gate([&] { return backups_.backup_now(); });
        r.offsite_error = offsite_.ship_now();  // (settings().offsite.remote: off the machine now)
        return r;
    }

    // The state of the database and of the library's work on it.
    // Never waits for the writer lock: while another thread holds it (a transaction, a heal), the
    // figures that need it are the last ones read (database_busy says so). Threads committing
    // one after another hold it nearly all the time: it is tried again a few times, yielding in
    // between, so that a poller sees fresh figures rather than none at all.
    [[nodiscard]] health_snapshot health() {
        health_snapshot s;
        std::unique_lock lock(ctx_.mutex, std::defer_lock);
        for (int tries = 0; tries < 64 && !lock.try_lock(); ++tries)
            std::this_thread::yield();
        if (lock.owns_lock()) {
            checks_.fill(s);
            if (const auto& d = drills_.last()) {
                s.last_drill_time = d->when;
                s.last_drill_ok = d->ok;
            }
            s.last_backup_time = backups_.last_time();
            if (ctx_.conn) {
                s.page_count = ctx_.conn->template query_one<std::int64_t>("PRAGMA page_count").value_or(0);
                s.freelist_count = ctx_.conn->template query_one<std::int64_t>("PRAGMA freelist_count").value_or(0);
                archive_.fill(s);
            }
            offsite_.fill(s);
            std::lock_guard keep(health_mutex_);
            last_read_ = s;
        } else {
            std::lock_guard keep(health_mutex_);
            s = last_read_;
            s.database_busy = true;
        }
        if (lock.owns_lock()) lock.unlock();
        ctx_.counters.fill(s);
        const auto a = ctx_.avail.snapshot();
        s.available = a.reason == detail::unavailable_reason::none;
        s.unavailable_reason = std::string{to_string(a.reason)};
        s.unavailable_since = a.since;
        s.unavailable_detail = a.detail;
        s.queue_depth = degrade_.queue_depth();
        s.queue_rejected = degrade_.queue_rejected();
        s.audit_fallback_entries = audits_.waiting();
        s.damage = ctx_.damage();
        s.healthy = s.damage.empty();
        s.retries = ctx_.retries.load();
        s.wal_bytes = wal_bytes();
        const auto sidecar = detail::read_marker(ctx_.path);
        s.heals = sidecar.heal_epoch;
        s.heal_attempts = sidecar.heal_attempts;
        if (s.last_backup_time) {
            s.last_backup_age =
                std::chrono::duration_cast<std::chrono::seconds>(ctx_.clock.utc_now() - *s.last_backup_time);
        }
        return s;
    }

    // Size of the -wal file now (0 when there is none).
    [[nodiscard]] std::uint64_t wal_bytes() const { return sqlite::file_set{ctx_.path}.wal_size(); }

    // ---- healing ----------------------------------------------------------------------------------

    // Heals now (resilite::healing<>): quarantines the database, rebuilds it from the newest
    // good backup plus the archive (or older backups, or the archive alone), verifies it and
    // swaps it in, then reopens. Returns the report; throws (class corrupt, the manual recovery
    // steps in technical().report) when no source could, deleting nothing. Damage seen by an
    // operation heals this way on the next call, and damage found at open before anything else.
    heal_report heal() {
        static_assert(healing_type::enabled, "resilite::Database::heal(): add the resilite::healing<> policy");
        if (!ctx_.avail.claim_heal())
            throw detail::library_failure(error_class::degraded, "heal",
                                          "another thread of this process is healing the database now; nothing was "
                                          "changed",
                                          ctx_.path.string());
        detail::heal_claim claim{ctx_.avail};
        std::lock_guard lock(ctx_.mutex);
        if (!ctx_.healing_on.load())
            throw detail::library_failure(error_class::invalid_setting, "heal",
                                          "healing is turned off (settings().healing.enabled); nothing was changed",
                                          ctx_.path.string());
        return detail::heal_while_open(ctx_, archive_, heal_, "db.heal()");
    }

    // The last heal since open (at open, by heal() or after damage at run time), if any.
    [[nodiscard]] std::optional<heal_report> last_heal() const {
        std::lock_guard lock(ctx_.mutex);
        return heal_.last();
    }

    // A restore drill: the newest good backup plus the archive tail (or the archive alone) is
    // restored into a scratch file and compared with this database table by table. A failed
    // drill is a `drill` event with outcome failed: the backups or the archive cannot heal this
    // database now. health() shows the last one; settings().healing.drill_interval schedules it.
    // `excluded_columns`: "table.column" (lower case) left out of the comparison besides the
    // declared secret columns: for a program that declares no schema (the resilite command).
    drill_report drill(const std::set<std::string>& excluded_columns = {}) {
        static_assert(policies::archiving || backup_type::enabled,
                      "resilite::Database::drill(): there is nothing to restore from; add resilite::backup<> "
                      "and resilite::archive<>");
        return through_gate([&] { return drills_.run(excluded_columns); });
    }

    // ---- archive --------------------------------------------------------------------------------

    // Where the archive's segments are: settings().archive.directory, or "<database>.archive".
    [[nodiscard]] std::filesystem::path archive_directory() const { return archive_.directory(); }

    // Archives whatever is still in the outbox now, and stores the last archived sequence
    // number in the database. Returns that number.
    std::int64_t drain_archive() {
        static_assert(policies::archiving, "resilite::Database::drain_archive(): add the resilite::archive<> policy");
        return admitted(degrade_.admit(detail::op_kind::write, "archive"), [&] {
            return flow_.run(
                "archive", [&](sqlite::connection&) { return archive_.drain_now(); },
                [](std::int64_t) { return std::int64_t{0}; });
        });
    }

    // Writes a baseline now: what the outbox holds, then a full snapshot of every table as one
    // record (a rebuild from the archive alone starts at the newest one). Returns its number.
    // Holds the writer for as long as the snapshot takes (docs/archive.md, "Baselines").
    std::int64_t write_baseline() {
        static_assert(policies::archiving, "resilite::Database::write_baseline(): add the resilite::archive<> policy");
        return admitted(degrade_.admit(detail::op_kind::write, "baseline"), [&] {
            return flow_.run(
                "baseline", [&](sqlite::connection&) { return archive_.write_baseline(); },
                [](std::int64_t) { return std::int64_t{0}; }, detail::statement_place::as_given);
        });
    }

    // Drains, then validates the archive and rebuilds it in a scratch directory: reports what a
    // recovery from the archive alone would give, and whether it equals this database table by
    // table (secret columns left out: they are never archived).
    [[nodiscard]] archive_report check_archive() {
        static_assert(policies::archiving, "resilite::Database::check_archive(): add the resilite::archive<> policy");
        static_cast<void>(drain_archive());
        const auto inspection = ctx_.with_lock([&] { return archive_.inspection(); });
        const auto start = ctx_.now();
        auto r = inspect_archive(archive_.directory(), inspection);
        const bool ok = r.status() == schema_status::ok;
        ctx_.emit_since("check_archive", start, ok ? outcome::ok : outcome::warning, r.records, error_class::none,
                        ok ? std::string{} : r.to_text());
        return r;
    }

    // ---- settings ---------------------------------------------------------------------------

    // Never waits for the writer lock (a transaction or a heal in another thread).
    [[nodiscard]] settings current_settings() const {
        std::lock_guard lock(ctx_.published_mutex);
        return ctx_.published;
    }

    // Validates and swaps in new settings; they govern the next operation. Invalid settings are
    // refused with an invalid_setting error and the old ones stay in force. Never waits for the
    // writer lock: while another thread holds it (a transaction, a heal), the settings are
    // accepted (current_settings() shows them) and take effect when it is released
    // (flow/detail/settings_flow.hpp). Once applied, the change is audited (docs/audit.md).
    void reconfigure(const settings& next) { settings_.reconfigure(next); }

    // Reads the settings file (options.settings_file or RESILITE_SETTINGS_FILE) now, instead of
    // at the next look of maintain() or the background thread. Returns true when it changed and
    // its settings were accepted; throws invalid_setting when they are refused (the settings in
    // force stay). Both report a `settings_reload` event.
    bool reload_settings() { return settings_.reload(); }

    // ---- audit log ----------------------------------------------------------------------------

    // Writes one row to the audit table resilite_audit (docs/audit.md): when, what, who, the
    // detail, which host and process. A write the database cannot take (busy past the retry
    // policy, an I/O error, a full disk, a heal) goes to the fallback file beside the database,
    // synced, and is imported once, in order, when the database is back; the result says which.
    // Throws (class io) only when neither could take it, and (class misuse) inside a transaction.
    [[nodiscard]] audit_result audit(std::string_view action, std::string_view actor, std::string_view detail) {
        try {
            heal_if_due();
        } catch (...) {  // the failed heal is audited itself; this entry goes to the fallback
        }
        return audits_.audit(action, actor, detail);
    }

    // ---- access -----------------------------------------------------------------------------

    // Runs f(connection) under the writer lock: the escape hatch to the SQLite layer.
    template <class F>
    decltype(auto) with_connection(F&& f) {
        static_cast<void>(degrade_.admit(detail::op_kind::write, "with_connection"));
        std::lock_guard lock(ctx_.mutex);
        return std::invoke(f, ctx_.connection());
    }

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return ctx_.path; }
    // Attempts that failed and were retried, since open (for health metrics).
    [[nodiscard]] std::uint64_t retries() const noexcept { return ctx_.retries.load(); }
    [[nodiscard]] const observer_type& observer() const noexcept { return ctx_.observer; }
    [[nodiscard]] const clock_type& clock() const noexcept { return ctx_.clock; }

private:
    friend detail::statement_api<Database, schema_type>;

    // The statement hook of detail::statement_api: one operation in autocommit, retried.
    template <class F, class Rows>
    auto run(std::string_view name, F&& f, Rows&& rows_of,
             detail::statement_place place = detail::statement_place::write_ahead) {
        heal_if_due();
        return admitted(degrade_.admit(detail::op_kind::write, name),
                        [&] { return flow_.run(name, std::forward<F>(f), std::forward<Rows>(rows_of), place); });
    }

    // The read hook: a read connection when there are (settings().read_connections).
    template <class F, class Rows, class Pooled>
    auto read(std::string_view name, F&& f, Rows&& rows_of, Pooled&& pooled) {
        heal_if_due();
        return admitted(degrade_.admit(detail::op_kind::read, name), [&] {
            return flow_.run_read(name, std::forward<F>(f), std::forward<Rows>(rows_of), pooled);
        });
    }

    // The write hook of detail::statement_api: with queue_writes, a write the database cannot
    // take now (or that the gate refused: nothing was committed) is queued instead.
    template <class F, class Rows, class Encode>
    auto write(std::string_view name, F&& f, Rows&& rows_of, Encode&& encode,
               detail::statement_place place = detail::statement_place::write_ahead) {
        if constexpr (degradation_type::queues_writes) {
            heal_if_due();
            const auto a = degrade_.admit(detail::op_kind::queueable, name);
            if (a == detail::admission::queue) return degrade_.enqueue(name, encode);
            detail::held_failure held;  // (reported below only if the write is not queued)
            try {
                return write_result{write_result::status::committed,
                                    admitted(a, [&] { return flow_.run(name, f, rows_of, place, &held); }),
                                    0};
            } catch (const error& e) {
                // Refused at the gate, or disk full / a read-only volume: nothing was committed
                // (the archive took its record back), and the database is unavailable now.
                const auto k = e.klass();
                if ((k != error_class::degraded && k != error_class::full && k != error_class::read_only) ||
                    ctx_.avail.available()) {
                    flow_.report_held(name, held);
                    throw;
                }
                return degrade_.enqueue(name, encode);  // (a refusal to queue is its own one event)
            }
        } else {
            return run(name, std::forward<F>(f), std::forward<Rows>(rows_of), place);
        }
    }

    // A call admitted as the probe (flow/detail/degradation_flow.hpp) says how it went. Only a
    // call that changed rows proves that the disk takes writes again: a read-only transaction
    // or an UPDATE that matched nothing ends nothing.
    template <class Op>
    decltype(auto) admitted(detail::admission a, Op&& op) {
        if (a != detail::admission::probe) [[likely]] return op();
        struct report {
            Database& db;
            std::optional<std::int64_t> before = db.total_changes_now();
            int unwinding = std::uncaught_exceptions();
            ~report() {
                if (std::uncaught_exceptions() > unwinding) {
                    db.degrade_.probe_failed();
                } else if (const auto after = db.total_changes_now(); before && after && *after > *before) {
                    db.degrade_.probe_succeeded();
                } else {
                    db.degrade_.probe_inconclusive();
                }
            }
        } r{*this};
        return op();
    }

    // Rows changed on the connection since it opened; nothing when there is no connection or
    // another thread holds it (never waited for: it may be a heal).
    [[nodiscard]] std::optional<std::int64_t> total_changes_now() noexcept {
        try {
            std::unique_lock lock(ctx_.mutex, std::try_to_lock);
            if (!lock.owns_lock() || !ctx_.conn) return std::nullopt;
            return ctx_.conn->total_changes();
        } catch (...) {
            return std::nullopt;
        }
    }

    // With healing on, before every call: damage seen by an earlier call is healed first. Not
    // inside a transaction: it holds the database until it ends. (A database another process
    // healed is reopened by the operation itself: flow/detail/gate_pass.hpp.)
    // One heal at a time: a thread that finds another healing goes on to admission, which says
    // `healing` at once rather than wait for the writer lock the heal holds.
    void heal_if_due() {
        if constexpr (healing_type::enabled) {
            if (!ctx_.heal_due.load(std::memory_order_relaxed)) [[likely]] return;
            if (!ctx_.avail.claim_heal()) return;
            detail::heal_claim claim{ctx_.avail};
            std::lock_guard lock(ctx_.mutex);
            if ((ctx_.conn && ctx_.conn->in_transaction()) || ctx_.gate.depth() > 0 || !ctx_.heal_due.load()) return;
            static_cast<void>(detail::heal_while_open(ctx_, archive_, heal_, "run time: an operation saw the damage"));
        }
    }

    // With healing on, work on the live file outside the operation flow (a check, a backup, a
    // drill) holds the gate too: never on a file another process is healing (a busy error then),
    // and a healed file is reopened first.
    template <class F>
    decltype(auto) through_gate(F&& f) {
        static_cast<void>(degrade_.admit(detail::op_kind::diagnostic, "gate"));
        if constexpr (healing_type::enabled) {
            detail::gate_pass<policies> pass;
            {
                std::lock_guard lock(ctx_.mutex);
                pass = detail::gate_pass<policies>{ctx_, archive_};
            }
            detail::leave_under_lock<policies> leave{ctx_, pass};
            return f();
        } else {
            return f();
        }
    }

    // Constructed in this order, destroyed in reverse: the scheduler's thread stops first.
    detail::context<policies> ctx_;
    detail::archive_flow<policies> archive_{ctx_};
    detail::operation_flow<policies> flow_{ctx_, archive_};
    detail::schema_setup<policies> schema_{ctx_, flow_};
    detail::checker<policies> checks_{ctx_};
    detail::offsite_flow<policies> offsite_{ctx_};
    detail::backup_flow<policies> backups_{ctx_, checks_, archive_, offsite_};
    detail::heal_flow<policies> heal_{ctx_};
    detail::drill_flow<policies> drills_{ctx_, archive_};
    detail::degradation_flow<policies> degrade_{ctx_, flow_};
    detail::settings_flow<policies> settings_{ctx_, archive_};
    detail::audit_flow<policies> audits_{ctx_, flow_, archive_, heal_};
    detail::scheduler<policies> schedule_{ctx_,   flow_,    checks_,   archive_, backups_, offsite_,
                                          drills_, heal_, degrade_, settings_, audits_};
    std::mutex health_mutex_;
    health_snapshot last_read_;  // health(): the figures last read under the writer lock
};

}  // namespace resilite
