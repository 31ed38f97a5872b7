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

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
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
        throw library_failure(error_class::io, operation,
                              fmt::format("could not open {}: {}", gate_path(db).string(), std::strerror(errno)),
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
        if (fd_ >= 0) ::close(fd_);  // releases the flock
    }

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
    int fd_ = -1;
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

    [[nodiscard]] bool try_take() noexcept { return try_flock(fd_, LOCK_EX); }

private:
    int fd_;
};

}  // namespace resilite::detail
