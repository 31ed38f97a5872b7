#pragma once
// The gate between operations and heals, across processes (healing<> only): every operation
// holds "<db>-resilite-gate" shared (flock) while it runs, and a heal holds it exclusively from
// before it drains the archive and moves the files until the healed database is in place. So no
// operation of any process runs on a file that is being quarantined: one that began earlier
// ends first (its commit is in the file the heal drains and moves), and one that waited sees the
// healed file and reopens it first.
//
// The order between the two file locks is gate, then heal lock (the sidecar's): a heal takes
// the gate before the heal lock, and nothing waits for the gate while holding the heal lock.

#include <resilite/core/error.hpp>
#include <resilite/detail/format.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace resilite::detail {

[[nodiscard]] inline std::filesystem::path gate_path(const std::filesystem::path& db) {
    return std::filesystem::path{db.string() + "-resilite-gate"};
}

// (flock needs no write access: a gate another user created, or on a read-only volume, is
// opened read-only.)
[[nodiscard]] inline int open_gate(const std::filesystem::path& db, std::string_view operation) {
    int fd = ::open(gate_path(db).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EACCES || errno == EROFS)) fd = ::open(gate_path(db).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        throw library_failure(
            error_class::io, operation,
            resilite::detail::format("could not open {}: {}", gate_path(db).string(), std::strerror(errno)),
            db.string());
    }
    return fd;
}

// flock without waiting; false while another descriptor holds a conflicting lock.
[[nodiscard]] inline bool try_flock(int fd, int how) noexcept {
    for (;;) {
        if (::flock(fd, how | LOCK_NB) == 0) return true;
        if (errno != EINTR) return false;
    }
}

// An operation's side: shared, counted (a statement inside a transaction enters again). Owned by
// the context; the caller holds the writer lock.
//
// Two ways in. A transaction, a check, a backup, maintenance, open and close enter at once. A
// single statement (the common case, reads above all) only marks itself `lazy`: SQLite's commit
// hook, which never runs for a read, enters the gate just before the statement's commit, and
// refuses the commit (SQLite rolls it back) while a heal holds the gate or after one replaced the
// file; the statement then fails as `busy` and is retried. So a read costs no lock at all.
class file_gate {
public:
    enum class refusal { none, healing, replaced, unusable };

    file_gate() = default;
    file_gate(const file_gate&) = delete;
    file_gate& operator=(const file_gate&) = delete;
    ~file_gate() {
        if (heals_ != nullptr) ::munmap(heals_, sizeof(std::uint64_t));
        if (fd_ >= 0) ::close(fd_);  // releases the flock
    }

    // The gate file's heal count (its first 8 bytes, mapped): every heal adds one when it takes
    // the gate and one when its file is in place, so a read learns from one memory load, with no
    // system call, that a heal may have replaced the file. Nothing when there is no mapping (a
    // gate this process cannot write, a file system without shared mappings): the caller then
    // looks at the file itself.
    [[nodiscard]] std::optional<std::uint64_t> heals(const std::filesystem::path& db) noexcept {
        if (heals_ == nullptr && !map_tried_) map_heals(db);
        if (heals_ == nullptr) return std::nullopt;
        return __atomic_load_n(heals_, __ATOMIC_ACQUIRE);
    }
    // The mapped count itself, for readers on other threads (read connections); null if none.
    // Valid while this gate lives.
    [[nodiscard]] const std::uint64_t* heals_mapping() const noexcept { return heals_; }

    // False while a heal holds the gate (the caller says "busy": the retry policy waits).
    [[nodiscard]] bool enter(const std::filesystem::path& db) {
        if (depth_ > 0) {
            ++depth_;
            return true;
        }
        if (fd_ < 0) fd_ = open_gate(db, "gate");
        if (!try_flock(fd_, LOCK_SH)) return false;
        depth_ = 1;
        return true;
    }

