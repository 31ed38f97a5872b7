#pragma once
// Degradation policy family: what operations do while the database is unavailable (a heal in
// this process or another, damage not healed, disk full, a read-only volume, I/O errors past
// the retry policy). Busy is not unavailable: the retry policy owns it. docs/degradation.md
// says exactly what each mode promises.
//
//   resilite::degradation<>                                 // fail_fast: nothing waits for a heal
//   resilite::degradation<resilite::read_only>              // writes refused until a probe writes
//   resilite::degradation<resilite::queue_writes<10000>>    // writes queued durably, replayed once

#include <resilite/core/slot.hpp>

#include <concepts>
#include <cstddef>

namespace resilite {

// While the file is in doubt (a heal, damage), every call fails at once with class `degraded`.
// While only writes fail (disk full, a read-only volume, I/O errors), reads are served and each
// write is tried: it fails with its own class (`full`, ...) or, once it succeeds, ends the state.
struct fail_fast {
    static constexpr bool tries_writes = true;
    static constexpr std::size_t queue_capacity = 0;
};

// As fail_fast, except that while only writes fail (disk full, a read-only volume, I/O errors)
// writes are not tried: they fail at once with class `degraded` until a probe writes again.
struct read_only {
    static constexpr bool tries_writes = false;
    static constexpr std::size_t queue_capacity = 0;
};

// As read_only, and the writes exec(sql, args...), insert, upsert and erase go to a durable
// queue beside the database (at most Capacity entries) and return write_result::queued();
// they are replayed in order, exactly once, when the database is back.
template <std::size_t Capacity>
struct queue_writes {
    static_assert(Capacity >= 1, "resilite::queue_writes<N>: N (the queue's capacity in writes) must be at least 1");
    static constexpr bool tries_writes = false;
    static constexpr std::size_t queue_capacity = Capacity;
};

template <class Mode = fail_fast>
struct degradation {
    using slot = resilite::slot::degradation;
    using mode = Mode;
    static constexpr bool tries_writes = Mode::tries_writes;
    static constexpr std::size_t queue_capacity = Mode::queue_capacity;
    static constexpr bool queues_writes = queue_capacity > 0;
};

template <class P>
concept degradation_policy = std::same_as<typename P::slot, slot::degradation> && requires {
    { P::tries_writes } -> std::convertible_to<bool>;
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
