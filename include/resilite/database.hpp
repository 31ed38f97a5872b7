#pragma once
// resilite::Database<Policies...>: one declaration of how a database should behave, composed
// from policies (one per slot, defaults for the rest).

#include <resilite/monitor/check_health.hpp>
#include <resilite/durability/checkpoint_mode.hpp>
#include <resilite/durability/checkpoint_result.hpp>
#include <resilite/core/database_options.hpp>
#include <resilite/backup/backup_result.hpp>
#include <resilite/archive/archive_report.hpp>
#include <resilite/archive/detail/archive_writer.hpp>
#include <resilite/retry/detail/backoff.hpp>
#include <resilite/backup/detail/backup_files.hpp>
#include <resilite/monitor/detail/metrics.hpp>
#include <resilite/monitor/health_snapshot.hpp>
#include <resilite/archive/inspect_archive.hpp>
#include <resilite/core/detail/identity.hpp>
#include <resilite/core/detail/marker.hpp>
#include <resilite/policy/detail/policy_set.hpp>
#include <resilite/retry/detail/retry_scope.hpp>
#include <resilite/retry/detail/retry_state.hpp>
#include <resilite/schema/detail/row_sql.hpp>
#include <resilite/schema/detail/schema_sync.hpp>
#include <resilite/core/error.hpp>
#include <resilite/monitor/event.hpp>
#include <resilite/schema/schema_report.hpp>
#include <resilite/core/settings.hpp>
#include <resilite/sqlite/connection.hpp>
#include <resilite/core/transaction.hpp>
#include <resilite/core/transaction_mode.hpp>

#include <fmt/format.h>

#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>

namespace resilite {

namespace detail {
template <class Clock>
struct subscription_of {
    using type = std::monostate;  // clocks that cannot announce advances need no subscription
};
template <advancing_clock Clock>
struct subscription_of<Clock> {
    using type = decltype(std::declval<const Clock&>().subscribe(std::function<void()>{}));
};
}  // namespace detail

template <class... Policies>
class Database {
    using policy_set = detail::policy_set<Policies...>;
    static_assert(policy_set::all_policies, "resilite::Database<...>: see the message above");

public:
    using durability_type = typename policy_set::template get<slot::durability>;
    using observer_type = typename policy_set::template get<slot::observer>;
    using clock_type = typename policy_set::template get<slot::clock>;
    using retry_type = typename policy_set::template get<slot::retry>;
    using schema_type = typename policy_set::template get<slot::schema>;
    using migrations_type = typename policy_set::template get<slot::migrations>;
    using backup_type = typename policy_set::template get<slot::backup>;
    using archive_type = typename policy_set::template get<slot::archive>;
    using time_point = std::chrono::steady_clock::time_point;
    using transaction_type = basic_transaction<Database>;
    using savepoint_type = basic_savepoint<Database>;
    using options = database_options<observer_type, clock_type>;

    static_assert(durability_policy<durability_type>,
                  "resilite::Database<...>: the durability policy lacks a member of "
                  "resilite::durability_policy (sync, allows_normal, checkpoint_seconds, "
                  "wal_alert_bytes, background_thread); derive from resilite::wal_durability<>");
    static_assert(observer_policy<observer_type>,
                  "resilite::Database<...>: the observer policy needs `void on_event(const "
                  "resilite::event&) const` and `static constexpr bool enabled`");
    static_assert(retry_policy<retry_type>,
                  "resilite::Database<...>: the retry policy needs `static constexpr "
                  "resilite::retry_settings defaults`; use resilite::exponential_backoff<> or "
                  "resilite::constant_backoff<>");
    static_assert(schema_policy<schema_type>,
                  "resilite::Database<...>: the schema policy must be a resilite::schema<...>");
    static_assert(migrations_policy<migrations_type>,
                  "resilite::Database<...>: the migrations policy must be a resilite::migrations<...>");
    static_assert(backup_policy<backup_type>,
                  "resilite::Database<...>: the backup policy must be a resilite::backup<...>");
    static_assert(archive_policy<archive_type>,
                  "resilite::Database<...>: the archive policy must be a resilite::archive<...>");
    static_assert(!archive_type::defaults.enabled || !schema_type::empty,
                  "resilite::archive<> needs a declared schema: the archive records the rows of the declared "
                  "tables; add resilite::schema<resilite::table<...>, ...>");
    static_assert(clock_policy<clock_type>,
                  "resilite::Database<...>: the clock policy needs now() -> steady_clock "
                  "time_point, utc_now() -> system_clock time_point and sleep_for(nanoseconds)");

    // The settings the policies ask for, before any run-time change.
    [[nodiscard]] static constexpr settings default_settings() {
        settings s;
        s.sync = durability_type::sync;
        s.checkpoint_interval = std::chrono::seconds{durability_type::checkpoint_seconds};
        s.wal_alert_bytes = durability_type::wal_alert_bytes;
        s.retry = retry_type::defaults;
        s.backup = backup_type::defaults;
        s.archive = archive_type::defaults;
        return s;
    }

    // Opens (creating if missing), switches to WAL with the policy's synchronous level and
    // reads both back, then starts background maintenance if the policy wants it. A busy or
    // unavailable file is retried under the retry policy (connection recovery).
    explicit Database(std::filesystem::path path, options opts = {})
        : path_(std::move(path)),
          observer_(std::move(opts.observer)),
          clock_(std::move(opts.clock)),
          settings_(opts.settings.value_or(default_settings())),
          inject_failure_(std::move(opts.inject_failure)),
          before_migrations_(std::move(opts.before_migrations)),
          vfs_(std::move(opts.vfs)),
          rng_(std::random_device{}()) {
        auto st = start_retry();
        try {
            refuse_invalid(settings_, "open");
            refuse_unusable_path();
            refuse_damaged();
        } catch (...) {
            finish_failed("open", st);
            throw;
        }
        // Every step is retried when the database is busy: another process may hold the write
        // lock while we sync the schema, stamp the identity or catch the archive up.
        for (;;) {
            ++st.attempt;
            try {
                {
                    std::lock_guard lock(mutex_);
                    inject("open", st.attempt);
                    open_connection(st, true);
                    verify_identity();  // before anything writes: never write into another database
                }
                prepare_schema();
                finish_identity();
                if constexpr (archiving) start_archive();  // after sync and migrations: it records them
                break;
            } catch (...) {
                {
                    std::lock_guard lock(mutex_);
                    archive_.reset();
                    conn_.reset();
                }
                if (retry_after_failure("open", st, retry_context::opening)) continue;
                throw;
            }
        }
        next_checkpoint_ns_ = (now() + settings_.checkpoint_interval).time_since_epoch().count();
        schedule_backups_and_checks(now());
        emit_since("open", st.start, outcome::ok, 0, error_class::none, read_only_ ? "read-only" : "",
                   st.attempt);
        if constexpr (durability_type::background_thread) start_background();
    }

    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;
    Database(Database&&) = delete;
    Database& operator=(Database&&) = delete;

    // Stops background work, runs a TRUNCATE checkpoint and closes. Never throws: a failed
    // checkpoint is reported as an event and left to the next open.
    ~Database() {
        stop_background();
        std::lock_guard lock(mutex_);
        if (!conn_) return;
        const auto start = now();
        if constexpr (archiving) drain_archive_quietly(true);
        try {
            const auto r = checkpoint_locked(checkpoint_mode::truncate);
            emit_since("close", start, r.complete ? outcome::ok : outcome::warning, 0, error_class::none,
                       r.complete ? "" : "final checkpoint incomplete");
        } catch (...) {
            try {
                auto f = detail::op_failure::from_current_exception();
                emit_since("close", start, outcome::warning, 0, f.klass, f.detail);
            } catch (...) {  // nothing more to report with
            }
        }
        conn_.reset();
    }

    // ---- statements -------------------------------------------------------------------------

    // Runs one statement; returns the rows it changed.
    template <class... Args>
    std::int64_t exec(std::string_view sql, const Args&... args) {
        return run_op(
            "exec", [&] { return conn().exec(sql, args...); }, [](std::int64_t n) { return n; });
    }

    // Runs a script of several statements without parameters (schema set-up).
    void exec_script(std::string_view sql) {
        run_op("exec_script", [&] { conn().exec_script(sql); });
    }

