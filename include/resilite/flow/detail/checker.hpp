#pragma once
// Db::check(): a check of the open database by a reader of its own (writers go on meanwhile),
// plus the test that the file at the path is still the database this Database opened. The
// last result is kept for health(); a failed check marks the database damaged.

#include <resilite/detail/format.hpp>
#include <resilite/flow/detail/context.hpp>
#include <resilite/monitor/check_health.hpp>
#include <resilite/monitor/health_snapshot.hpp>
#include <resilite/sqlite/detail/identity.hpp>

#include <fmt/format.h>

#include <chrono>
#include <mutex>
#include <optional>

namespace resilite::detail {

template <class R>
class checker {
public:
    explicit checker(context<R>& ctx) : ctx_(ctx) {}

    health_report check(check_level level) {
        const auto start = ctx_.now();
        auto r = check_health(ctx_.path, level);
        // Nothing at the path, and no sidecar either (the directory removed with it): not a new
        // database for a Database that opened one there.
        if (r.result == health_report::finding::new_database && ctx_.on_disk() && !ctx_.identity.empty()) {
            r = {health_report::finding::missing, level,
                 "the database file this Database opened is gone from the path (removed or renamed while open, "
                 "perhaps with its directory)"};
        }
        // The file at the path must still be the database this Database opened: one replaced
        // while open takes no write of ours (they go to the file we hold), so say so.
        if (r.result == health_report::finding::ok && ctx_.on_disk() && !ctx_.identity.empty()) {
            try {
                sqlite::connection reader{ctx_.path, SQLITE_OPEN_READONLY, ctx_.vfs_name()};
                if (const auto there = read_identity(reader).value_or("none"); there != ctx_.identity) {
                    r = {health_report::finding::corrupt, level,
                         resilite::detail::format(
                             "the file at the path is not the database this Database opened (identity "
                             "{}, expected {}): it was replaced while open",
                             there, ctx_.identity)};
                }
            } catch (const error& e) {
                r = {health_report::finding::io_error, level, e.what()};
            }
        }
        {
            std::lock_guard lock(ctx_.mutex);
            last_ = r;
            last_time_ = ctx_.clock.utc_now();
        }
        ctx_.emit_since(
            "check", start, r.ok() ? outcome::ok : outcome::failed, 0,
            r.ok() ? error_class::none : error_class::corrupt,
            r.ok() ? std::string{} : resilite::detail::format("{}: {}", to_string(r.result), r.detail));
        if (!r.ok())
            ctx_.note_damage(error_class::corrupt,
                             resilite::detail::format("check: {}: {}", to_string(r.result), r.detail));
        // Damage seen earlier that the file no longer shows (a fault that passed, or healing off
        // and the damage repaired by hand): calls are no longer refused for it.
        if (r.ok() && ctx_.avail.reason() == unavailable_reason::damaged) {
            ctx_.forget_cached_pages();  // (the repaired pages are read again)
            ctx_.clear_damage();
        }
        return r;
    }

    // The caller holds the writer lock.
    void fill(health_snapshot& s) const {
        s.last_check = last_;
        s.last_check_time = last_time_;
    }

private:
    context<R>& ctx_;
    std::optional<health_report> last_;
    std::optional<std::chrono::system_clock::time_point> last_time_;
};

}  // namespace resilite::detail
