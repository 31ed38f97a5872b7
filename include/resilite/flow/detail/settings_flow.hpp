#pragma once
// The settings flow: how settings come into force, whatever their source (reconfigure(), the
// settings file, the environment at open), top to bottom:
//   1. validate without the writer lock: each field's range (settings_fields.hpp),
//      settings::problem(), what the policies allow (connect.hpp: settings_problem), and the
//      fields fixed while open, against the settings last accepted;
//   2. publish them as accepted (current_settings() shows them) and pending;
//   3. apply them under the writer lock: at once when it is free, otherwise at the start of the
//      next operation outside a transaction, or by the background thread, which is woken for
//      it. So a heal or a long transaction in another thread never makes reconfigure() wait
//      (P14). Applying sets what lives on the connection (statement cache, PRAGMA synchronous)
//      and reschedules the periodic work; every other field is read where it is used. A
//      failure while applying restores the settings in force before and is reported (thrown by
//      the call that applied at once; a `settings_apply` event when applied later).
// The settings file is read again when it changed (by maintain() and so the background
// thread, every file_poll; at once by reload_settings()): its fields, then the environment's,
// go over the settings accepted last. Locks: file_mutex_, then (tried) the writer lock, then
// ctx.published_mutex.

#include <resilite/core/detail/op_failure.hpp>
#include <resilite/core/error.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/durability/detail/pragmas.hpp>
#include <resilite/flow/detail/archive_flow.hpp>
#include <resilite/flow/detail/connect.hpp>
#include <resilite/flow/detail/context.hpp>
#include <resilite/flow/detail/settings_fields.hpp>
#include <resilite/flow/detail/settings_source.hpp>
#include <resilite/flow/settings.hpp>
#include <resilite/monitor/event.hpp>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace resilite::detail {

template <class R>
class settings_flow {
public:
    using time_point = std::chrono::steady_clock::time_point;
    // How often maintain() looks for a change of the settings file: one small read; a change is
    // in force within this (reload_settings(): at once).
    static constexpr std::chrono::seconds file_poll{2};

    settings_flow(context<R>& ctx, archive_flow<R>& archive) : ctx_(ctx), archive_(archive) {
        ctx_.settle_pending_settings = [this] { settle_later(); };
    }
    settings_flow(const settings_flow&) = delete;
    settings_flow& operator=(const settings_flow&) = delete;
    ~settings_flow() { ctx_.settle_pending_settings = nullptr; }

    // At open, before anything reads the settings: the file's fields, then the environment's,
    // over the settings the Database was given. Throws invalid_setting (after the `open` event).
    void load_at_open() {
        const auto start = ctx_.now();
        try {
            env_ = read_environment("open", ctx_.path.string());
            file_ = ctx_.settings_file;
            if (const char* f = std::getenv(settings_file_variable.data()); f != nullptr && *f != '\0')
                file_ = f;
            settings s = ctx_.config;
            std::string sources;
            if (!file_.empty()) {
                sources = resilite::detail::format("settings file {}", file_.string());
                std::string why;
                auto text = read_text_file(file_, why);
                if (!text)
                    throw refused("open", resilite::detail::format("{} cannot be read: {}", sources, why));
                settings_overlay o;
                if (auto r = parse_settings_json(*text, o))
                    throw refused("open", resilite::detail::format("{}: {}", sources, *r));
                o.apply_to(s);
                last_seen_ = std::move(text);
                next_poll_ns_.store((start + file_poll).time_since_epoch().count());
            }
            env_.apply_to(s);
            if (!env_.empty()) {
                std::string vars;
                for (const auto* f : env_.fields)
                    vars += resilite::detail::format("{}{}={}", vars.empty() ? "" : ", ", f->variable(),
                                                     f->show(env_.values));
                sources +=
                    resilite::detail::format("{}the environment ({})", sources.empty() ? "" : " and ", vars);
            }
            if (auto problem = settings_problem<R>(s)) {
                // Named after its sources only when the settings given in code did not have it.
                const bool theirs = !sources.empty() && settings_problem<R>(ctx_.config) != problem;
                throw refused(
                    "open",
                    theirs ? resilite::detail::format("settings from {}: {}", sources, *problem) : *problem);
            }
            ctx_.config = s;
            {
                std::lock_guard p(ctx_.published_mutex);
                ctx_.published = s;
            }
            ctx_.healing_on.store(R::healing::enabled && s.healing.enabled);
        } catch (...) {
            ctx_.annotate_current(start, "open");
            auto f = op_failure::from_current_exception();
            ctx_.emit_since("open", start, outcome::failed, 0, f.klass, f.detail);
            throw;
        }
    }

