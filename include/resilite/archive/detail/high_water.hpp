#pragma once
// The archive's high-water mark: the highest record number whose transaction is known to have
// committed, kept beside the database ("<db>-resilite-hwm"), outside the archive. A heal
// compares the archive's end with it: an archive that lost its tail (cut, replaced by an older
// copy) is seen, instead of being taken as complete. It is raised after each commit, never
// lowered (but see below), and not synced on its own: after a power cut it may be behind (never ahead), so it
// proves a lower bound of what was committed, which is what a heal needs.
//
// The mark names the database it belongs to ("<number> <identity>"): a mark left by a database
// deleted from this path is not evidence about the new one there (it would make every heal of
// the new database refuse), and the new one's first commit takes the file over, lowering the
// number: the only time it goes down. Only the database the path's sidecar names takes a mark
// over, so a process still writing to a deleted or replaced file never overwrites the evidence
// of the database now at the path. A mark without an identity (written before marks carried
// one) is taken as this database's.

#include <resilite/sqlite/detail/marker.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

namespace resilite::detail::archive {

[[nodiscard]] inline std::filesystem::path high_water_path(const std::filesystem::path& db) {
    return std::filesystem::path{db.string() + "-resilite-hwm"};
}

// What a mark file holds.
struct high_water_mark {
    std::int64_t seq = 0;   // 0: none
    std::string identity;   // empty: a mark from before marks named their database
    std::size_t bytes = 0;  // the file's length as read (at most 127)
    // Whether the mark names a database other than `id` (an unknown `id`, or a mark without an
    // identity, names no other: refusing a heal is safer than missing a loss).
    [[nodiscard]] bool names_another(std::string_view id) const noexcept {
        return !identity.empty() && !id.empty() && identity != id;
    }
    // The mark as evidence for the database `id`: 0 when it names another database.
    [[nodiscard]] std::int64_t for_database(std::string_view id) const noexcept {
        return names_another(id) ? 0 : seq;
    }
};

namespace hwm_detail {
inline high_water_mark read_fd(int fd) noexcept {
    char buf[128] = {};
    const auto n = ::pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return {};
    buf[n] = '\0';
    char* end = nullptr;
    const long long v = std::strtoll(buf, &end, 10);
    high_water_mark m;
    m.bytes = static_cast<std::size_t>(n);
    m.seq = v > 0 ? static_cast<std::int64_t>(v) : 0;
    if (end != nullptr && *end == ' ') {
        const std::string_view rest{end + 1};
        m.identity = std::string{rest.substr(0, rest.find('\n'))};
    }
    return m;
}
}  // namespace hwm_detail

// No mark (a database from before high-water marks, or never archived) reads as number 0.
[[nodiscard]] inline high_water_mark read_high_water(const std::filesystem::path& file) noexcept {
    const int fd = ::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return {};
    ::flock(fd, LOCK_SH);
    auto m = hwm_detail::read_fd(fd);
    ::close(fd);
    return m;
}

// Raises the mark to `seq` unless it is already higher. Several processes commit: the flock
// makes read-compare-write one step, so a slower process never lowers it.
class high_water {
public:
    high_water() = default;
    // The mark of the database file `db` (empty: none), whose identity is `identity`.
    high_water(std::filesystem::path db, std::string identity)
        : file_(db.empty() ? std::filesystem::path{} : high_water_path(db)),
          database_(std::move(db)),
          identity_(std::move(identity)) {}
    high_water(const high_water&) = delete;
    high_water& operator=(const high_water&) = delete;
    ~high_water() {
        if (fd_ >= 0) ::close(fd_);
    }

    [[nodiscard]] const std::filesystem::path& file() const noexcept { return file_; }
    [[nodiscard]] const std::filesystem::path& database() const noexcept { return database_; }
    // This database's mark (0 when the file names another database).
    [[nodiscard]] std::int64_t read() const noexcept {
        return file_.empty() ? 0 : read_high_water(file_).for_database(identity_);
    }

    // Returns false when the mark could not be written (the caller reports it; the commit stands).
    // `durable`: synced too (when the archive may lack the commit, the mark is its only evidence).
    bool raise(std::int64_t seq, bool durable = false) noexcept {
        if (file_.empty() || seq <= known_) return true;
        if (fd_ < 0) fd_ = ::open(file_.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd_ < 0 || ::flock(fd_, LOCK_EX) != 0) return false;
        bool ok = true;
        const auto found = hwm_detail::read_fd(fd_);
        if (found.names_another(identity_) && read_marker(database_).identity != identity_) {
            // Another database's mark, and the path is not this database's any more (deleted or
            // replaced under this process): its commits are no evidence there.
            ::flock(fd_, LOCK_UN);
            return true;
        }
        const auto current = found.for_database(identity_);  // another database's: taken over
        if (seq > current) {
            char buf[96];
            const int n = std::snprintf(buf, sizeof buf, "%020lld %s\n", static_cast<long long>(seq), identity_.c_str());
            ok = n > 0 && n < static_cast<int>(sizeof buf) && ::pwrite(fd_, buf, static_cast<std::size_t>(n), 0) == n;
            // A longer line from before leaves nothing behind (the line's length rarely changes:
            // no truncate on every commit).
            if (ok && found.bytes > static_cast<std::size_t>(n)) ok = ::ftruncate(fd_, n) == 0;
        }
        if (ok && durable) ok = ::fdatasync(fd_) == 0;
        ::flock(fd_, LOCK_UN);
        if (ok) known_ = std::max(seq, current);
        return ok;
    }

private:
    std::filesystem::path file_;
    std::filesystem::path database_;  // whose sidecar says which database the path is
    std::string identity_;
    int fd_ = -1;
    std::int64_t known_ = 0;
};

}  // namespace resilite::detail::archive
