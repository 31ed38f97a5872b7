#pragma once
// resilite::version: the library's version, for logs and compatibility checks.

#define RESILITE_VERSION_MAJOR 0
#define RESILITE_VERSION_MINOR 1
#define RESILITE_VERSION_PATCH 0

namespace resilite {

struct version_info {
    int major;
    int minor;
    int patch;
};

inline constexpr version_info version{RESILITE_VERSION_MAJOR, RESILITE_VERSION_MINOR, RESILITE_VERSION_PATCH};

}  // namespace resilite
