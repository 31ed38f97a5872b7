#pragma once
// The degradation flow (docs/degradation.md): what a call does while the database is
// unavailable, by the degradation policy, and how the database becomes available again.
//
// 1. admit(): before any call that needs the database, with no lock held. Available: go (one
//    atomic load; with queue_writes, queued writes are replayed first). Unavailable: a heal of
//    another process is looked for at the gate (gone: available again). While the file is in
//    doubt (healing, damaged) a queueable write is queued (queue_writes) and anything else
//    fails at once, class degraded, saying why and since when. While only writes fail (disk
//    full, a read-only volume, I/O errors) reads go on; fail_fast tries each write (it is a
//    probe); the other modes let a write through only as the probe once the backoff has
//    passed, and queue or refuse the rest.
// 2. replay(): the queued writes, in order, each in its own transaction with the number of the
//    last one replayed (exactly once); a write SQLite refuses is kept in the rejected file and
//    reported; an unavailable database stops the replay with the rest still queued.
// 3. probe(): on the background thread (maintain()) or as the next write, once the backoff has
//    passed: a real write (the queue's replay, or user_version written back) ends disk full, a
//    read-only volume or I/O errors.

#include <resilite/core/detail/file_gate.hpp>
#include <resilite/core/error.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/flow/detail/availability.hpp>
#include <resilite/flow/detail/context.hpp>
#include <resilite/flow/detail/operation_flow.hpp>
#include <resilite/flow/detail/write_queue.hpp>
#include <resilite/flow/write_result.hpp>

#include <fmt/format.h>

#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace resilite::detail {

enum class op_kind {
    read,        // query, query_one, get, select
    write,       // anything that may write: exec_script, transactions, checkpoints, ...
    queueable,   // exec(sql, args...), insert, upsert, erase
    diagnostic,  // check, backup, drill: refused only while a heal runs (they say what they find)
};

enum class admission {
    go,     // run it
    probe,  // run it as the probe: its outcome ends the unavailability or backs off
    queue,  // queue it (queue_writes)
};

// Classes that say the database cannot be used now, rather than that this write is wrong.
[[nodiscard]] constexpr bool unavailable_class(error_class k) noexcept {
    switch (k) {
        case error_class::degraded:
        case error_class::full:
        case error_class::read_only:
        case error_class::io:
        case error_class::retry_exhausted:
        case error_class::busy:
        case error_class::locked:
        case error_class::cant_open:
        case error_class::corrupt:
        case error_class::not_a_database:
        case error_class::interrupted:
        case error_class::no_memory:
            return true;
        default:
            return false;
    }
}

template <class R>
class degradation_flow {
    using policy = typename R::degradation;

public:
    static constexpr bool queues_writes = policy::queues_writes;

    degradation_flow(context<R>& ctx, operation_flow<R>& flow) : ctx_(ctx), flow_(flow) {
        if constexpr (queues_writes) {
            if (ctx_.on_disk()) queue_.emplace(ctx_.path);
        }
    }

    // 1. May this call go to the database? Throws class degraded when not.
    admission admit(op_kind kind, std::string_view name) {
        if (ctx_.avail.available()) [[likely]] {
            if constexpr (queues_writes) {
                // Queued writes first (reads see them); a read goes on if they cannot be replayed yet.
                if (kind != op_kind::diagnostic && queue_ && queue_->pending() && !replay() && kind != op_kind::read)
                    return queue_or_refuse(kind, name);
            }
            return admission::go;
        }
        auto why = ctx_.avail.reason();
        if (why == unavailable_reason::healing_elsewhere && gate_open()) {
            ctx_.note_available("the other process's heal ended", unavailable_reason::healing_elsewhere);
            return admit(kind, name);
        }
        if (kind == op_kind::diagnostic) {
            if (why == unavailable_reason::healing || why == unavailable_reason::healing_elsewhere) refuse(name);
            return admission::go;
        }
        // A heal, or damage not healed: the file is in doubt, so nothing reads or writes it.
        if (file_in_doubt(why)) {
            if (kind == op_kind::read) refuse(name);
            return queue_or_refuse(kind, name);
        }
        // Only writes fail (disk full, a read-only volume, I/O errors): the file holds every
        // acknowledged commit, so reads go on.
        if (kind == op_kind::read) return admission::go;
        if constexpr (policy::tries_writes) {
            // fail_fast: the write is tried ("free some space and try again" must work at once);
            // its own error says why it failed, and its success ends the state.
            return admission::probe;
        }
        if (needs_probe(why) && ctx_.avail.claim_probe(ctx_.now())) {
            if constexpr (queues_writes) {
                if (queue_ && queue_->pending()) {  // the queue first: its replay is the probe
                    if (!probe()) return queue_or_refuse(kind, name);
                    return admission::go;
                }
            }
            return admission::probe;
        }
        return queue_or_refuse(kind, name);
    }

