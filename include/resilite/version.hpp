#pragma once
// resilite::version: the library's version, for logs and compatibility checks.

#define RESILITE_VERSION_MAJOR 0
#define RESILITE_VERSION_MINOR 1
#define RESILITE_VERSION_PATCH 0

namespace resilite {

inline constexpr struct {
    int major = RESILITE_VERSION_MAJOR;
    int minor = RESILITE_VERSION_MINOR;
    int patch = RESILITE_VERSION_PATCH;
} version{};

}  // namespace resilite
