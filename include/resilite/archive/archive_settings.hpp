#pragma once
// resilite::archive_settings: the run-time form of the archive policy.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace resilite {

struct archive_settings {
    enum class flush {
        on_commit,  // each commit's records are in the segment, synced, before the call returns
        batched,    // every `interval`, by maintain() or the background thread (and at close)
    };

    bool enabled = false;  // false: no archive (policy no_archive)
    flush when = flush::on_commit;
    std::chrono::milliseconds interval{1000};  // batched: how often the outbox is drained
    std::string directory;                     // empty: "<database>.archive" beside it
    // Archived rows are removed from the outbox in batches of this many (an extra commit of its
    // own each time); the segment, not the outbox, is what makes them durable.
    int settle_rows = 4096;
    // A baseline (a full snapshot as one record, where a rebuild from the archive alone starts)
    // is written by a maintenance round once the records archived since the newest one hold this
    // many bytes; 0: only when the library needs one (docs/archive.md, "Baselines").
    std::uint64_t baseline_after_bytes = 0;

    friend bool operator==(const archive_settings&, const archive_settings&) = default;

    [[nodiscard]] std::optional<std::string> problem() const {
        if (interval <= std::chrono::milliseconds{0}) return std::string{"archive interval must be positive"};
        if (settle_rows < 1) return std::string{"archive settle_rows must be at least 1"};
        return std::nullopt;
    }
};

}  // namespace resilite
