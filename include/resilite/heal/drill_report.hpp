#pragma once
// resilite::drill_report: a restore drill's verdict: the newest backup that passes its check,
// plus the archive records after it, restored into a scratch file and compared with the live
// database table by table. A drill that fails means the backups or the archive could not heal
// this database now: better learnt from a drill than from a heal.

#include <resilite/detail/format.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace resilite {

struct drill_report {
    struct table {
        std::string name;
        std::int64_t live_rows = 0;
        std::int64_t restored_rows = 0;
        bool matches = false;  // same rows, same content (secret columns left out: never archived)
    };

    bool ok = false;
    std::chrono::system_clock::time_point when{};  // UTC
    std::string source;                            // "backup app-....db + archive", "archive alone"
    std::optional<std::filesystem::path> backup_used;
    std::vector<table> tables;
    // Newer backups passed over, each "<file>: why" (no match with its manifest entry, or a
    // failed check): a drill that is ok with them is still a warning, as they could not heal.
    std::vector<std::string> skipped_backups;
    // The database is behind its archive (committed records the archive holds and the file
    // lacks: its -wal removed after a crash, an older copy put back by hand): the drill compared
    // at the file's own record, and a heal would bring the rest back. A warning, ok or not.
    std::string behind;
    std::string problem;  // why it failed (empty when ok)
    std::chrono::nanoseconds duration{0};

    [[nodiscard]] std::string to_text() const {
        std::string out = resilite::detail::format("restore drill: {}{}\n", ok ? "ok" : "FAILED",
                                                   source.empty() ? "" : " (" + source + ")");
        if (!problem.empty()) out += resilite::detail::format("  problem: {}\n", problem);
        if (!behind.empty()) out += resilite::detail::format("  behind: {}\n", behind);
        for (const auto& b : skipped_backups)
            out += resilite::detail::format("  skipped backup {}\n", b);
        for (const auto& t : tables)
            out += resilite::detail::format("  table {}: live {} rows, restored {} rows, {}\n", t.name,
                                            t.live_rows, t.restored_rows, t.matches ? "equal" : "DIFFERENT");
        return out;
    }
};

}  // namespace resilite