    // Database::reconfigure(): one `reconfigure` event; throws invalid_setting when refused.
    void reconfigure(const settings& next) {
        const auto start = ctx_.now();
        bool now = false;
        try {
            now = accept([&](const settings&) { return next; }, "reconfigure", {});
        } catch (...) {
            // Annotated first: the event carries the same record as the error thrown (P9).
            ctx_.annotate_current(start, "reconfigure");
            auto f = op_failure::from_current_exception();
            ctx_.emit_since("reconfigure", start, outcome::failed, 0, f.klass, f.detail);
            throw;
        }
        ctx_.emit_since("reconfigure", start, outcome::ok, 0, error_class::none, now ? "" : deferred_note);
    }

    // Database::reload_settings(): reads the settings file now. True when it changed and its
    // settings were accepted; throws invalid_setting when they were refused (the event too).
    bool reload() { return check_file(true); }

    // From maintain(): reads the settings file when file_poll has passed. Never throws.
    bool poll(time_point t) noexcept {
        if (file_.empty() || t.time_since_epoch().count() < next_poll_ns_.load()) return false;
        next_poll_ns_.store((t + file_poll).time_since_epoch().count());
        try {
            return check_file(false);
        } catch (...) {
            return false;
        }
    }

    // When poll() looks next (nothing without a settings file).
    [[nodiscard]] std::optional<time_point> next_poll() const {
        if (file_.empty()) return std::nullopt;
        return time_point{time_point::duration{next_poll_ns_.load()}};
    }

    [[nodiscard]] const std::filesystem::path& file() const noexcept { return file_; }

    // The scheduler's part of applying: reschedule what changed (the writer lock is held).
    std::function<void(const settings& next, const settings& previous, bool archive_rescheduled)> on_applied;

    // Wakes the background thread, which applies settings accepted while the lock was held.
    void set_wake(std::function<void()> wake) {
        std::lock_guard lock(wake_mutex_);
        wake_ = std::move(wake);
    }

private:
    static constexpr std::string_view deferred_note =
        "accepted; applied when the writer lock is free and no transaction is open";

    [[nodiscard]] error refused(std::string_view operation, std::string note) const {
        return library_failure(error_class::invalid_setting, operation, std::move(note), ctx_.path.string());
    }

    // 1. Pure: the fields that cannot change while open, ranges, relations, policies.
    void validate(const settings& s, std::string_view operation, const settings& in_force,
                  const std::string& source) const {
        std::optional<std::string> problem;
        for (const auto& f : setting_fields()) {
            if (f.fixed_while_open && !f.same(s, in_force)) {
                problem = resilite::detail::format(
                    "{} is fixed while the database is open (in force: {}, asked: {})", f.path,
                    f.show(in_force), f.show(s));
                break;
            }
        }
        if (!problem) problem = settings_problem<R>(s);
        if (problem)
            throw refused(operation,
                          source.empty() ? *problem : resilite::detail::format("{}: {}", source, *problem));
    }

    // 1. and 2.; 3. at once when the writer lock is free. Returns true when applied now.
    template <class Make>
    bool accept(Make make, std::string_view operation, const std::string& source) {
        std::unique_lock writer(ctx_.mutex, std::try_to_lock);
        {
            std::lock_guard p(ctx_.published_mutex);
            settings next = make(static_cast<const settings&>(ctx_.published));
            validate(next, operation, ctx_.published, source);
            ctx_.published = next;
            pending_ = std::move(next);
            ctx_.settings_pending.store(true, std::memory_order_release);
        }
        if (writer.owns_lock() && settle()) return true;
        writer = {};
        std::lock_guard lock(wake_mutex_);
        if (wake_) wake_();
        return false;
    }

