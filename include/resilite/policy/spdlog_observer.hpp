#pragma once
// resilite::spdlog_observer: events to an spdlog logger (optional: include this header only where
// spdlog is available; Debian: libspdlog-dev; it is not part of <resilite/resilite.hpp>).
//
//   using Db = resilite::Database<resilite::spdlog_observer>;
//   Db::options o;
//   o.observer.logger = spdlog::get("db");  // default: spdlog's default logger
//
// Levels: a failure is `error`, a warning (incl. an operation that succeeded only after retries)
// is `warn`, a success is `debug`, a retry `trace`; the logger's own level filters as usual, and
// a line below it costs no formatting. Never throws: a logger that fails is ignored.

#include <resilite/core/error_class.hpp>
#include <resilite/core/slot.hpp>
#include <resilite/monitor/event.hpp>

#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>

namespace resilite {

struct spdlog_observer {
    using slot = resilite::slot::observer;
    static constexpr bool enabled = true;

    std::shared_ptr<spdlog::logger> logger;  // empty: spdlog::default_logger()

    [[nodiscard]] static spdlog::level::level_enum level_of(const event& e) noexcept {
        if (e.name == "retry") return spdlog::level::trace;
        if (e.result == outcome::failed) return spdlog::level::err;
        if (e.result == outcome::warning || e.attempts > 1) return spdlog::level::warn;
        return spdlog::level::debug;
    }

    void on_event(const event& e) const noexcept {
        try {
            spdlog::logger* l = logger ? logger.get() : spdlog::default_logger_raw();
            const auto level = level_of(e);
            if (l == nullptr || !l->should_log(level)) return;
            l->log(level, "resilite: {} {}{}{} ({} rows, {} attempt{}, {:.3f} ms){}{}", e.name, to_string(e.result),
                   e.error == error_class::none ? "" : ", class ", e.error == error_class::none ? "" : name(e.error),
                   e.rows, e.attempts, e.attempts == 1 ? "" : "s",
                   std::chrono::duration<double, std::milli>(e.duration).count(), e.detail.empty() ? "" : ": ",
                   e.detail);
        } catch (...) {  // observing never changes what an operation does
        }
    }
};

}  // namespace resilite