    // Every row, each as T or std::tuple<T...>.
    template <class... T, class... Args>
    [[nodiscard]] std::vector<sqlite::row_t<T...>> query(std::string_view sql, const Args&... args) {
        static_assert(detail::owning_row<T...>, "resilite: " RESILITE_NO_VIEWS_MESSAGE);
        return run_op(
            "query", [&] { return conn().template query_all<T...>(sql, args...); },
            [](const auto& v) { return static_cast<std::int64_t>(v.size()); });
    }

    // The first row, if there is one.
    template <class... T, class... Args>
    [[nodiscard]] std::optional<sqlite::row_t<T...>> query_one(std::string_view sql, const Args&... args) {
        static_assert(detail::owning_row<T...>, "resilite: " RESILITE_NO_VIEWS_MESSAGE);
        return run_op(
            "query", [&] { return conn().template query_one<T...>(sql, args...); },
            [](const auto& v) { return static_cast<std::int64_t>(v.has_value()); });
    }

    // ---- typed rows (tables declared in the schema policy) -------------------------------------

    // Inserts the row; returns its rowid.
    template <class Row>
    std::int64_t insert(const Row& row) {
        using sql = detail::row_sql<table_for<Row>>;
        return run_op(
            "insert",
            [&] {
                detail::exec_with_row(conn(), sql::insert(), row);
                return conn().last_insert_rowid();
            },
            [](std::int64_t) { return std::int64_t{1}; });
    }

    // Inserts the row, or updates every other column of the row with the same primary key.
    template <class Row>
    std::int64_t upsert(const Row& row) {
        using table = table_for<Row>;
        static_assert(table::primary_key_size > 0,
                      "resilite::Database::upsert: the table needs a primary_key");
        return run_op(
            "upsert", [&] { return detail::exec_with_row(conn(), detail::row_sql<table>::upsert(), row); },
            [](std::int64_t n) { return n; });
    }

    // The row with this primary key (one value per key column), if any.
    template <class Row, class... Key>
    [[nodiscard]] std::optional<Row> get(const Key&... key) {
        using table = table_for<Row>;
        static_assert(table::primary_key_size > 0 && sizeof...(Key) == table::primary_key_size,
                      "resilite::Database::get<Row>(key...): give one value per primary key column");
        return run_op(
            "get", [&] { return detail::select_struct<Row>(conn(), detail::row_sql<table>::get(), key...); },
            [](const auto& v) { return static_cast<std::int64_t>(v.has_value()); });
    }

    // Rows of the table, filtered by an SQL tail: select<User>("WHERE name = ? ORDER BY id", "Ann").
    template <class Row, class... Args>
    [[nodiscard]] std::vector<Row> select(std::string_view tail = {}, const Args&... args) {
        using table = table_for<Row>;
        const auto sql = tail.empty() ? detail::row_sql<table>::select_all()
                                      : fmt::format("{} {}", detail::row_sql<table>::select_all(), tail);
        return run_op(
            "select", [&] { return detail::select_structs<Row>(conn(), sql, args...); },
            [](const auto& v) { return static_cast<std::int64_t>(v.size()); });
    }

    // Deletes the row with this primary key; returns 1, or 0 when there was none.
    template <class Row, class... Key>
    std::int64_t erase(const Key&... key) {
        using table = table_for<Row>;
        static_assert(table::primary_key_size > 0 && sizeof...(Key) == table::primary_key_size,
                      "resilite::Database::erase<Row>(key...): give one value per primary key column");
        return run_op(
            "erase", [&] { return conn().exec(detail::row_sql<table>::erase(), key...); },
            [](std::int64_t n) { return n; });
    }

    // What schema sync did at open (empty when no schema is declared).
    [[nodiscard]] const schema_report& sync_report() const noexcept { return sync_report_; }
    // True when the database was opened read-only (newer than the code, newer_database::read_only).
    [[nodiscard]] bool read_only() const noexcept { return read_only_; }
    // PRAGMA user_version: the last migration applied.
    [[nodiscard]] int version() { return query_one<int>("PRAGMA user_version").value_or(0); }

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
        using R = std::invoke_result_t<F, transaction_type&>;
        auto st = start_retry();
        for (;;) {
            ++st.attempt;
            std::optional<transaction_type> tx;
            try {
                tx.emplace(begin_attempt(mode, st, true));
                if constexpr (std::is_void_v<R>) {
                    std::invoke(f, *tx);
                    tx->commit();
                    finish_transaction(*tx, st);
                    return;
                } else {
                    R result = std::invoke(f, *tx);
                    tx->commit();
                    finish_transaction(*tx, st);
                    return result;
                }
            } catch (...) {
                if (tx) {
                    st.attempt = tx->state_.attempt;  // commit retries count as attempts
                    tx.reset();                       // rolls back, releases the writer lock
                }
                if (retry_after_failure("transaction", st, retry_context::whole_transaction)) continue;
                throw;
            }
        }
    }

    // An explicit transaction: call commit(); leaving it any other way rolls back. BEGIN and
    // COMMIT are retried when busy; statements inside are not (the transaction cannot be
    // replayed without your code: use transaction(f) for that).
    [[nodiscard]] transaction_type begin(transaction_mode mode = transaction_mode::immediate) {
        auto st = start_retry();
        for (;;) {
            ++st.attempt;
            try {
                return begin_attempt(mode, st, false);
            } catch (...) {
                if (retry_after_failure("transaction", st, retry_context::reconnecting)) continue;
                throw;
            }
        }
    }

    // ---- durability and maintenance ---------------------------------------------------------

    checkpoint_result checkpoint(checkpoint_mode mode = checkpoint_mode::passive) {
        return run_op(
            "checkpoint", [&] { return checkpoint_locked(mode); },
            [](const checkpoint_result& r) { return static_cast<std::int64_t>(r.checkpointed_frames); });
    }

    // Runs whatever periodic work is due by the clock (PASSIVE checkpoint, WAL size check).
    // Called by the background thread, or by the application when the policy has none.
    // Returns true when something was due.
    bool maintain() {
        std::lock_guard lock(mutex_);
        const auto t = now();
        bool did = false;
        if (t.time_since_epoch().count() >= next_checkpoint_ns_.load()) {
            did = true;
            next_checkpoint_ns_ = (t + settings_.checkpoint_interval).time_since_epoch().count();
            static_cast<void>(checkpoint(checkpoint_mode::passive));
            const auto wal = wal_bytes();
            if (wal > settings_.wal_alert_bytes) {
                emit_since("wal_size_alert", t, outcome::warning, 0, error_class::none,
                           fmt::format("WAL is {} bytes, above the alert threshold of {} bytes", wal,
                                       settings_.wal_alert_bytes));
            }
        }
        const auto due = [&](std::optional<time_point>& next, auto interval) {
            if (!next || t < *next) return false;
            next = t + interval;
            return true;
        };
        if (due(next_quick_check_, settings_.quick_check_interval)) {
            did = true;
            static_cast<void>(check(check_level::quick));
        }
        if (due(next_integrity_check_, settings_.integrity_check_interval)) {
            did = true;
            static_cast<void>(check(check_level::full));
        }
        if constexpr (archiving) {
            const bool batched = settings_.archive.when == archive_settings::flush::batched;
            if (archive_ && (archive_pending_ || (batched && t >= next_archive_))) {
                did = true;
                next_archive_ = t + settings_.archive.interval;
                drain_archive_quietly(false);
            }
        }
        if (due(next_backup_, std::chrono::duration_cast<std::chrono::seconds>(settings_.backup.interval))) {
            did = true;
            try {
                static_cast<void>(backup_now());
            } catch (...) {  // reported by the backup's own event; the schedule goes on
            }
        }
        return did;
    }

    // ---- checks, backups, health ---------------------------------------------------------------

