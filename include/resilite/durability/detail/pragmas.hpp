#pragma once
// The durability settings on a connection: WAL, the synchronous level (both read back, never
// assumed) and checkpoints.

#include <resilite/core/error.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/durability/checkpoint_mode.hpp>
#include <resilite/durability/checkpoint_result.hpp>
#include <resilite/durability/synchronous.hpp>
#include <resilite/sqlite/connection.hpp>

#include <fmt/format.h>

#include <string>
#include <utility>

namespace resilite::detail {

inline void apply_synchronous(sqlite::connection& c, synchronous sync, const std::string& path) {
    c.exec_script(resilite::detail::format("PRAGMA synchronous={}", to_string(sync)));
    const auto level = c.query_one<int>("PRAGMA synchronous");
    if (!level || *level != static_cast<int>(sync)) {
        throw library_failure(error_class::durability, "open",
                              resilite::detail::format("synchronous reads back as {} after setting {}",
                                                       level.value_or(-1), to_string(sync)),
                              path);
    }
}

inline void apply_durability(sqlite::connection& c, synchronous sync, const std::string& path) {
    const auto mode = c.query_one<std::string>("PRAGMA journal_mode=WAL");
    if (!mode || (*mode != "wal" && *mode != "WAL")) {
        throw library_failure(
            error_class::durability, "open",
            resilite::detail::format("journal_mode is '{}' after asking for WAL; WAL needs a file on a "
                                     "local file system (not :memory:, not a network share)",
                                     mode.value_or("?")),
            path);
    }
    apply_synchronous(c, sync, path);
}

// keeping_durability(c, pragma, f) runs f, a statement or a script of the application's that may
// be a PRAGMA (`pragma`: the SQL begins with one, or a script names one; the caller tells), and
// refuses (class misuse) one that changed the journal mode or the synchronous level: the open
// set and checked them, and the settings and health() report them. What it changed is put back
// first. Other pragmas pass. This is its slow path, out of line.
template <class F>
[[gnu::noinline]] auto keeping_durability_of_pragma(sqlite::connection& c, F& f) {
    const auto state = [&] {
        return std::pair{c.query_one<std::string>("PRAGMA journal_mode").value_or(""),
                         c.query_one<int>("PRAGMA synchronous").value_or(-1)};
    };
    const auto before = state();
    const auto refuse_if_changed = [&] {
        const auto after = state();
        if (after == before) return;
        try {  // (journal_mode cannot change inside a transaction; neither did it then)
            if (after.first != before.first)
                static_cast<void>(c.query_one<std::string>(resilite::detail::format("PRAGMA journal_mode={}", before.first)));
            if (after.second != before.second)
                c.exec_script(resilite::detail::format("PRAGMA synchronous={}", before.second));
        } catch (...) {
        }
        const auto now = state();
        throw library_failure(
            error_class::misuse, "exec",
            resilite::detail::format(
                "the statement changed journal_mode from {} to {} or synchronous from {} to {}, which the open set "
                "and checked (the settings and health() report them); {}. Choose them with the durability policy "
                "and settings().sync",
                before.first, after.first, before.second, after.second,
                now == before ? "they were put back" : "they could NOT be put back: reopen the database"),
            c.path());
    };
    try {
        auto result = f();
        refuse_if_changed();
        return result;
    } catch (const error&) {
        refuse_if_changed();  // (a script that failed after its pragma)
        throw;
    }
}
template <class F>
[[gnu::always_inline]] inline auto keeping_durability(sqlite::connection& c, bool pragma, F&& f) {
    if (!pragma) [[likely]] return f();  // (every statement but a PRAGMA: nothing more than the call)
    return keeping_durability_of_pragma(c, f);
}

// Readers or another writer in the way are not an error: the result says it was incomplete.
inline checkpoint_result checkpoint(sqlite::connection& c, checkpoint_mode mode) {
    static constexpr int modes[] = {SQLITE_CHECKPOINT_PASSIVE, SQLITE_CHECKPOINT_FULL, SQLITE_CHECKPOINT_RESTART,
                                    SQLITE_CHECKPOINT_TRUNCATE};
    checkpoint_result r;
    const int rc = sqlite3_wal_checkpoint_v2(c.native_handle(), nullptr, modes[static_cast<int>(mode)],
                                             &r.wal_frames, &r.checkpointed_frames);
    if (rc == SQLITE_BUSY) return r;
    c.check(rc, "checkpoint");
    r.complete = r.checkpointed_frames == r.wal_frames;
    return r;
}

}  // namespace resilite::detail
