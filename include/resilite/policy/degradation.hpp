#pragma once
// Degradation policy family: what operations do while the database is unavailable (a heal in
// this process or another, damage not healed, disk full, a read-only volume, I/O errors past
// the retry policy). Busy is not unavailable: the retry policy owns it. docs/degradation.md
// says exactly what each mode promises.
//
//   resilite::degradation<>                                 // fail_fast: class degraded at once
//   resilite::degradation<resilite::read_only>              // reads served where the file is sound
//   resilite::degradation<resilite::queue_writes<10000>>    // writes queued durably, replayed once

#include <resilite/core/slot.hpp>

#include <concepts>
#include <cstddef>

namespace resilite {

// Every operation that needs the database fails at once with class `degraded`.
struct fail_fast {
    static constexpr bool serves_reads = false;
    static constexpr std::size_t queue_capacity = 0;
};

// Reads (query, query_one, get, select) are served while the file itself is sound (disk full, a
// read-only volume, write I/O errors); everything else fails at once with class `degraded`.
struct read_only {
    static constexpr bool serves_reads = true;
    static constexpr std::size_t queue_capacity = 0;
};

// As read_only, and the writes exec(sql, args...), insert, upsert and erase go to a durable
// queue beside the database (at most Capacity entries) and return write_result::queued();
// they are replayed in order, exactly once, when the database is back.
template <std::size_t Capacity>
struct queue_writes {
    static_assert(Capacity >= 1, "resilite::queue_writes<N>: N (the queue's capacity in writes) must be at least 1");
    static constexpr bool serves_reads = true;
    static constexpr std::size_t queue_capacity = Capacity;
};

template <class Mode = fail_fast>
struct degradation {
    using slot = resilite::slot::degradation;
    using mode = Mode;
    static constexpr bool serves_reads = Mode::serves_reads;
    static constexpr std::size_t queue_capacity = Mode::queue_capacity;
    static constexpr bool queues_writes = queue_capacity > 0;
};

template <class P>
concept degradation_policy = std::same_as<typename P::slot, slot::degradation> && requires {
    { P::serves_reads } -> std::convertible_to<bool>;
    { P::queue_capacity } -> std::convertible_to<std::size_t>;
    { P::queues_writes } -> std::convertible_to<bool>;
};

namespace detail {
template <class P>
constexpr bool checked_degradation_policy() {
    static_assert(degradation_policy<P>,
                  "resilite::Database<...>: the degradation policy must be resilite::degradation<fail_fast>, "
                  "resilite::degradation<read_only> or resilite::degradation<queue_writes<N>>");
    return true;
}
}  // namespace detail

}  // namespace resilite
