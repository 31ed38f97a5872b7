#pragma once
// Healing policy family: what happens to a database found damaged (at open, or by an operation
// while running). With resilite::healing<> it is quarantined (never deleted), rebuilt from the
// newest backup that passes its check plus the archive records after it (then older backups,
// then the archive alone), verified, and swapped in. resilite::no_healing keeps the refusal.
//
//   resilite::healing<>                                        // backups + archive, 3 attempts
//   resilite::healing<resilite::accept_loss_since_backup>      // also a backup alone, loss named

#include <resilite/core/slot.hpp>
#include <resilite/heal/healing_settings.hpp>

#include <chrono>
#include <concepts>

namespace resilite {

// Heal only when no committed transaction can be lost: from a backup plus the archive, or the
// archive alone.
struct refuse_loss {
    static constexpr bool accept_loss = false;
};
// Also heal from a backup alone when there is no archive; the commits after it may be lost, and
// the report and the heal event say which window.
struct accept_loss_since_backup {
    static constexpr bool accept_loss = true;
};

template <class Loss = refuse_loss, int MaxAttempts = 3, int TimeLimitSeconds = 300, int RetentionDays = 30>
struct healing {
    static_assert(MaxAttempts >= 1, "resilite::healing: MaxAttempts must be at least 1");
    static_assert(TimeLimitSeconds >= 1, "resilite::healing: TimeLimitSeconds must be at least 1");
    static_assert(RetentionDays >= 0, "resilite::healing: RetentionDays must not be negative");
    using slot = resilite::slot::healing;
    static constexpr bool enabled = true;
    [[nodiscard]] static healing_settings defaults() {
        return {true, MaxAttempts, std::chrono::seconds{TimeLimitSeconds}, {}, std::chrono::hours{24 * RetentionDays},
                Loss::accept_loss};
    }
};

struct no_healing {
    using slot = resilite::slot::healing;
    static constexpr bool enabled = false;
    [[nodiscard]] static healing_settings defaults() { return {}; }
};

template <class P>
concept healing_policy = std::same_as<typename P::slot, slot::healing> && requires {
    { P::enabled } -> std::convertible_to<bool>;
    { P::defaults() } -> std::convertible_to<healing_settings>;
};

namespace detail {
template <class P>
constexpr bool checked_healing_policy() {
    static_assert(healing_policy<P>,
                  "resilite::Database<...>: the healing policy must be resilite::healing<...> or "
                  "resilite::no_healing");
    return true;
}
}  // namespace detail

}  // namespace resilite