    // 3. The caller holds the writer lock. False when nothing was applied (nothing pending, or
    // inside a transaction: then at its end). Throws when applying failed, with the settings in
    // force before back in place.
    bool settle() {
        if (ctx_.conn && ctx_.conn->in_transaction()) return false;
        std::optional<settings> next;
        {
            std::lock_guard p(ctx_.published_mutex);
            next = std::exchange(pending_, std::nullopt);
            ctx_.settings_pending.store(false, std::memory_order_relaxed);
        }
        if (!next) return false;
        const settings previous = ctx_.config;
        try {
            ctx_.inject("settings_apply", 1);  // (test hook: a failure while applying)
            apply(*next, previous);
        } catch (...) {
            try {
                apply(previous, *next);
            } catch (...) {  // the connection keeps whatever it had; the settings are unchanged
            }
            std::lock_guard p(ctx_.published_mutex);
            if (!pending_) ctx_.published = previous;  // (a newer acceptance stands)
            throw;
        }
        ctx_.config = *next;
        if constexpr (R::healing::enabled) ctx_.set_healing(next->healing.enabled);
        const bool archive_rescheduled = archive_.reconfigured(next->archive, previous.archive);
        if (on_applied) on_applied(*next, previous, archive_rescheduled);
        return true;
    }

    // 3. later (context::settle_settings(), the writer lock held): a failure is an event.
    void settle_later() noexcept {
        const auto start = ctx_.now();
        try {
            static_cast<void>(settle());
        } catch (...) {
            ctx_.annotate_current(start, "settings_apply");
            auto f = op_failure::from_current_exception();
            ctx_.emit_since("settings_apply", start, outcome::failed, 0, f.klass,
                            resilite::detail::format("{}; the settings in force before stay", f.detail));
        }
    }

    // What lives on the connection (the caller holds the writer lock).
    void apply(const settings& s, const settings& from) {
        auto& c = ctx_.connection();
        c.cache().set_capacity(s.statement_cache_capacity);
        if (s.sync != from.sync) apply_synchronous(c, s.sync, ctx_.path.string());
    }

    // Reads the file; when its text changed since last read, its settings are accepted or
    // refused (a `settings_reload` event either way). An unchanged file is not applied again, so
    // a reconfigure() made since stands until the file changes.
    bool check_file(bool throw_refusal) {
        if (file_.empty()) return false;
        std::lock_guard watch(file_mutex_);
        std::string why;
        auto text = read_text_file(file_, why);
        if (text == last_seen_) return false;
        last_seen_ = text;
        const auto start = ctx_.now();
        const auto source = resilite::detail::format("settings file {}", file_.string());
        std::string changed;
        bool now = false;
        try {
            if (!text)
                throw refused("settings_reload",
                              resilite::detail::format("{} cannot be read: {}", source, why));
            settings_overlay o;
            if (auto r = parse_settings_json(*text, o))
                throw refused("settings_reload", resilite::detail::format("{}: {}", source, *r));
            now = accept(
                [&](const settings& in_force) {
                    settings s = in_force;
                    o.apply_to(s);
                    env_.apply_to(s);  // the environment keeps its precedence
                    changed = changed_fields(in_force, s);
                    return s;
                },
                "settings_reload", source);
        } catch (...) {
            ctx_.annotate_current(start, "settings_reload");
            auto f = op_failure::from_current_exception();
            ctx_.emit_since("settings_reload", start, outcome::failed, 0, f.klass,
                            resilite::detail::format("{}; the settings in force stay", f.detail));
            if (throw_refusal) throw;
            return false;
        }
        ctx_.emit_since(
            "settings_reload", start, outcome::ok, 0, error_class::none,
            resilite::detail::format("{}: {}{}", source, changed.empty() ? "no change" : "changed " + changed,
                                     now ? "" : resilite::detail::format("; {}", deferred_note)));
        return true;
    }

    context<R>& ctx_;
    archive_flow<R>& archive_;
    std::optional<settings> pending_;  // accepted, not yet applied; guarded by ctx_.published_mutex
    settings_overlay env_;             // read at open; put over every reloaded file
    std::filesystem::path file_;       // the settings file (empty: none)
    std::mutex file_mutex_;
    std::optional<std::string> last_seen_;  // the file's text last read (nothing: unreadable)
    std::atomic<std::int64_t> next_poll_ns_{0};
    std::mutex wake_mutex_;
    std::function<void()> wake_;
};

}  // namespace resilite::detail