    // Checks the open database (quick_check or integrity_check; header: the file's header and
    // WAL). The result is kept for health().
    health_report check(check_level level = check_level::quick) {
        const auto start = now();
        auto r = check_health(path_, level);  // a reader of its own: writers go on meanwhile
        // The file at the path must still be the database this Database opened: one replaced
        // while open takes no write of ours (they go to the file we hold), so say so.
        if (r.result == health_report::finding::ok && on_disk() && !identity_.empty()) {
            try {
                sqlite::connection reader{path_, SQLITE_OPEN_READONLY, vfs_.empty() ? nullptr : vfs_.c_str()};
                if (const auto there = detail::read_identity(reader).value_or("none"); there != identity_) {
                    r = {health_report::finding::corrupt, level,
                         fmt::format("the file at the path is not the database this Database opened (identity "
                                     "{}, expected {}): it was replaced while open",
                                     there, identity_)};
                }
            } catch (const error& e) {
                r = {health_report::finding::io_error, level, e.what()};
            }
        }
        {
            std::lock_guard lock(mutex_);
            last_check_ = r;
            last_check_time_ = clock_.utc_now();
        }
        emit_since("check", start, r.ok() ? outcome::ok : outcome::failed, 0,
                   r.ok() ? error_class::none : error_class::corrupt,
                   r.ok() ? std::string{} : fmt::format("{}: {}", to_string(r.result), r.detail));
        if (!r.ok()) note_damage(error_class::corrupt, fmt::format("check: {}: {}", to_string(r.result), r.detail));
        return r;
    }

    // Takes a backup now, through SQLite: refuses a source that fails its check, copies to a
    // temporary file, checks the copy, syncs it, renames it into place and syncs the directory,
    // appends to the manifest, applies retention, then runs the sink command if any.
    backup_result backup_now() {
        const auto start = now();
        try {
            auto r = take_backup();
            emit_since("backup", start, r.sink_error.empty() ? outcome::ok : outcome::warning, r.pages,
                       error_class::none,
                       r.sink_error.empty() ? r.path.string()
                                            : fmt::format("{}; {}", r.path.string(), r.sink_error));
            return r;
        } catch (...) {
            annotate_current(start, "backup");
            auto f = detail::op_failure::from_current_exception();
            emit_since("backup", start, outcome::failed, 0, f.klass, f.detail);
            throw;
        }
    }

    // ---- archive --------------------------------------------------------------------------------

    // Where the archive's segments are: settings().archive.directory, or "<database>.archive".
    [[nodiscard]] std::filesystem::path archive_directory() const {
        const auto& dir = settings_.archive.directory;
        return dir.empty() ? std::filesystem::path{path_.string() + ".archive"} : std::filesystem::path{dir};
    }

    // Archives whatever is still in the outbox now, and stores the last archived sequence
    // number in the database. Returns that number.
    std::int64_t drain_archive() {
        static_assert(archiving, "resilite::Database::drain_archive(): add the resilite::archive<> policy");
        return run_op(
            "archive",
            [&] {
                if (!archive_) {
                    throw detail::library_failure(error_class::misuse, "archive",
                                                  "archiving is off (read-only or not a file)",
                                                  path_.string());
                }
                reclaim_archive_if_lost();
                static_cast<void>(archive_->drain(conn(), clock_.utc_now(), true));
                archive_pending_ = false;
                return archive_->last_seq();
            },
            [](std::int64_t) { return std::int64_t{0}; });
    }

    // Drains, then validates the archive and rebuilds it in a scratch directory: reports what a
    // recovery from the archive alone would give, and whether it equals this database table by
    // table (secret columns left out: they are never archived).
    [[nodiscard]] archive_report check_archive() {
        static_assert(archiving, "resilite::Database::check_archive(): add the resilite::archive<> policy");
        static_cast<void>(drain_archive());
        inspect_options o;
        o.live_database = path_;
        std::set<std::string> declared;
        with_lock([&] {
            for (const auto& t : archive_->tables()) {
                declared.insert(detail::lower(t.name));
                for (const auto& c : t.secrets)
                    o.excluded_columns.insert(detail::lower(t.name) + "." + c);
            }
            for (const auto& t : detail::archive::user_tables(conn()))
                if (declared.count(detail::lower(t)) == 0) o.excluded_columns.insert(detail::lower(t) + ".*");
        });
        const auto start = now();
        auto r = inspect_archive(archive_directory(), o);
        emit_since("check_archive", start, r.status() == schema_status::ok ? outcome::ok : outcome::warning,
                   r.records, error_class::none,
                   r.status() == schema_status::ok ? std::string{} : r.to_text());
        return r;
    }

    // The state of the database and of the library's work on it.
    [[nodiscard]] health_snapshot health() {
        health_snapshot s;
        metrics_.fill(s);
        {
            std::lock_guard lock(damage_mutex_);
            s.healthy = damage_.empty();
            s.damage = damage_;
        }
        s.retries = retries_.load();
        s.wal_bytes = wal_bytes();
        std::lock_guard lock(mutex_);
        s.last_check = last_check_;
        s.last_check_time = last_check_time_;
        s.last_backup_time = last_backup_time_;
        if (last_backup_time_) {
            s.last_backup_age =
                std::chrono::duration_cast<std::chrono::seconds>(clock_.utc_now() - *last_backup_time_);
        }
        if (conn_) {
            s.page_count = conn().template query_one<std::int64_t>("PRAGMA page_count").value_or(0);
            s.freelist_count = conn().template query_one<std::int64_t>("PRAGMA freelist_count").value_or(0);
            if constexpr (archiving) {
                if (archive_) {
                    s.archive_seq = archive_->last_seq();
                    s.archive_pending = archive_->pending(conn());
                }
            }
        }
        return s;
    }

    // Size of the -wal file now (0 when there is none).
    [[nodiscard]] std::uint64_t wal_bytes() const {
        std::error_code ec;
        const auto n = std::filesystem::file_size(std::filesystem::path{path_.string() + "-wal"}, ec);
        return ec ? 0 : static_cast<std::uint64_t>(n);
    }

    // ---- settings ---------------------------------------------------------------------------

    [[nodiscard]] settings current_settings() const {
        std::lock_guard lock(mutex_);
        return settings_;
    }

    // Validates, applies and swaps in new settings; they govern the next operation. Invalid
    // settings are refused with an invalid_setting error and the old ones stay in force.
    void reconfigure(const settings& next) {
        std::lock_guard lock(mutex_);
        const auto start = now();
        const settings previous = settings_;
        try {
            refuse_invalid(next, "reconfigure");
            if (next.archive.enabled != settings_.archive.enabled ||
                next.archive.directory != settings_.archive.directory) {
                throw detail::library_failure(
                    error_class::invalid_setting, "reconfigure",
                    "archive enabled and directory are fixed while the database is open", path_.string());
            }
            apply(next);
            settings_ = next;
        } catch (...) {
            auto f = detail::op_failure::from_current_exception();
            try {
                apply(previous);
            } catch (...) {  // the connection keeps whatever it had; settings_ is unchanged
            }
            annotate_current(start, "reconfigure");
            emit_since("reconfigure", start, outcome::failed, 0, f.klass, f.detail);
            throw;
        }
        if constexpr (archiving) {
            if (archive_) archive_->set_settle_rows(next.archive.settle_rows);
            if (next.archive.interval != previous.archive.interval ||
                next.archive.when != previous.archive.when) {
                next_archive_ = now() + next.archive.interval;
                wake_background();
            }
        }
        if (next.checkpoint_interval != previous.checkpoint_interval) {
            next_checkpoint_ns_ = (now() + next.checkpoint_interval).time_since_epoch().count();
            wake_background();
        }
        if (next.backup != previous.backup || next.quick_check_interval != previous.quick_check_interval ||
            next.integrity_check_interval != previous.integrity_check_interval) {
            schedule_backups_and_checks(now());  // counted from now
            wake_background();
        }
        emit_since("reconfigure", start, outcome::ok, 0, error_class::none, {});
    }

    // ---- access -----------------------------------------------------------------------------

    // Runs f(connection) under the writer lock: the escape hatch to the SQLite layer.
    template <class F>
    decltype(auto) with_connection(F&& f) {
        std::lock_guard lock(mutex_);
        return std::invoke(f, conn());
    }

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    // Attempts that failed and were retried, since open (for health metrics).
    [[nodiscard]] std::uint64_t retries() const noexcept { return retries_.load(); }
    [[nodiscard]] const observer_type& observer() const noexcept { return observer_; }
    [[nodiscard]] const clock_type& clock() const noexcept { return clock_; }

private:
    friend transaction_type;
    friend savepoint_type;

    template <class Row>
    struct table_lookup {
        static constexpr auto found = schema_type::template find_table<Row>();
        using type = typename std::remove_cvref_t<decltype(found.value_or(boost::hana::type_c<void>))>::type;
        static_assert(!std::is_void_v<type>,
                      "resilite::Database: this row type is not declared in the schema; add "
                      "resilite::table<\"name\", Row, ...> to the resilite::schema<...> policy");
    };
    template <class Row>
    using table_for = typename table_lookup<Row>::type;

