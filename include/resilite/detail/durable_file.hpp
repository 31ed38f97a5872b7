#pragma once
// fsync for files and directories: a rename is only durable once the directory is synced.

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

namespace resilite::detail {

[[nodiscard]] inline bool fsync_path(const std::filesystem::path& p, bool directory) noexcept {
    const int fd = ::open(p.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
    if (fd < 0) return false;
    const bool ok = ::fsync(fd) == 0;
    ::close(fd);
    return ok;
}

}  // namespace resilite::detail
