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