    // ---- schema and migrations ------------------------------------------------------------------

    // After open: a brand-new database gets the declared schema and the latest version in one
    // transaction; an existing one gets its pending migrations, then schema sync.
    void prepare_schema() {
        constexpr int latest = migrations_type::latest;
        if constexpr (schema_type::empty && latest == 0) return;
        int version = 0;
        bool brand_new = false;
        with_lock([&] {
            version = conn().template query_one<int>("PRAGMA user_version").value_or(0);
            brand_new =
                version == 0 && conn().template query_one<int>(
                                    "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' "
                                    "ESCAPE '\\' AND name NOT LIKE 'resilite\\_%' ESCAPE '\\'") == 0;
        });
        // A deploy rollback: code older than the database (also code without migrations<>, whose
        // latest version is 0) must not write into a schema it does not know.
        if (version > latest) {
            if constexpr (migrations_type::on_newer == newer_database::refuse) {
                throw detail::library_failure(
                    error_class::schema, "open",
                    fmt::format("the database is at version {}, newer than this application's {}{}; it was "
                                "not opened (newer_database::refuse) and not changed",
                                version, latest, latest == 0 ? " (it declares no migrations)" : ""),
                    path_.string());
            } else {
                reopen_read_only();
                sync_report_.mode = schema_type::mode;
                sync_report_.drifts.push_back(
                    {schema_report::severity::warning,
                     {},
                     {},
                     fmt::format("database version {} is newer than the application's "
                                 "{}: opened read-only, schema not synced",
                                 version, latest)});
                return;
            }
        }
        if (brand_new && !schema_type::empty) {
            sync_schema(latest);
            return;
        }
        if (version < latest) run_migrations(version);
        if constexpr (!schema_type::empty) sync_schema(std::nullopt);
    }

    void sync_schema(std::optional<int> stamp_version) {
        const auto start = now();
        with_lock([&] {
            sync_report_ =
                detail::sync_schema(conn(), schema_type::definition(), schema_type::mode, stamp_version);
        });
        const auto status = sync_report_.status();
        std::int64_t applied = 0;
        for (const auto& a : sync_report_.actions)
            applied += a.applied ? 1 : 0;
        emit_since("schema_sync", start,
                   status == schema_status::ok
                       ? outcome::ok
                       : (status == schema_status::warnings ? outcome::warning : outcome::failed),
                   applied, status == schema_status::critical ? error_class::schema : error_class::none,
                   status == schema_status::ok && applied == 0 ? std::string{} : sync_report_.to_text());
        // The database cannot be brought to the declared schema (a declaration SQLite rejects, or
        // critical drift): open fails rather than hand out a database whose first insert fails.
        // Warnings never fail; report_only only reports.
        if (status == schema_status::critical && schema_type::mode != schema_mode::report_only) {
            throw detail::library_failure(
                error_class::schema, "open",
                fmt::format("the database does not match the declared schema and could not be brought to it; "
                            "nothing was changed\n{}",
                            sync_report_.to_text()),
                path_.string());
        }
    }

    void run_migrations(int from) {
        if (before_migrations_) before_migrations_(from, migrations_type::latest);
        if (settings_.backup.enabled && !read_only_) static_cast<void>(backup_now());  // a way back
        migrations_type::for_each([&](auto id) {
            using M = typename decltype(id)::type;
            if (M::version <= from) return;
            const auto start = now();
            const auto label =
                detail::migration_name<M>().empty()
                    ? fmt::format("migration {}", M::version)
                    : fmt::format("migration {} ({})", M::version, detail::migration_name<M>());
            const auto note = fmt::format("{} failed and was rolled back; the database stays at version {}",
                                          label, M::version - 1);
            try {
                transaction([&](transaction_type& tx) {
                    if constexpr (detail::sql_migration<M>) {
                        tx.exec_script(M::sql);
                    } else {
                        static_assert(
                            requires { M::up(tx); },
                            "resilite::migrations: a migration needs `static constexpr std::string_view "
                            "sql` or `static void up(auto& tx)`");
                        M::up(tx);
                    }
                    tx.exec(fmt::format("PRAGMA user_version = {}", M::version));
                });
            } catch (const error& e) {
                technical_detail d = e.technical();
                d.operation = "migrate";
                d.note = d.note.empty() ? note : fmt::format("{}: {}", note, d.note);
                error wrapped{error_class::migration, std::move(d), e};
                emit_since("migrate", start, outcome::failed, 0, wrapped.klass(), wrapped.what());
                throw wrapped;
            } catch (const std::exception& e) {
                auto wrapped = detail::library_failure(error_class::migration, "migrate",
                                                       fmt::format("{}: {}", note, e.what()), path_.string());
                emit_since("migrate", start, outcome::failed, 0, wrapped.klass(), wrapped.what());
                throw wrapped;
            }
            migrated_ = true;
            emit_since("migrate", start, outcome::ok, 0, error_class::none, label);
        });
    }

    void reopen_read_only() {
        std::lock_guard lock(mutex_);
        conn_.reset();
        conn_.emplace(path_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                      vfs_.empty() ? nullptr : vfs_.c_str(), settings_.statement_cache_capacity);
        applied_busy_timeout_ = std::chrono::milliseconds{-1};
        prepare_attempt(start_retry());
        read_only_ = true;
    }

    [[nodiscard]] time_point now() const { return clock_.now(); }
    [[nodiscard]] sqlite::connection& conn() {
        if (!conn_) [[unlikely]] {
            // A reconnect failed: say why (a missing or foreign file is not "busy").
            if (broken_) throw *broken_;
            throw detail::library_failure(error_class::cant_open, "connection", "no open connection",
                                          path_.string());
        }
        return *conn_;
    }