    // The outcome of a call admitted as the probe.
    void probe_succeeded() noexcept {
        try {
            ctx_.avail.probe_ended();
        } catch (...) {
        }
        ctx_.note_available("a write succeeded", unavailable_reason::disk_full, unavailable_reason::read_only_volume,
                            unavailable_reason::io_error);
    }
    // The call admitted as the probe wrote nothing: neither way.
    void probe_inconclusive() noexcept {
        try {
            ctx_.avail.probe_ended();
        } catch (...) {
        }
    }
    void probe_failed() noexcept {
        try {
            ctx_.avail.probe_failed(ctx_.now(), max_backoff());
        } catch (...) {
        }
    }

    // queue_writes: the write, as exact literals, into the durable queue (fsynced before this
    // returns). Throws class degraded when the queue is full.
    template <class Encode>
    write_result enqueue(std::string_view name, Encode&& encode) {
        static_assert(queues_writes);
        const auto start = ctx_.now();
        try {
            if (!queue_)
                throw library_failure(error_class::degraded, name,
                                      "the database is unavailable and an in-memory database has no write queue",
                                      ctx_.path.string());
            const auto seq = queue_->append(encode(*queue_), policy::queue_capacity, ctx_.clock.utc_now());
            ctx_.emit_since(
                "queued", start, outcome::warning, 1, error_class::degraded,
                resilite::detail::format("{}: queued as entry {} while the database is unavailable ({})",
                                         name, seq, to_string(ctx_.avail.reason())));
            return {write_result::status::queued, 0, seq};
        } catch (...) {
            ctx_.annotate_current(start, name);
            auto f = op_failure::from_current_exception();
            ctx_.emit_since(name, start, outcome::failed, 0, f.klass, f.detail);
            throw;
        }
    }

