#pragma once
// The error class of a failed system call on a file of resilite's own (a queue, a backup, a
// sidecar): a full disk says `full` (and compares equal to std::errc::no_space_on_device), a
// read-only volume `read_only`, a refused access `permission`; the rest is `io`.

#include <resilite/core/error_class.hpp>

#include <cerrno>

namespace resilite::detail {

[[nodiscard]] constexpr error_class errno_class(int err) noexcept {
    switch (err) {
        case ENOSPC:
        case EDQUOT: return error_class::full;
        case EROFS: return error_class::read_only;
        case EACCES:
        case EPERM: return error_class::permission;
        default: return error_class::io;
    }
}

}  // namespace resilite::detail
