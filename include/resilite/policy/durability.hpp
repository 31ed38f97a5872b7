#pragma once
// Durability policy family: WAL journal, synchronous level, checkpoints, WAL size alert.

#include <resilite/core/slot.hpp>
#include <resilite/durability/synchronous.hpp>

#include <concepts>
#include <cstdint>

namespace resilite {

// WAL + synchronous FULL (or EXTRA). Checkpoints run every CheckpointSeconds (PASSIVE, never
// RESTART), a TRUNCATE checkpoint runs at close, and an event fires when the WAL grows past
// WalAlertMiB. BackgroundThread = false leaves periodic work to Database::maintain().
template <synchronous Sync = synchronous::full, std::uint32_t CheckpointSeconds = 60,
          std::uint64_t WalAlertMiB = 64, bool BackgroundThread = true>
struct wal_durability {
    static_assert(Sync != synchronous::normal,
                  "resilite::wal_durability: synchronous=NORMAL can lose the last commits on "
                  "power loss; if you accept that, use resilite::relaxed_durability<> instead");
    static_assert(CheckpointSeconds > 0, "resilite::wal_durability: CheckpointSeconds must be > 0");
    static_assert(WalAlertMiB > 0, "resilite::wal_durability: WalAlertMiB must be > 0");

    using slot = resilite::slot::durability;
    static constexpr synchronous sync = Sync;
    static constexpr bool allows_normal = false;
    static constexpr std::uint32_t checkpoint_seconds = CheckpointSeconds;
    static constexpr std::uint64_t wal_alert_bytes = WalAlertMiB << 20;
    static constexpr bool background_thread = BackgroundThread;
};

// The explicit opt-in to synchronous=NORMAL: faster commits, but the last transactions before a
// power failure may be lost (the database stays consistent).
template <std::uint32_t CheckpointSeconds = 60, std::uint64_t WalAlertMiB = 64, bool BackgroundThread = true>
struct relaxed_durability {
    using slot = resilite::slot::durability;
    static constexpr synchronous sync = synchronous::normal;
    static constexpr bool allows_normal = true;
    static constexpr std::uint32_t checkpoint_seconds = CheckpointSeconds;
    static constexpr std::uint64_t wal_alert_bytes = WalAlertMiB << 20;
    static constexpr bool background_thread = BackgroundThread;
};

template <class P>
concept durability_policy = std::same_as<typename P::slot, slot::durability> && requires {
    { P::sync } -> std::convertible_to<synchronous>;
    { P::allows_normal } -> std::convertible_to<bool>;
    { P::checkpoint_seconds } -> std::convertible_to<std::uint32_t>;
    { P::wal_alert_bytes } -> std::convertible_to<std::uint64_t>;
    { P::background_thread } -> std::convertible_to<bool>;
};


namespace detail {
template <class P>
constexpr bool checked_durability_policy() {
    static_assert(durability_policy<P>,
                  "resilite::Database<...>: the durability policy lacks a member of "
                  "resilite::durability_policy (sync, allows_normal, checkpoint_seconds, "
                  "wal_alert_bytes, background_thread); derive from resilite::wal_durability<>");
    return true;
}
}  // namespace detail

}  // namespace resilite
