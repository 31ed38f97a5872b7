#pragma once
// resilite::write_result: what exec(sql, args...), insert, upsert and erase return on a
// Database with resilite::degradation<resilite::queue_writes<N>> (docs/degradation.md): either
// committed (with the rows changed, or the new rowid for insert), or queued while the database
// was unavailable (with the entry's number in the queue; it is replayed, in order and exactly
// once, when the database is back). A queued write is durable but not yet in the database:
// reads do not see it until it is replayed.

#include <cstdint>

namespace resilite {

struct [[nodiscard]] write_result {
    enum class status : std::uint8_t { committed, queued };

    status state = status::committed;
    std::int64_t value = 0;       // committed: rows changed (exec, upsert, erase) or the rowid (insert)
    std::uint64_t queue_seq = 0;  // queued: the entry's sequence number in the write queue

    [[nodiscard]] bool committed() const noexcept { return state == status::committed; }
    [[nodiscard]] bool queued() const noexcept { return state == status::queued; }

    friend bool operator==(const write_result&, const write_result&) = default;
};

}  // namespace resilite
