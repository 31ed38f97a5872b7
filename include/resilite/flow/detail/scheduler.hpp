#pragma once
// Periodic work: PASSIVE checkpoints and the WAL size alert, scheduled checks, batched archive
// drains, scheduled backups and restore drills, the audit fallback's import; with healing, a heal as soon as damage is seen. maintain() runs what is due by the clock; the background thread
// (when the durability policy has one) calls it whenever the next item falls due, or, with a
// manual clock, whenever the clock moves.

#include <resilite/core/detail/op_failure.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/durability/detail/pragmas.hpp>
#include <resilite/flow/detail/archive_flow.hpp>
#include <resilite/flow/detail/audit_flow.hpp>
#include <resilite/flow/detail/backup_flow.hpp>
#include <resilite/flow/detail/checker.hpp>
#include <resilite/flow/detail/context.hpp>
#include <resilite/flow/detail/degradation_flow.hpp>
#include <resilite/flow/detail/drill_flow.hpp>
#include <resilite/flow/detail/gate_pass.hpp>
#include <resilite/flow/detail/heal_flow.hpp>
#include <resilite/flow/detail/heal_while_open.hpp>
#include <resilite/flow/detail/offsite_flow.hpp>
#include <resilite/flow/detail/operation_flow.hpp>
#include <resilite/flow/detail/settings_flow.hpp>
#include <resilite/policy/clock.hpp>
#include <resilite/sqlite/file_set.hpp>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>
#include <type_traits>
#include <variant>

namespace resilite::detail {

template <class Clock>
struct subscription_of {
    using type = std::monostate;  // clocks that cannot announce advances need no subscription
};
template <advancing_clock Clock>
struct subscription_of<Clock> {
    using type = decltype(std::declval<const Clock&>().subscribe(std::function<void()>{}));
};

template <class R>
class scheduler {
    using clock_type = typename R::clock;

public:
    using time_point = std::chrono::steady_clock::time_point;

    scheduler(context<R>& ctx, operation_flow<R>& flow, checker<R>& checks, archive_flow<R>& archive,
              backup_flow<R>& backups, offsite_flow<R>& offsite, drill_flow<R>& drills, heal_flow<R>& heals, degradation_flow<R>& degrade,
              settings_flow<R>& settings, audit_flow<R>& audits)
        : ctx_(ctx),
          flow_(flow),
          checks_(checks),
          archive_(archive),
          backups_(backups),
          offsite_(offsite),
          drills_(drills),
          heals_(heals),
          degrade_(degrade),
          settings_(settings),
          audits_(audits) {
        settings_.on_applied = [this](const resilite::settings& next, const resilite::settings& previous,
                                      bool archive_rescheduled) {
            settings_changed(next, previous, archive_rescheduled);
        };
    }

    scheduler(const scheduler&) = delete;
    scheduler& operator=(const scheduler&) = delete;
    ~scheduler() {
        stop();
        settings_.on_applied = nullptr;
    }

    // Db::checkpoint(): one operation with its event.
    checkpoint_result checkpoint(checkpoint_mode mode) {
        // Inside this thread's own transaction SQLite refuses it as LOCKED, a failure that never
        // clears: a transaction(f) would run f again until its retry deadline.
        if (ctx_.own_transaction_open()) {
            const auto start = ctx_.now();
            auto e = library_failure(error_class::misuse, "checkpoint",
                                     "checkpoint() inside a transaction: the WAL cannot be copied into the "
                                     "database while this connection's transaction is open; call it after the "
                                     "transaction ends",
                                     ctx_.path.string());
            ctx_.emit_since("checkpoint", start, outcome::failed, 0, e.klass(), e.what());
            throw e;
        }
        return flow_.run(
            "checkpoint", [&](sqlite::connection& c) { return detail::checkpoint(c, mode); },
            [](const checkpoint_result& r) { return static_cast<std::int64_t>(r.checkpointed_frames); });
    }