    void leave() noexcept {
        if (depth_ > 0 && --depth_ == 0) ::flock(fd_, LOCK_UN);
    }

    [[nodiscard]] int depth() const noexcept { return depth_; }

    // A single statement runs (see above); nests.
    void begin_lazy() noexcept {
        if (lazy_++ == 0) refusal_ = refusal::none;
    }
    void end_lazy() noexcept {
        if (--lazy_ == 0 && lazy_held_) {
            lazy_held_ = false;
            leave();
        }
    }

    // From SQLite's commit hook: 0 lets the commit go on, 1 turns it into a rollback (the reason
    // is kept for take_refusal()). `replaced()` says whether the file at the path changed.
    template <class Replaced>
    [[nodiscard]] int at_commit(const std::filesystem::path& db, Replaced&& replaced) noexcept {
        if (lazy_ == 0 || depth_ > 0) return 0;  // held already, or outside any operation
        try {
            if (!enter(db)) {
                refusal_ = refusal::healing;
                return 1;
            }
        } catch (...) {
            refusal_ = refusal::unusable;
            return 1;
        }
        lazy_held_ = true;
        if (replaced()) {
            refusal_ = refusal::replaced;
            return 1;
        }
        return 0;
    }

    [[nodiscard]] refusal take_refusal() noexcept { return std::exchange(refusal_, refusal::none); }

private:
    void map_heals(const std::filesystem::path& db) noexcept {
        map_tried_ = true;
        try {
            if (fd_ < 0) fd_ = open_gate(db, "gate");
        } catch (...) {
            return;
        }
        if ((::fcntl(fd_, F_GETFL) & O_ACCMODE) != O_RDWR) return;  // heals by us could not count
        struct stat st {};
        if (::fstat(fd_, &st) != 0) return;
        // A gate made by an older version is empty; growing it keeps any count already there.
        if (st.st_size < static_cast<off_t>(sizeof(std::uint64_t)) &&
            ::ftruncate(fd_, static_cast<off_t>(sizeof(std::uint64_t))) != 0)
            return;
        void* p = ::mmap(nullptr, sizeof(std::uint64_t), PROT_READ, MAP_SHARED, fd_, 0);
        if (p != MAP_FAILED) heals_ = static_cast<std::uint64_t*>(p);
    }

    int fd_ = -1;
    std::uint64_t* heals_ = nullptr;
    bool map_tried_ = false;
    int depth_ = 0;
    int lazy_ = 0;
    bool lazy_held_ = false;
    refusal refusal_ = refusal::none;
};

// A heal's side: exclusive, for the whole heal.
class exclusive_gate {
public:
    explicit exclusive_gate(const std::filesystem::path& db) : fd_(open_gate(db, "heal")) {}
    exclusive_gate(const exclusive_gate&) = delete;
    exclusive_gate& operator=(const exclusive_gate&) = delete;
    ~exclusive_gate() { ::close(fd_); }

    // Taken: the heal count goes up at once (a read of a process that maps it then tries the gate,
    // and is refused as unavailable until the heal ends).
    [[nodiscard]] bool try_take() noexcept {
        if (!try_flock(fd_, LOCK_EX)) return false;
        counted_ = count_heal();
        return true;
    }

    // Adds one to the heal count (the holder only: one writer at a time). False when the gate
    // cannot be written: reads of other processes then notice the heal only at their next
    // transaction or commit.
    bool count_heal() noexcept {
        std::uint64_t n = 0;
        if (::pread(fd_, &n, sizeof n, 0) != static_cast<ssize_t>(sizeof n)) n = 0;  // empty: none yet
        ++n;
        return ::pwrite(fd_, &n, sizeof n, 0) == static_cast<ssize_t>(sizeof n);
    }
    [[nodiscard]] bool counted() const noexcept { return counted_; }

private:
    int fd_;
    bool counted_ = false;
};

}  // namespace resilite::detail
