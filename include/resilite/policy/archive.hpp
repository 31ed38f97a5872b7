#pragma once
// Archive policy family: every committed change, as readable SQL text in monthly segments, from
// which the whole database can be rebuilt (resilite::rebuild).
//
//   resilite::archive<>                                    // flushed and synced at every commit
//   resilite::archive<resilite::flush_every_ms<500>>       // batched: cheaper, up to 0.5 s behind
//
// Secret columns (resilite::secret<"col">) are never written to the archive.

#include <resilite/archive/archive_settings.hpp>
#include <resilite/core/slot.hpp>

#include <concepts>

namespace resilite {

struct flush_on_commit {
    static constexpr auto when = archive_settings::flush::on_commit;
    static constexpr int interval_ms = 1000;
};

template <int Ms>
struct flush_every_ms {
    static_assert(Ms >= 1, "resilite::flush_every_ms<N>: N must be at least 1 ms");
    static constexpr auto when = archive_settings::flush::batched;
    static constexpr int interval_ms = Ms;
};

template <class Flush = flush_on_commit>
struct archive {
    using slot = resilite::slot::archive;
    static constexpr bool enabled = true;
    // The run-time settings it starts from (a function, not a constant: they hold a string).
    [[nodiscard]] static archive_settings defaults() {
        return {true, Flush::when, std::chrono::milliseconds{Flush::interval_ms}, {}, 4096};
    }
};

struct no_archive {
    using slot = resilite::slot::archive;
    static constexpr bool enabled = false;
    [[nodiscard]] static archive_settings defaults() { return {}; }
};

template <class P>
concept archive_policy = std::same_as<typename P::slot, slot::archive> && requires {
    { P::enabled } -> std::convertible_to<bool>;
    { P::defaults() } -> std::convertible_to<archive_settings>;
};

namespace detail {
template <class P>
constexpr bool checked_archive_policy() {
    static_assert(archive_policy<P>,
                  "resilite::Database<...>: the archive policy must be a resilite::archive<...> (or declare "
                  "`static constexpr bool enabled` and `static archive_settings defaults()`)");
    return true;
}
}  // namespace detail

}  // namespace resilite
