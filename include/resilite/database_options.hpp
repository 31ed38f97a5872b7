#pragma once
// resilite::database_options: the run-time objects a Database is built with: the observer and
// clock instances (copies of a manual_clock share its timeline) and, optionally, settings that
// replace the ones seeded from the policies.

#include <resilite/settings.hpp>

#include <optional>

namespace resilite {

template <class Observer, class Clock>
struct database_options {
    Observer observer{};
    Clock clock{};
    std::optional<resilite::settings> settings{};
};

}  // namespace resilite