    // Counted from t: every interval starts again (at open, and after reconfigure()).
    void schedule_all(time_point t) {
        std::lock_guard lock(ctx_.mutex);
        next_checkpoint_ns_ = (t + ctx_.config.checkpoint_interval).time_since_epoch().count();
        schedule_checks_and_backups(t);
    }
    void schedule_checks_and_backups(time_point t) {
        std::lock_guard lock(ctx_.mutex);
        const auto after = [&](auto interval) -> std::optional<time_point> {
            if (interval <= decltype(interval){0}) return std::nullopt;
            return t + interval;
        };
        next_quick_check_ = after(ctx_.config.quick_check_interval);
        next_integrity_check_ = after(ctx_.config.integrity_check_interval);
        next_backup_ = ctx_.config.backup.enabled ? after(ctx_.config.backup.interval) : std::nullopt;
        next_drill_ = after(ctx_.config.healing.drill_interval);
    }
    void schedule_checkpoint(time_point t) {
        next_checkpoint_ns_ = (t + ctx_.config.checkpoint_interval).time_since_epoch().count();
    }

    // New settings took effect (the writer lock is held): an interval that changed counts from
    // now, and the change goes to the audit log.
    void settings_changed(const settings& next, const settings& previous, bool archive_rescheduled) {
        bool rescheduled = archive_rescheduled;
        if (next.checkpoint_interval != previous.checkpoint_interval) {
            schedule_checkpoint(ctx_.now());
            rescheduled = true;
        }
        if (next.backup != previous.backup || next.quick_check_interval != previous.quick_check_interval ||
            next.integrity_check_interval != previous.integrity_check_interval ||
            next.healing.drill_interval != previous.healing.drill_interval) {
            schedule_checks_and_backups(ctx_.now());
            rescheduled = true;
        }
        if (rescheduled) wake();
        // Audited as it takes effect, whichever way it came (reconfigure(), the settings file).
        audits_.library("reconfigure", settings_change_summary(previous, next));
    }

    // Runs whatever periodic work is due by the clock. Returns true when something was due.
    bool maintain() {
        // Unavailable: a probe once its backoff has passed; queued writes replayed once it is back.
        degrade_.probe_if_due();
        const bool did = maintain_round();
        // Off the machine, after the rest (a heal first): the network never holds the writer lock.
        bool shipped = false;
        try {
            shipped = offsite_.ship_if_due();
        } catch (...) {  // reported by its own event
        }
        return did || shipped;
    }

private:
    // The periodic PASSIVE checkpoint: one attempt, never retried here. This round holds the
    // writer lock, so a retry's backoff would hold back every thread of the process; the next
    // round tries again.
    void scheduled_checkpoint() noexcept {
        const auto start = ctx_.now();
        try {
            ctx_.inject("checkpoint", 1);
            const auto r = detail::checkpoint(ctx_.connection(), checkpoint_mode::passive);
            ctx_.emit_since("checkpoint", start, outcome::ok, static_cast<std::int64_t>(r.checkpointed_frames),
                            error_class::none, {});
        } catch (...) {
            try {
                ctx_.annotate_current(start, "checkpoint");
                const auto f = op_failure::from_current_exception();
                ctx_.note_damage(f.klass, f.detail);
                ctx_.emit_since("checkpoint", start, outcome::failed, 0, f.klass, f.detail);
            } catch (...) {
            }
        }
    }

