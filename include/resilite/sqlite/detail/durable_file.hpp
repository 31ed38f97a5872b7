#pragma once
// fsync for files and directories: a rename is only durable once the directory is synced.

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace resilite::detail {

// Removes `<dir>/<prefix><pid>...` files left by processes that no longer exist (killed
// mid-way). Never a live process's: another process (or Database) may be writing its own.
inline void remove_stale_temp_files(const std::filesystem::path& dir, const std::string& prefix) noexcept {
    std::error_code ec;
    for (std::filesystem::directory_iterator it{dir, ec}, end; !ec && it != end; it.increment(ec)) {
        const auto name = it->path().filename().string();
        if (!name.starts_with(prefix)) continue;
        const auto pid = std::atoll(name.c_str() + prefix.size());
        if (pid <= 0 || (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)) {
            std::error_code ignored;
            std::filesystem::remove(it->path(), ignored);
        }
    }
}


[[nodiscard]] inline bool fsync_path(const std::filesystem::path& p, bool directory) noexcept {
    const int fd = ::open(p.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
    if (fd < 0) return false;
    const bool ok = ::fsync(fd) == 0;
    ::close(fd);
    return ok;
}

}  // namespace resilite::detail