    // 2. The queued writes into the database, in order, exactly once. True when none is left.
    bool replay() {
        if constexpr (!queues_writes) {
            return true;
        } else {
            if (!queue_) return true;
            std::unique_lock lock(ctx_.mutex);  // the writer lock, then the queue file's lock
            // Never inside a transaction of this thread: a rollback would undo replayed writes.
            if (ctx_.conn && ctx_.conn->in_transaction()) return false;
            auto held = queue_->take();
            if (!held.open()) return true;
            auto& q = held.contents;
            const auto start = ctx_.now();
            if (!q.damage.empty()) {
                const auto aside = queue_->set_aside(held, ctx_.clock.utc_now());
                ctx_.emit_since("queue_replay", start, outcome::failed, 0, error_class::degraded,
                                resilite::detail::format(
                                    "the write queue is damaged ({}); nothing of it was replayed: it is kept "
                                    "whole as {}",
                                    q.damage, aside.string()));
                return true;
            }
            if (q.torn_tail_bytes > 0) {
                ctx_.emit_since("queue_replay", start, outcome::warning, 0, error_class::none,
                                resilite::detail::format(
                                    "the write queue ends in {} bytes of a write a crash cut short (never "
                                    "acknowledged): not replayed",
                                    q.torn_tail_bytes));
            }
            try {
                flow_.run(
                    "queue_replay",
                    [](sqlite::connection& c) { return c.exec(archive::queue_state_table); },
                    [](std::int64_t) { return std::int64_t{0}; });
                const auto done = flow_.run(
                                           "queue_replay",
                                           [&](sqlite::connection& c) {
                                               return c.query_one<std::int64_t>(
                                                   "SELECT last_seq FROM resilite_queue_state WHERE generation = ?",
                                                   q.generation);
                                           },
                                           [](const auto&) { return std::int64_t{0}; })
                                      .value_or(0);
                for (const auto& w : q.entries) {
                    if (static_cast<std::int64_t>(w.seq) <= done) {  // replayed before a crash removed the file
                        queue_->forget_one();
                        continue;
                    }
                    try {
                        flow_.run(
                            "queue_replay", [&](sqlite::connection& c) { return apply(c, w, q.generation); },
                            [](std::int64_t n) { return n; });
                    } catch (const error& e) {
                        if (unavailable_class(e.klass())) throw;
                        // SQLite refused this write (a constraint, a missing table): kept with why,
                        // and counted as done so that the writes after it go on.
                        queue_->reject(w, q.generation, e.what());
                        flow_.run(
                            "queue_replay", [&](sqlite::connection& c) { return mark(c, q.generation, w.seq); },
                            [](std::int64_t) { return std::int64_t{0}; });
                        // (not counted again: the replay's failed event counted this failure)
                        ctx_.emit_since(
                            "queue_rejected", start, outcome::failed, 0, e.klass(),
                            resilite::detail::format(
                                "queued write {} ({}) was refused on replay and is kept in {}: {}", w.seq,
                                w.op, queue_->rejected_path().string(), e.what()),
                            1, false);
                    }
                    queue_->forget_one();
                }
            } catch (const error&) {
                // Unavailable again: the rest stays queued, in order, for the next replay.
                return false;
            }
            queue_->remove(held);
            return true;
        }
    }

    // 3. A probe now, if one is due: called by maintain() (the background thread).
    void probe_if_due() {
        if (ctx_.avail.reason() == unavailable_reason::healing_elsewhere && gate_open())
            ctx_.note_available("the other process's heal ended", unavailable_reason::healing_elsewhere);
        if (ctx_.avail.available()) {
            if constexpr (queues_writes) {
                if (queue_ && queue_->pending()) static_cast<void>(replay());
            }
            return;
        }
        if (!ctx_.avail.claim_probe(ctx_.now())) return;
        static_cast<void>(probe());
    }

    // After open: writes queued before (by a process that ended, or this one before a restart).
    void after_open() {
        if constexpr (queues_writes) {
            if (queue_ && queue_->pending()) static_cast<void>(replay());
        }
    }

    [[nodiscard]] std::size_t queue_depth() const noexcept {
        if constexpr (queues_writes) return queue_ ? queue_->depth() : 0;
        return 0;
    }
    [[nodiscard]] std::size_t queue_rejected() const noexcept {
        if constexpr (queues_writes) return queue_ ? queue_->rejected() : 0;
        return 0;
    }

private:
    [[noreturn]] void refuse(std::string_view name) {
        const auto s = ctx_.avail.snapshot();
        const auto since =
            s.since ? resilite::detail::format(" since {}Z", utc_format(*s.since, "%Y-%m-%dT%H:%M:%S"))
                    : std::string{};
        const auto start = ctx_.now();
        auto e = library_failure(
            error_class::degraded, name,
            s.reason == unavailable_reason::none
                ? std::string{"writes queued earlier could not be replayed yet, and none may overtake them"}
                : resilite::detail::format("the database is unavailable ({}{}): {}", to_string(s.reason),
                                           since, s.detail),
            ctx_.path.string());
        ctx_.emit_since(name, start, outcome::failed, 0, error_class::degraded, e.what());
        throw e;
    }

    admission queue_or_refuse(op_kind kind, std::string_view name) {
        if (queues_writes && kind == op_kind::queueable) return admission::queue;
        refuse(name);
    }