    // One round. The short work runs under the writer lock; the long work (checks, a backup, a
    // drill) after it, as the same calls made by the application run (through the gate, taking
    // the writer lock only for their own short steps), so that a full integrity check of a large
    // file does not hold every other thread's calls until their retry deadline.
    bool maintain_round() {
        gate_pass<R> pass;  // healing<>: while another process heals, maintenance waits for the next round
        bool did = false, quick = false, full = false, backup = false, drill = false;
        {
            std::lock_guard lock(ctx_.mutex);
            const auto t = ctx_.now();
            ctx_.settle_settings();  // accepted while a transaction held the lock
            did = settings_.poll(t);  // the settings file, when it changed
            if constexpr (R::healing::enabled) {  // damage seen by a call or a check: heal now
                if (ctx_.heal_due.load() && !(ctx_.conn && ctx_.conn->in_transaction()) && ctx_.avail.claim_heal()) {
                    heal_claim claim{ctx_.avail};
                    did = true;
                    try {
                        static_cast<void>(
                            heal_while_open(ctx_, archive_, heals_, "run time: healed by the background thread"));
                    } catch (...) {  // reported by heal_finished; the next call says why there is no database
                    }
                }
            }
            if (audits_.import_waiting()) did = true;  // the audit fallback, once the database is back
            try {
                pass = gate_pass<R>{ctx_, archive_};
            } catch (...) {
                return did;
            }
            if (t.time_since_epoch().count() >= next_checkpoint_ns_.load()) {
                did = true;
                schedule_checkpoint(t);
                scheduled_checkpoint();
                if (const auto wal = sqlite::file_set{ctx_.path}.wal_size(); wal > ctx_.config.wal_alert_bytes) {
                    ctx_.emit_since(
                        "wal_size_alert", t, outcome::warning, 0, error_class::none,
                        resilite::detail::format("WAL is {} bytes, above the alert threshold of {} bytes", wal,
                                                 ctx_.config.wal_alert_bytes));
                }
            }
            const auto due = [&](std::optional<time_point>& next, auto interval) {
                if (!next || t < *next) return false;
                next = t + interval;
                return true;
            };
            quick = due(next_quick_check_, ctx_.config.quick_check_interval);
            full = due(next_integrity_check_, ctx_.config.integrity_check_interval);
            if (archive_.due(t)) {
                did = true;
                archive_.drain_quietly(false);
            }
            // (Long work for a large database, but one write transaction: it cannot leave the lock.)
            if (archive_.baseline_due()) {
                did = true;
                archive_.baseline_quietly();
            }
            backup = due(next_backup_, std::chrono::duration_cast<std::chrono::seconds>(ctx_.config.backup.interval));
            if constexpr (R::archiving || R::backup::enabled) {  // (nothing to drill from otherwise)
                drill = due(next_drill_, ctx_.config.healing.drill_interval);
            }
        }
        leave_under_lock<R> leave{ctx_, pass};
        if (quick) static_cast<void>(checks_.check(check_level::quick));
        if (full) static_cast<void>(checks_.check(check_level::full));
        if (backup) {
            try {
                static_cast<void>(backups_.backup_now());
            } catch (...) {  // reported by the backup's own event; the schedule goes on
            }
        }
        if (drill) static_cast<void>(drills_.run());  // reported by its own event
        return did || quick || full || backup || drill;
    }

public:
    // ---- background thread ------------------------------------------------------------------------

    void start() {
        if constexpr (advancing_clock<clock_type>) {
            subscription_ = ctx_.clock.subscribe([this] { wake(); });
        }
        if constexpr (R::healing::enabled) ctx_.on_heal_due = [this] { wake(); };
        ctx_.wake_background = [this] { wake(); };  // (never reset: wake() on a stopped thread is harmless)
        settings_.set_wake([this] { wake(); });
        worker_ = std::jthread([this](std::stop_token st) { loop(st); });
    }

    void stop() noexcept {
        if constexpr (advancing_clock<clock_type>) subscription_ = {};
        settings_.set_wake(nullptr);
        if constexpr (R::healing::enabled) {
            std::lock_guard lock(ctx_.mutex);  // (set and called under it)
            ctx_.on_heal_due = nullptr;
        }
        if (worker_.joinable()) {
            worker_.request_stop();  // wakes the condition_variable_any wait
            worker_.join();
        }
    }

    void wake() {
        {
            std::lock_guard lock(wake_mutex_);
            wake_ = true;
        }
        wake_cv_.notify_all();
    }

private:
    // The earliest moment any periodic work is due (taken before wake_mutex_: reconfigure() holds
    // the writer lock when it wakes the thread, so the two are never held the other way).
    [[nodiscard]] time_point next_due() {
        std::lock_guard lock(ctx_.mutex);
        auto due = time_point{time_point::duration{next_checkpoint_ns_.load()}};
        for (const auto& next : {next_backup_, next_quick_check_, next_integrity_check_, next_drill_, archive_.next_due(), offsite_.next_due(),
                                 ctx_.avail.next_probe(), settings_.next_poll()}) {
            if (next && *next < due) due = *next;
        }
        return due;
    }

    void loop(std::stop_token st) {
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

    context<R>& ctx_;
    operation_flow<R>& flow_;
    checker<R>& checks_;
    archive_flow<R>& archive_;
    backup_flow<R>& backups_;
    offsite_flow<R>& offsite_;
    drill_flow<R>& drills_;
    heal_flow<R>& heals_;
    degradation_flow<R>& degrade_;
    settings_flow<R>& settings_;
    audit_flow<R>& audits_;
    std::optional<time_point> next_quick_check_, next_integrity_check_, next_backup_, next_drill_;
    std::atomic<std::int64_t> next_checkpoint_ns_{0};

    std::mutex wake_mutex_;
    std::condition_variable_any wake_cv_;
    bool wake_ = false;
    [[no_unique_address]] typename subscription_of<clock_type>::type subscription_{};
    std::jthread worker_;  // last: stopped before anything it uses goes away
};

}  // namespace resilite::detail
