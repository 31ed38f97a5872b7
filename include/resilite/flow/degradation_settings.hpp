#pragma once
// resilite::degradation_settings: the run-time form of the degradation policy (docs/degradation.md).

#include <resilite/detail/format.hpp>

#include <fmt/format.h>

#include <chrono>
#include <optional>
#include <string>

namespace resilite {

struct degradation_settings {
    // While the database is unavailable for a reason a heal does not end (disk full, a read-only
    // volume, I/O errors past the retry policy), a probe tries a write after this long, then
    // after twice as long each time it fails, up to probe_max_interval.
    std::chrono::milliseconds probe_interval{1000};
    std::chrono::milliseconds probe_max_interval{60'000};

    friend bool operator==(const degradation_settings&, const degradation_settings&) = default;

    [[nodiscard]] std::optional<std::string> problem() const {
        if (probe_interval <= std::chrono::milliseconds{0})
            return resilite::detail::format("degradation probe_interval must be positive (got {} ms)",
                                            probe_interval.count());
        if (probe_max_interval < probe_interval)
            return resilite::detail::format(
                "degradation probe_max_interval ({} ms) must not be below probe_interval ({} ms)",
                probe_max_interval.count(), probe_interval.count());
        return std::nullopt;
    }
};

}  // namespace resilite
