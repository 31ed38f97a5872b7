#pragma once
// The archive's high-water mark: the highest record number whose transaction is known to have
// committed, kept beside the database ("<db>-resilite-hwm"), outside the archive. A heal
// compares the archive's end with it: an archive that lost its tail (cut, replaced by an older
// copy) is seen, instead of being taken as complete. It is raised after each commit, never
// lowered, and not synced on its own: after a power cut it may be behind (never ahead), so it
// proves a lower bound of what was committed, which is what a heal needs.

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>

namespace resilite::detail::archive {

[[nodiscard]] inline std::filesystem::path high_water_path(const std::filesystem::path& db) {
    return std::filesystem::path{db.string() + "-resilite-hwm"};
}

namespace hwm_detail {
inline std::int64_t read_fd(int fd) noexcept {
    char buf[32] = {};
    const auto n = ::pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return 0;
    buf[n] = '\0';
    const long long v = std::strtoll(buf, nullptr, 10);
    return v > 0 ? static_cast<std::int64_t>(v) : 0;
}
}  // namespace hwm_detail

// 0 when there is none (a database from before high-water marks, or never archived).
[[nodiscard]] inline std::int64_t read_high_water(const std::filesystem::path& file) noexcept {
    const int fd = ::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return 0;
    ::flock(fd, LOCK_SH);
    const auto v = hwm_detail::read_fd(fd);
    ::close(fd);
    return v;
}

// Raises the mark to `seq` unless it is already higher. Several processes commit: the flock
// makes read-compare-write one step, so a slower process never lowers it.
class high_water {
public:
    high_water() = default;
    explicit high_water(std::filesystem::path file) : file_(std::move(file)) {}
    high_water(const high_water&) = delete;
    high_water& operator=(const high_water&) = delete;
    ~high_water() {
        if (fd_ >= 0) ::close(fd_);
    }

    [[nodiscard]] const std::filesystem::path& file() const noexcept { return file_; }
    [[nodiscard]] std::int64_t read() const noexcept { return file_.empty() ? 0 : read_high_water(file_); }

    // Returns false when the mark could not be written (the caller reports it; the commit stands).
    bool raise(std::int64_t seq) noexcept {
        if (file_.empty() || seq <= known_) return true;
        if (fd_ < 0) fd_ = ::open(file_.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd_ < 0 || ::flock(fd_, LOCK_EX) != 0) return false;
        bool ok = true;
        const auto current = hwm_detail::read_fd(fd_);
        if (seq > current) {
            char buf[24];
            // Fixed width: a shorter number never leaves digits of a longer one behind.
            const int n = std::snprintf(buf, sizeof buf, "%020lld\n", static_cast<long long>(seq));
            ok = ::pwrite(fd_, buf, static_cast<std::size_t>(n), 0) == n;
        }
        ::flock(fd_, LOCK_UN);
        if (ok) known_ = std::max(seq, current);
        return ok;
    }

private:
    std::filesystem::path file_;
    int fd_ = -1;
    std::int64_t known_ = 0;
};

}  // namespace resilite::detail::archive
