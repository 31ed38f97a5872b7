#pragma once
// Backup policy family: how copies are taken (through SQLite, never a file copy of a live
// database), when, and how many are kept.
//
//   resilite::backup<resilite::online_backup<>, resilite::every_minutes<60>, resilite::keep_last<24>>
//   resilite::backup<resilite::vacuum_into, resilite::on_demand, resilite::keep_generations<24, 7, 4>>

#include <resilite/backup/backup_settings.hpp>
#include <resilite/core/slot.hpp>
#include <resilite/monitor/check_level.hpp>

#include <concepts>
#include <cstdint>

namespace resilite {

// The backup API, PagesPerStep pages at a time with PauseMs between steps (writers go on in
// between); gives up after TimeLimitSeconds and says so. Another process's write restarts the
// copy: after MaxRestarts restarts the backup is taken with VACUUM INTO instead, which reads one
// snapshot and cannot be restarted.
template <int PagesPerStep = 256, int PauseMs = 1, int TimeLimitSeconds = 600, int MaxRestarts = 1>
struct online_backup {
    static_assert(PagesPerStep >= 1, "resilite::online_backup: PagesPerStep must be at least 1");
    static_assert(MaxRestarts >= 0, "resilite::online_backup: MaxRestarts must not be negative");
    static constexpr auto method = backup_settings::method::online;
    static constexpr int pages_per_step = PagesPerStep;
    static constexpr int pause_ms = PauseMs;
    static constexpr int time_limit_seconds = TimeLimitSeconds;
    static constexpr int max_restarts = MaxRestarts;
};

// VACUUM INTO: one statement, a compact copy; holds a read transaction while it runs.
struct vacuum_into {
    static constexpr auto method = backup_settings::method::vacuum_into;
    static constexpr int pages_per_step = 256;
    static constexpr int pause_ms = 0;
    static constexpr int time_limit_seconds = 600;
    static constexpr int max_restarts = 0;
};

template <int Minutes>
struct every_minutes {
    static_assert(Minutes >= 1, "resilite::every_minutes<N>: N must be at least 1 (use on_demand for none)");
    static constexpr int minutes = Minutes;
};
struct on_demand {
    static constexpr int minutes = 0;
};

template <int N>
struct keep_last {
    static_assert(N >= 1, "resilite::keep_last<N>: keep at least one backup");
    static constexpr int last = N, hourly = 0, daily = 0, weekly = 0;
};
// The newest backup of each of the last Hourly hours, Daily days and Weekly weeks.
template <int Hourly, int Daily, int Weekly>
struct keep_generations {
    static_assert(Hourly >= 0 && Daily >= 0 && Weekly >= 0 && Hourly + Daily + Weekly >= 1,
                  "resilite::keep_generations: keep at least one generation");
    static constexpr int last = 0, hourly = Hourly, daily = Daily, weekly = Weekly;
};

template <class Method = online_backup<>, class Schedule = every_minutes<60>, class Retention = keep_last<24>,
          check_level Check = check_level::quick>
struct backup {
    using slot = resilite::slot::backup;
    static constexpr bool enabled = true;
    // The run-time settings it starts from (a function, not a constant: they hold strings).
    [[nodiscard]] static backup_settings defaults() {
        return {true,
                Method::method,
                Method::pages_per_step,
                std::chrono::milliseconds{Method::pause_ms},
                std::chrono::seconds{Method::time_limit_seconds},
                std::chrono::minutes{Schedule::minutes},
                Check,
                Retention::last,
                Retention::hourly,
                Retention::daily,
                Retention::weekly,
                {},
                {},
                Method::max_restarts};
    }
};

struct no_backup {
    using slot = resilite::slot::backup;
    static constexpr bool enabled = false;
    [[nodiscard]] static backup_settings defaults() { return {}; }
};

template <class P>
concept backup_policy = std::same_as<typename P::slot, slot::backup> && requires {
    { P::enabled } -> std::convertible_to<bool>;
    { P::defaults() } -> std::convertible_to<backup_settings>;
};

namespace detail {
template <class P>
constexpr bool checked_backup_policy() {
    static_assert(backup_policy<P>,
                  "resilite::Database<...>: the backup policy must be a resilite::backup<...> (or declare "
                  "`static constexpr bool enabled` and `static backup_settings defaults()`)");
    return true;
}
}  // namespace detail

}  // namespace resilite