    // Every operation ends here: exactly one event per operation (P17), plus one "retry" event
    // per attempt that failed and was retried.
    void emit_since(std::string_view name, time_point start, outcome o, std::int64_t rows, error_class klass,
                    std::string_view detail, int attempts = 1, bool counted = true) noexcept {
        const auto duration = now() - start;
        if (counted && name != "retry" && name != "wal_size_alert" && name != "corrupt")
            metrics_.record(o, klass, duration);
        if constexpr (observer_type::enabled) {
            try {
                observer_.on_event(event{name, o, duration, rows, attempts, klass, detail});
            } catch (...) {  // an observer must never change what an operation does
            }
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

    // One operation in autocommit mode: each attempt takes the writer lock, runs f, and on a
    // retryable failure the lock is released while the backoff delay passes.
    template <class F, class Rows>
    auto run_op(std::string_view name, F&& f, Rows&& rows_of) {
        detail::retry_state st;
        st.start = now();
        for (;;) {
            ++st.attempt;
            try {
                yield_to_backup();
                std::unique_lock lock(mutex_);
                if (st.attempt == 1) load_limits(st);         // under the lock this attempt takes anyway
                const bool nested = conn().in_transaction();  // inside the caller's transaction
                if (!nested) prepare_attempt(st);
                inject(name, st.attempt);
                [[maybe_unused]] const auto changes_before =
                    archiving ? sqlite3_total_changes64(conn().native_handle()) : 0;
                auto result = f();
                if constexpr (archiving) {
                    if (!nested && sqlite3_total_changes64(conn().native_handle()) != changes_before)
                        after_commit();
                }
                lock.unlock();
                emit_since(name, st.start, outcome::ok, rows_of(result), error_class::none, {}, st.attempt);
                return result;
            } catch (...) {
                const bool nested = with_lock([&] { return conn_ && conn().in_transaction(); });
                if (!nested && retry_after_failure(name, st, retry_context::reconnecting)) continue;
                if (nested) finish_failed(name, st);
                throw;
            }
        }
    }

    template <class F>
    void run_op(std::string_view name, F&& f) {
        run_op(
            name,
            [&] {
                f();
                return 0;
            },
            [](int) { return std::int64_t{0}; });
    }

    // A statement inside a transaction: one attempt; the transaction decides about retries.
    template <class F, class Rows>
    auto run_in_transaction(std::string_view name, F&& f, Rows&& rows_of) {
        const auto start = now();
        try {
            inject(name, 1);
            auto result = f();
            emit_since(name, start, outcome::ok, rows_of(result), error_class::none, {});
            return result;
        } catch (...) {
            annotate_current(start, name);
            auto failure = detail::op_failure::from_current_exception();
            note_damage(failure.klass, failure.detail);
            // One failed transaction is one failure: the transaction's own event counts it.
            emit_since(name, start, outcome::failed, 0, failure.klass, failure.detail, 1, false);
            throw;
        }
    }

    // ---- retries ------------------------------------------------------------------------------

    enum class retry_context {
        opening,            // the open flow: it opens the connection again itself
        reconnecting,       // nothing open: busy is retried, a broken connection reopened
        whole_transaction,  // the user's transaction is replayed from the start
        commit_only,        // COMMIT is retried while the transaction stays open
    };

    template <class F>
    decltype(auto) with_lock(F&& f) {
        std::lock_guard lock(mutex_);
        return f();
    }

    [[nodiscard]] detail::retry_state start_retry() const {
        std::lock_guard lock(mutex_);
        detail::retry_state st;
        st.start = now();
        load_limits(st);
        return st;
    }

    // Copies the retry limits in force (the caller holds the writer lock).
    void load_limits(detail::retry_state& st) const {
        st.previous_delay = std::chrono::nanoseconds{settings_.retry.base};
        st.limits = settings_.retry;
        st.busy_timeout = settings_.busy_timeout;
    }

    // Before an attempt: SQLite's busy wait never runs past the operation's deadline. (The
    // first attempt starts with the whole deadline ahead: no clock read needed.)
    void prepare_attempt(const detail::retry_state& st) {
        const auto remaining =
            st.attempt <= 1 ? st.limits.deadline
                            : std::chrono::duration_cast<std::chrono::milliseconds>(st.remaining(now()));
        const auto wait = std::clamp(remaining, std::chrono::milliseconds{0}, st.busy_timeout);
        if (wait != applied_busy_timeout_) {
            conn().busy_timeout(wait);
            applied_busy_timeout_ = wait;
        }
    }

    void inject(std::string_view operation, int attempt) {
        if (!inject_failure_) return;
        if (const int code = inject_failure_(operation, attempt); code != SQLITE_OK) {
            throw detail::sqlite_failure(nullptr, code, operation, {}, path_.string());
        }
    }

    // Called from a catch block after a failed attempt. Returns true after sleeping the backoff
    // delay (and reopening the connection if it broke) when the operation should be tried
    // again; returns false to rethrow the failure as it is; throws retry_exhausted when a
    // retryable failure ran out of attempts or time. Emits the operation's failure event when
    // it gives up, and a "retry" event for every attempt it retries.
    bool retry_after_failure(std::string_view name, detail::retry_state& st, retry_context ctx) {
        const error* failure = nullptr;
        try {
            throw;
        } catch (const error& e) {
            failure = &e;
        } catch (...) {
        }
        auto scope = failure != nullptr ? detail::retry_scope_of(*failure) : detail::retry_scope::none;
        if (ctx == retry_context::commit_only && scope != detail::retry_scope::statement) {
            scope = detail::retry_scope::none;
        }
        if (scope == detail::retry_scope::none) {
            finish_failed(name, st);
            return false;
        }
        const auto remaining = st.remaining(now());
        if (st.attempt >= st.limits.max_attempts || remaining <= std::chrono::nanoseconds{0}) {
            const auto elapsed = now() - st.start;
            technical_detail d = failure->technical();
            d.operation = std::string{name};
            d.attempt = st.attempt;
            d.elapsed = elapsed;
            d.note = fmt::format("gave up after {} attempt{} in {} ms (limits: {} attempts, {} ms)",
                                 st.attempt, st.attempt == 1 ? "" : "s",
                                 std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count(),
                                 st.limits.max_attempts, st.limits.deadline.count());
            error exhausted{error_class::retry_exhausted, std::move(d), *failure};
            emit_since(name, st.start, outcome::failed, 0, exhausted.klass(), exhausted.what(), st.attempt);
            throw exhausted;
        }
        back_off(name, st, *failure, remaining);
        if (scope == detail::retry_scope::reconnect && ctx == retry_context::opening) refuse_full_disk(*failure);
        if (scope == detail::retry_scope::reconnect && ctx != retry_context::commit_only &&
            ctx != retry_context::opening)
            reconnect();
        return true;
    }

    // One backoff step: draws the delay (never past the deadline), counts the retry, reports the
    // failed attempt as a "retry" event and sleeps.
    void back_off(std::string_view name, detail::retry_state& st, const error& failure,
                  std::chrono::nanoseconds remaining) {
        std::chrono::nanoseconds delay;
        {
            std::lock_guard lock(rng_mutex_);
            delay = std::min(detail::draw_delay(st.limits, st.attempt, st.previous_delay, rng_), remaining);
        }
        st.previous_delay = delay;
        ++retries_;
        emit_since("retry", now(), outcome::warning, 0, failure.klass(),
                   fmt::format("{} attempt {} failed with {}; next attempt in {} us", name, st.attempt,
                               failure.technical().code_name,
                               std::chrono::duration_cast<std::chrono::microseconds>(delay).count()),
                   st.attempt);
        clock_.sleep_for(delay);
    }

    // Reports a failure that is not retried (or no longer): annotated error, one failure event.
    void finish_failed(std::string_view name, const detail::retry_state& st) {
        annotate_current(st.start, name, std::max(st.attempt, 1));
        auto failure = detail::op_failure::from_current_exception();
        note_damage(failure.klass, failure.detail);
        emit_since(name, st.start, outcome::failed, 0, failure.klass, failure.detail,
                   std::max(st.attempt, 1));
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
            emit_since("corrupt", now(), outcome::failed, 0, klass, what);
        } catch (...) {
        }
    }

    // Closes a connection SQLite reported unusable and opens a new one; if that fails too, the
    // next attempt reports it. A reconnect never creates a file and runs open's damage checks: a
    // file removed, emptied or replaced while we were connected is damage, not a fresh start.
    void reconnect() noexcept {
        std::lock_guard lock(mutex_);
        if (conn_ && conn_->in_transaction()) return;  // never drop an open transaction
        conn_.reset();
        try {
            refuse_damaged();
            open_connection(start_retry(), false);
            verify_identity();
            broken_.reset();
        } catch (...) {
            conn_.reset();
            try {
                throw;
            } catch (const error& e) {
                broken_ = e;
            } catch (...) {
            }
        }
    }

    // One attempt to BEGIN; the returned transaction holds the writer lock.
    transaction_type begin_attempt(transaction_mode mode, const detail::retry_state& st, bool managed) {
        yield_to_backup();
        std::unique_lock lock(mutex_);
        if (!conn_)
            throw detail::library_failure(error_class::cant_open, "begin", "no open connection",
                                          path_.string());
        prepare_attempt(st);
        inject("begin", st.attempt);
        sqlite::transaction tx{conn(), mode};
        return transaction_type{*this, std::move(lock), std::move(tx), st, managed};
    }

    // COMMIT, retried while SQLite keeps the transaction open and busy (the lock stays held).
    void commit_with_retry(sqlite::transaction& tx, detail::retry_state& st) {
        for (;;) {
            try {
                inject("commit", st.attempt);
                tx.commit();
                return;
            } catch (...) {
                if (!tx.conn().in_transaction()) throw;  // SQLite ended it: only a replay can help
                if (retry_after_failure_silently(st)) {
                    ++st.attempt;
                    continue;
                }
                throw;
            }
        }
    }

    // For COMMIT: sleeps and returns true when a busy COMMIT may be tried again; the caller
    // reports the final failure.
    bool retry_after_failure_silently(detail::retry_state& st) {
        try {
            throw;
        } catch (const error& e) {
            if (detail::retry_scope_of(e) != detail::retry_scope::statement) return false;
            const auto remaining = st.remaining(now());
            if (st.attempt >= st.limits.max_attempts || remaining <= std::chrono::nanoseconds{0})
                return false;
            back_off("commit", st, e, remaining);
            return true;
        } catch (...) {
            return false;
        }
    }

    void finish_transaction(transaction_type& tx, const detail::retry_state& st) {
        emit_since("transaction", st.start, outcome::ok, tx.kept_rows_, error_class::none, "committed",
                   tx.state_.attempt);
    }

    [[nodiscard]] bool on_disk() const {
        const auto p = path_.string();
        return !p.empty() && p != ":memory:" && !p.starts_with("file:");
    }

    // Problems no retry can solve, said at once instead of after the retry deadline.
    void refuse_unusable_path() const {
        if (!on_disk()) return;
        const auto dir = std::filesystem::absolute(path_).parent_path();
        std::error_code ec;
        if (!std::filesystem::is_directory(dir, ec)) {
            throw detail::library_failure(error_class::cant_open, "open",
                                          fmt::format("the directory {} does not exist", dir.string()),
                                          path_.string());
        }
        // The longest side file resilite makes is the sidecar ("-resilite"), and backups add a
        // time to the name; a name too long for them would fail later, one feature at a time.
        const auto name = path_.filename().string().size();
        const auto limit = static_cast<std::size_t>(::pathconf(dir.c_str(), _PC_NAME_MAX));
        const std::size_t longest_suffix = settings_.backup.enabled ? 30 : 9;
        if (limit > longest_suffix && name > limit - longest_suffix) {
            throw detail::library_failure(
                error_class::cant_open, "open",
                fmt::format("the file name is {} bytes; at most {} fit with the side files resilite keeps "
                            "beside it{}",
                            name, limit - longest_suffix, settings_.backup.enabled ? " and its backups" : ""),
                path_.string());
        }
    }

    // An I/O error while opening on a volume without free space is a full disk: no retry helps.
    void refuse_full_disk(const error& failure) const {
        struct statvfs fs {};
        const auto dir = std::filesystem::absolute(path_).parent_path();
        if (::statvfs(dir.c_str(), &fs) != 0 || fs.f_bavail > 0) return;
        technical_detail d = failure.technical();
        d.note = fmt::format("the volume holding {} has no free space", dir.string());
        throw error{error_class::full, std::move(d)};
    }

    // The identity stored in the database must be the one its sidecar records (both empty for a
    // database resilite never saw; the first open stamps them). Reads only: runs before anything
    // writes. The caller holds the writer lock.
    void verify_identity() {
        if (!on_disk()) return;
        const auto side = detail::read_marker(path_);
        const auto mine = detail::read_identity(conn());
        if (mine) {
            if (!side.identity.empty() && *mine != side.identity) {
                throw detail::library_failure(
                    error_class::corrupt, "open",
                    fmt::format("a different database is at this path: its identity is {}, but the "
                                "database resilite keeps here is {}; nothing was changed (if the "
                                "replacement is intended, remove {})",
                                *mine, side.identity, detail::marker_path(path_).string()),
                    path_.string());
            }
            identity_ = *mine;
            return;
        }
        if (!side.identity.empty()) {
            throw detail::library_failure(
                error_class::corrupt, "open",
                fmt::format("the file at this path is not the database resilite keeps here (identity {}): "
                            "it is new, emptied or another database; nothing was changed: restore it "
                            "from a backup (or remove {} if the replacement is intended)",
                            side.identity, detail::marker_path(path_).string()),
                path_.string());
        }
        identity_.clear();
    }

    // After schema sync: a database without identity gets one, and the sidecar records it with
    // the synchronous level in use.
    void finish_identity() {
        if (!on_disk()) return;
        std::lock_guard lock(mutex_);
        // (report_only promises to change nothing: no identity is stamped then.)
        if (identity_.empty() && !read_only_ && schema_type::mode != schema_mode::report_only) {
            // Synced whatever the durability policy: the sidecar names it next, and a sidecar
            // naming an identity the database lost would refuse a healthy database.
            if (settings_.sync == synchronous::normal) apply_synchronous(synchronous::full);
            {
                sqlite::transaction tx{conn(), transaction_mode::immediate};
                detail::stamp_identity(conn(), detail::new_identity());
                tx.commit();
            }
            if (settings_.sync == synchronous::normal) apply_synchronous(synchronous::normal);
            identity_ = detail::read_identity(conn()).value_or("");  // another process may have won
        }
        if (read_only_) return;
        detail::marker m{true, identity_, std::string{to_string(settings_.sync)}};
        const auto old = detail::read_marker(path_);
        if (old.identity != m.identity || old.synchronous != m.synchronous) {
            if (!detail::write_marker(path_, m)) {
                throw detail::library_failure(
                    error_class::io, "open",
                    fmt::format("could not write the sidecar {}", detail::marker_path(path_).string()),
                    path_.string());
            }
        }
    }

    // A header-level look before SQLite touches the file: opening a damaged or emptied
    // database would let SQLite (or schema sync) write over what is left of it.
    void refuse_damaged() const {
        if (!on_disk()) return;
        const auto health = check_health(path_, check_level::header);
        if (health.ok()) return;
        using F = health_report::finding;
        const auto klass = health.result == F::not_a_database ? error_class::not_a_database
                           : health.result == F::io_error     ? error_class::io
                                                              : error_class::corrupt;
        std::string advice = health.result == F::missing
                                 ? fmt::format("; if it was removed on purpose, remove {} too",
                                               detail::marker_path(path_).string())
                                 : std::string{"; nothing was changed: restore it from a backup"};
        throw detail::library_failure(
            klass, "open", fmt::format("{}: {}{}", to_string(health.result), health.detail, advice),
            path_.string());
    }

    void refuse_invalid(const settings& s, std::string_view operation) const {
        auto problem = s.problem();
        if (!problem && s.sync == synchronous::normal && !durability_type::allows_normal) {
            problem = "synchronous=NORMAL needs the explicit opt-in resilite::relaxed_durability<>";
        }
        if (!problem && s.archive.enabled && !archiving) {
            problem =
                "archive.enabled needs the resilite::archive<> policy (it installs the capture triggers)";
        }
        if (problem) {
            throw detail::library_failure(error_class::invalid_setting, operation, *problem, path_.string());
        }
    }

    void open_connection(const detail::retry_state& st, bool create) {
        conn_.emplace(path_, SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX,
                      vfs_.empty() ? nullptr : vfs_.c_str(), settings_.statement_cache_capacity);
        applied_busy_timeout_ = std::chrono::milliseconds{-1};
        prepare_attempt(st);
        apply_durability(settings_.sync);
    }

    void apply(const settings& s) {
        conn().cache().set_capacity(s.statement_cache_capacity);
        if (s.sync != settings_.sync) apply_synchronous(s.sync);
    }

    void apply_durability(synchronous sync) {
        const auto mode = conn().template query_one<std::string>("PRAGMA journal_mode=WAL");
        if (!mode || (*mode != "wal" && *mode != "WAL")) {
            throw detail::library_failure(
                error_class::durability, "open",
                fmt::format("journal_mode is '{}' after asking for WAL; WAL needs a file on a "
                            "local file system (not :memory:, not a network share)",
                            mode.value_or("?")),
                path_.string());
        }
        apply_synchronous(sync);
    }

    void apply_synchronous(synchronous sync) {
        conn().exec_script(fmt::format("PRAGMA synchronous={}", to_string(sync)));
        const auto level = conn().template query_one<int>("PRAGMA synchronous");
        if (!level || *level != static_cast<int>(sync)) {
            throw detail::library_failure(error_class::durability, "open",
                                          fmt::format("synchronous reads back as {} after setting {}",
                                                      level.value_or(-1), to_string(sync)),
                                          path_.string());
        }
    }

    checkpoint_result checkpoint_locked(checkpoint_mode mode) {
        static constexpr int modes[] = {SQLITE_CHECKPOINT_PASSIVE, SQLITE_CHECKPOINT_FULL,
                                        SQLITE_CHECKPOINT_RESTART, SQLITE_CHECKPOINT_TRUNCATE};
        checkpoint_result r;
        const int rc =
            sqlite3_wal_checkpoint_v2(conn().native_handle(), nullptr, modes[static_cast<int>(mode)],
                                      &r.wal_frames, &r.checkpointed_frames);
        if (rc == SQLITE_BUSY) return r;  // readers or another writer in the way: not an error
        conn().check(rc, "checkpoint");
        r.complete = r.checkpointed_frames == r.wal_frames;
        return r;
    }

    // ---- archive ---------------------------------------------------------------------------------

    static constexpr bool archiving = archive_type::defaults.enabled;

    // At open, after schema sync and migrations: the capture triggers match the tables, schema
    // changes are recorded, and whatever a crash left in the outbox is archived.
    void start_archive() {
        if (read_only_ || !settings_.archive.enabled) return;
        if (!on_disk()) {
            throw detail::library_failure(error_class::misuse, "open", "an archive needs a database file",
                                          path_.string());
        }
        std::lock_guard lock(mutex_);
        const auto start = now();
        // The archive belongs to one database: records of two databases in one directory could
        // rebuild neither. The changes stay in this database (a later open with the right
        // directory archives them, from a full snapshot).
        const auto dir = archive_directory();
        if (const auto owner = detail::read_archive_identity(dir); owner && *owner != identity_) {
            emit_since("archive", start, outcome::warning, 0, error_class::misuse,
                       fmt::format("archiving is off: the archive directory {} belongs to another database "
                                   "(identity {}, this one is {}); give this database its own directory",
                                   dir.string(), *owner, identity_));
            return;
        }
        archive_.emplace(dir, path_.filename().string(),
                         detail::archive::capture_tables(schema_type::definition()),
                         settings_.archive.settle_rows);
        auto notes = archive_->catch_up(conn(), migrated_);
        claim_archive_directory();
        next_archive_ = now() + settings_.archive.interval;
        drain_archive_quietly(true);  // what a crash left in the outbox, and the schema records
        emit_since("archive", start, notes.empty() ? outcome::ok : outcome::warning, archive_->last_seq(),
                   error_class::none, fmt::format("{}", fmt::join(notes, "; ")));
    }

    // Rows changed on the connection so far, less the outbox rows the capture triggers wrote:
    // transactions report the application's rows, not the archive's bookkeeping.
    [[nodiscard]] std::int64_t direct_changes() {
        auto n = conn().total_changes();
        if constexpr (archiving) {
            if (archive_) {
                n -= conn()
                         .template query_one<std::int64_t>(
                             "SELECT ifnull(max(id), 0) FROM resilite_archive_outbox")
                         .value_or(0);
            }
        }
        return n;
    }

    // After a commit (the caller holds the writer lock): with flush on commit, the new records
    // are in the segment and synced before the operation returns.
    void after_commit() noexcept {
        if constexpr (archiving) {
            if (archive_ && settings_.archive.when == archive_settings::flush::on_commit &&
                !conn().in_transaction())
                drain_archive_quietly(false);
        }
    }

    // Writes the archive directory's identity file (an archive from before identities is
    // adopted). Its absence later means the directory was removed or replaced while open.
    void claim_archive_directory() {
        std::error_code ec;
        std::filesystem::create_directories(archive_->directory(), ec);
        archive_claimed_ = !ec && detail::write_archive_identity(archive_->directory(), identity_);
    }

    // Before a drain: a directory removed (or emptied) while open would otherwise be recreated
    // silently, holding only the changes from now on, so the archive could never rebuild the
    // database again. A full snapshot goes first instead, and a warning says what happened.
    void reclaim_archive_if_lost() {
        std::error_code ec;
        if (std::filesystem::exists(detail::archive_identity_path(archive_->directory()), ec) || ec) return;
        if (!archive_claimed_) {  // never written (the directory could not be): try again
            claim_archive_directory();
            return;
        }
        const auto start = now();
        static_cast<void>(archive_->catch_up(conn(), true));  // true: a snapshot first
        claim_archive_directory();
        emit_since("archive", start, outcome::warning, 0, error_class::none,
                   fmt::format("the archive directory {} was removed or replaced while the database was "
                               "open: a full snapshot was written first, so that the archive alone can "
                               "rebuild the database again",
                               archive_->directory().string()));
    }

    // A failed drain never fails the operation that committed: the changes are safe in the
    // outbox, a warning says so, and the next drain archives them.
    void drain_archive_quietly(bool settle) noexcept {
        if (!archive_ || !conn_) return;
        const auto start = now();
        try {
            reclaim_archive_if_lost();
            static_cast<void>(archive_->drain(conn(), clock_.utc_now(), settle));
            archive_pending_ = false;
        } catch (...) {
            archive_pending_ = true;
            try {
                auto f = detail::op_failure::from_current_exception();
                emit_since("archive", start, outcome::warning, 0, f.klass,
                           fmt::format("not archived yet (the changes are kept in the outbox and archived "
                                       "at the next drain): {}",
                                       f.detail));
            } catch (...) {
            }
        }
    }

    // ---- backups --------------------------------------------------------------------------------

    void schedule_backups_and_checks(time_point t) {
        std::lock_guard lock(mutex_);
        const auto after = [&](auto interval) -> std::optional<time_point> {
            if (interval <= decltype(interval){0}) return std::nullopt;
            return t + interval;
        };
        next_quick_check_ = after(settings_.quick_check_interval);
        next_integrity_check_ = after(settings_.integrity_check_interval);
        next_backup_ = settings_.backup.enabled ? after(settings_.backup.interval) : std::nullopt;
    }

    backup_result take_backup() {
        backup_settings s;
        {
            std::lock_guard lock(mutex_);
            s = settings_.backup;
        }
        const auto dir = detail::backup_directory(path_, s);
        std::filesystem::create_directories(dir);
        detail::clean_leftovers(dir, path_);
        const auto started = now();
        // 1. Never back up a damaged source: the copy would carry the damage.
        if constexpr (archiving) {  // the copy then knows exactly which archive records it holds
            std::lock_guard lock(mutex_);
            drain_archive_quietly(true);
        }
        const auto source = check(s.check);
        if (!source.ok()) {
            throw detail::library_failure(
                error_class::corrupt, "backup",
                fmt::format("the database failed its {} check, so it was not backed up ({}: {})",
                            to_string(s.check), to_string(source.result), source.detail),
                path_.string());
        }
        // 2. Copy through SQLite into a temporary file.
        const auto tmp = dir / detail::backup_temp_name(path_);
        const auto remove_tmp = [&] {
            std::error_code ec;
            for (const char* suffix : {"", "-journal", "-wal", "-shm"})
                std::filesystem::remove(tmp.string() + suffix, ec);
        };
        remove_tmp();
        backup_result r;
        try {
            if (s.how == backup_settings::method::online) {
                r.restarts = copy_online(tmp, s, started);
                r.vacuumed = r.restarts > s.max_restarts;  // other processes kept restarting it
                if (r.vacuumed) remove_tmp();
            }
            if (s.how == backup_settings::method::vacuum_into || r.vacuumed) {
                // A reader of its own: under WAL it runs beside the writer instead of blocking it,
                // and reads one snapshot, which no other process's write can restart.
                r.vacuumed = true;
                sqlite::connection reader{path_, SQLITE_OPEN_READONLY, vfs_.empty() ? nullptr : vfs_.c_str()};
                reader.exec("VACUUM INTO ?", tmp.string());
            }
            {
                sqlite::connection copy{tmp};
                copy.exec_script("PRAGMA journal_mode=DELETE");  // a backup is one self-contained file
                r.pages = copy.query_one<std::int64_t>("PRAGMA page_count").value_or(0);
                // A copy of another database must never rotate out a backup of this one.
                if (const auto id = detail::read_identity(copy).value_or("none");
                    !identity_.empty() && id != identity_) {
                    throw detail::library_failure(
                        error_class::corrupt, "backup",
                        fmt::format("the file at the path is not the database this Database opened "
                                    "(identity {}, expected {}): replaced while open? The copy was "
                                    "discarded and earlier backups kept",
                                    id, identity_),
                        path_.string());
                }
                if (copy.query_one<int>(
                        "SELECT count(*) FROM sqlite_master WHERE name = 'resilite_archive_state'") == 1) {
                    r.archive_seq =
                        copy.query_one<std::int64_t>("SELECT last_seq FROM resilite_archive_state");
                }
            }
            // 3. Check the copy before it is called a backup.
            r.check = check_health(tmp, s.check == check_level::header ? check_level::quick : s.check);
            if (!r.check.ok()) {
                throw detail::library_failure(
                    error_class::corrupt, "backup",
                    fmt::format("the copy failed its check ({}); it was discarded", r.check.detail),
                    path_.string());
            }
            // 4. Durable promotion: sync the file, rename, sync the directory.
            if (!detail::fsync_path(tmp, false)) {
                throw detail::library_failure(error_class::io, "backup", "could not sync the copy",
                                              path_.string());
            }
            r.taken = clock_.utc_now();
            r.path = dir / detail::backup_name(path_, r.taken);
            const auto base = detail::backup_name(path_, r.taken);  // ends in ".db"
            for (int n = 2; std::filesystem::exists(r.path); ++n) {
                r.path =
                    dir / fmt::format("{}-{}.db", base.substr(0, base.size() - 3), n);  // same millisecond
            }
            std::filesystem::rename(tmp, r.path);
            static_cast<void>(detail::fsync_path(dir, true));
        } catch (...) {
            remove_tmp();
            throw;
        }
        remove_tmp();
        r.bytes = std::filesystem::file_size(r.path);
        r.duration = now() - started;
        // 5. Manifest, retention, off-machine copy.
        detail::append_manifest(dir, r);
        const auto all = detail::list_backups(path_, dir);
        const auto keep = detail::retained(all, s);
        for (const auto& b : all) {
            std::error_code ec;
            if (keep.count(b.path) == 0) std::filesystem::remove(b.path, ec);
        }
        r.sink_error = detail::run_sink(s.sink, r.path);
        std::lock_guard lock(mutex_);
        last_backup_time_ = r.taken;
        return r;
    }

    // The writer lock is not fair: a thread committing in a loop takes it back before a waiting
    // backup wakes up. A backup step announces itself; new operations wait (briefly) for it.
    std::unique_lock<std::recursive_mutex> lock_for_backup() {
        backup_waiting_.store(true, std::memory_order_relaxed);
        std::unique_lock lock(mutex_);
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

    // The backup API from the writer connection, a few pages at a time under the lock, so that
    // writers go on between steps (their changes reach the copy without restarting it).
    int copy_online(const std::filesystem::path& tmp, const backup_settings& s, time_point started) {
        sqlite3* dst = nullptr;
        if (const int rc =
                sqlite3_open_v2(tmp.c_str(), &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
            rc != SQLITE_OK) {
            auto failure = detail::sqlite_failure(dst, rc, "backup", {}, tmp.string());
            sqlite3_close_v2(dst);
            throw failure;
        }
        // The copy needs no journal and no syncs of its own: a failed copy is thrown away, a
        // finished one is synced once before it is promoted.
        sqlite3_exec(dst, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;", nullptr, nullptr, nullptr);
        sqlite3_backup* b = nullptr;
        {
            std::lock_guard lock(mutex_);
            b = sqlite3_backup_init(dst, "main", conn().native_handle(), "main");
        }
        const auto fail = [&](int rc, std::string note) {
            auto failure = rc != SQLITE_OK ? detail::sqlite_failure(dst, rc, "backup", {}, path_.string())
                                           : detail::library_failure(error_class::busy, "backup",
                                                                     std::move(note), path_.string());
            if (b != nullptr) sqlite3_backup_finish(b);
            sqlite3_close_v2(dst);
            return failure;
        };
        if (b == nullptr) throw fail(sqlite3_extended_errcode(dst), {});
        int restarts = 0;
        int last_remaining = -1;
        for (;;) {
            int rc = SQLITE_OK;
            int remaining = 0;
            {
                auto lock = lock_for_backup();
                rc = sqlite3_backup_step(b, s.pages_per_step);
                remaining = sqlite3_backup_remaining(b);
            }
            if (rc == SQLITE_DONE) break;
            if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != SQLITE_LOCKED) throw fail(rc, {});
            if (last_remaining >= 0 && remaining > last_remaining) ++restarts;  // another process wrote
            last_remaining = remaining;
            if (restarts > s.max_restarts) {  // the caller takes the backup with VACUUM INTO instead
                sqlite3_backup_finish(b);
                sqlite3_close_v2(dst);
                return restarts;
            }
            if (now() - started > s.time_limit) {
                throw fail(SQLITE_OK,
                           fmt::format("the backup could not finish within {} s ({} restarts, {} pages "
                                       "left); other writers kept changing the database",
                                       s.time_limit.count(), restarts, remaining));
            }
            clock_.sleep_for(s.pause);
        }
        const int rc = sqlite3_backup_finish(b);
        b = nullptr;
        if (rc != SQLITE_OK) throw fail(rc, {});
        sqlite3_close_v2(dst);
        return restarts;
    }

    // ---- background maintenance ---------------------------------------------------------------

    void start_background() {
        if constexpr (advancing_clock<clock_type>) {
            clock_subscription_ = clock_.subscribe([this] { wake_background(); });
        }
        worker_ = std::jthread([this](std::stop_token st) { background_loop(st); });
    }

    void stop_background() noexcept {
        if constexpr (advancing_clock<clock_type>) clock_subscription_ = {};
        if (worker_.joinable()) {
            worker_.request_stop();  // wakes the condition_variable_any wait
            worker_.join();
        }
    }

    void wake_background() {
        {
            std::lock_guard lock(wake_mutex_);
            wake_ = true;
        }
        wake_cv_.notify_all();
    }

    // The earliest moment any periodic work is due (taken before wake_mutex_: reconfigure()
    // holds the writer lock when it wakes the thread, so the two are never held the other way).
    [[nodiscard]] time_point next_due() {
        std::lock_guard lock(mutex_);
        auto due = time_point{time_point::duration{next_checkpoint_ns_.load()}};
        for (const auto& next : {next_backup_, next_quick_check_, next_integrity_check_}) {
            if (next && *next < due) due = *next;
        }
        if constexpr (archiving) {
            if (archive_ && settings_.archive.when == archive_settings::flush::batched && next_archive_ < due)
                due = next_archive_;
        }
        return due;
    }

    void background_loop(std::stop_token st) {
        while (!st.stop_requested()) {
            [[maybe_unused]] const auto due = advancing_clock<clock_type> ? time_point{} : next_due();
            {
                std::unique_lock lock(wake_mutex_);
                if constexpr (advancing_clock<clock_type>) {
                    wake_cv_.wait(lock, st, [&] { return wake_; });
                } else {
                    wake_cv_.wait_until(lock, st, due, [&] { return wake_; });
                }
                wake_ = false;
            }
            if (st.stop_requested()) return;
            try {
                static_cast<void>(maintain());
            } catch (...) {  // reported as an event by the operation that failed
            }
        }
    }

    std::filesystem::path path_;
    [[no_unique_address]] observer_type observer_;
    clock_type clock_;
    mutable std::recursive_mutex mutex_;  // the writer lock; recursive so tx.exec can re-enter
    settings settings_;
    std::optional<sqlite::connection> conn_;
    std::optional<error> broken_;  // why the last reconnect failed (conn_ is empty then)
    std::string identity_;         // this database's identity (detail/identity.hpp)
    std::mutex damage_mutex_;      // health() never waits for the writer lock
    std::string damage_;           // the first damage SQLite reported since open (empty: none)
    std::chrono::milliseconds applied_busy_timeout_{-1};  // what SQLite's busy handler has now
    std::function<int(std::string_view, int)> inject_failure_;
    std::function<void(int, int)> before_migrations_;
    std::string vfs_;
    resilite::schema_report sync_report_{};
    bool read_only_ = false;
    std::mutex rng_mutex_;
    std::mt19937_64 rng_;  // jitter
    std::atomic<std::uint64_t> retries_{0};
    std::atomic<bool> backup_waiting_{false};  // a backup step wants the writer lock next
    std::mutex backup_turn_mutex_;
    std::condition_variable backup_turn_;
    detail::metrics metrics_;
    std::optional<time_point> next_quick_check_, next_integrity_check_, next_backup_;
    std::optional<health_report> last_check_;
    std::optional<std::chrono::system_clock::time_point> last_check_time_, last_backup_time_;
    std::atomic<std::int64_t> next_checkpoint_ns_{0};
    std::optional<detail::archive::archive_writer> archive_;
    bool migrated_ = false;         // migrations ran at this open: the archive takes a snapshot
    bool archive_pending_ = false;  // a drain failed: maintain() and the next commit try again
    bool archive_claimed_ = false;  // the archive directory's identity file was written
    time_point next_archive_{};

    std::mutex wake_mutex_;
    std::condition_variable_any wake_cv_;
    bool wake_ = false;
    [[no_unique_address]] typename detail::subscription_of<clock_type>::type clock_subscription_{};
    std::jthread worker_;  // last: stopped before anything it uses goes away
};

}  // namespace resilite