    // A real write: the queue's replay, or user_version written back as it is.
    bool probe() {
        bool ok = false;
        try {
            if constexpr (queues_writes) {
                if (queue_ && queue_->pending()) {
                    ok = replay();
                } else {
                    ok = write_probe();
                }
            } else {
                ok = write_probe();
            }
        } catch (...) {
            ok = false;
        }
        if (ok) {
            probe_succeeded();
        } else {
            probe_failed();
        }
        return ok;
    }

    bool write_probe() {
        try {
            std::lock_guard lock(ctx_.mutex);
            flow_.run(
                "probe",
                [](sqlite::connection& c) {
                    const auto v = c.query_one<std::int64_t>("PRAGMA user_version").value_or(0);
                    c.exec_script(resilite::detail::format("PRAGMA user_version = {}",
                                                           v));  // a page written and synced
                    return std::int64_t{0};
                },
                [](std::int64_t) { return std::int64_t{0}; });
            return true;
        } catch (...) {
            return false;
        }
    }

    // Another process's heal holds the gate exclusively; a shared lock taken and let go at once
    // says whether it still does.
    [[nodiscard]] bool gate_open() const {
        if constexpr (!R::healing::enabled) {
            return true;
        } else {
            try {
                const int fd = open_gate(ctx_.path, "gate");
                const bool open = try_flock(fd, LOCK_SH);
                ::close(fd);
                return open;
            } catch (...) {
                return false;
            }
        }
    }

    [[nodiscard]] std::chrono::nanoseconds max_backoff() const {
        std::lock_guard lock(ctx_.published_mutex);
        return ctx_.published.degradation.probe_max_interval;
    }

    // One queued write and the mark that it is done, in one transaction.
    static std::int64_t apply(sqlite::connection& c, const queued_write& w, const std::string& generation) {
        c.exec_script("SAVEPOINT resilite_queue");
        try {
            std::int64_t rows = 0;
            {
                auto stmt = c.prepare_cached(w.sql);
                for (std::size_t i = 0; i < w.args.size(); ++i) {
                    auto value = c.prepare("SELECT " + w.args[i]);
                    if (!value.step())
                        throw library_failure(error_class::degraded, "queue_replay",
                                              resilite::detail::format(
                                                  "queued write {}: argument {} gave no value", w.seq, i + 1),
                                              c.path());
                    c.check(sqlite3_bind_value(stmt->native_handle(), static_cast<int>(i) + 1,
                                               sqlite3_column_value(value.native_handle(), 0)),
                            "bind", w.sql);
                }
                const auto before = sqlite3_total_changes64(c.native_handle());
                while (stmt->step()) {
                }
                rows = sqlite3_total_changes64(c.native_handle()) == before ? 0 : sqlite3_changes64(c.native_handle());
            }
            static_cast<void>(mark(c, generation, w.seq));
            c.exec_script("RELEASE resilite_queue");
            return rows;
        } catch (...) {
            try {
                c.exec_script("ROLLBACK TO resilite_queue; RELEASE resilite_queue");
            } catch (...) {  // (SQLite may have ended the transaction itself)
            }
            throw;
        }
    }

    // In the replayed write's transaction; with an archive, its record says so too (a database
    // rebuilt or healed from the archive knows the entry was replayed: archive_format.hpp).
    static std::int64_t mark(sqlite::connection& c, const std::string& generation, std::uint64_t seq) {
        if constexpr (R::archiving) {
            if (archive::queue_generation(generation) &&
                c.query_one<int>("SELECT 1 FROM sqlite_master WHERE name = 'resilite_archive_outbox'"))
                archive::add_to_outbox(
                    c, resilite::detail::format("{}{} {}", archive::queue_replayed_prefix, generation, seq));
        }
        return c.exec(
            "INSERT INTO resilite_queue_state(generation, last_seq) VALUES(?1, ?2) "
            "ON CONFLICT(generation) DO UPDATE SET last_seq = excluded.last_seq",
            generation, static_cast<std::int64_t>(seq));
    }

    context<R>& ctx_;
    operation_flow<R>& flow_;
    std::optional<write_queue> queue_;  // queue_writes on a file on disk
};

}  // namespace resilite::detail
