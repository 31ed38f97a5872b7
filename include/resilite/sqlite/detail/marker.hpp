#pragma once
// The sidecar beside a database that resilite initialised ("app.db-resilite"). It tells a file
// that was emptied (truncated to 0 bytes: data lost) from a brand new one (nothing lost), holds
// the database's identity (so that a new, emptied or different database at the path is seen as
// damage), the synchronous level last used (what a torn WAL tail can mean after a crash), and
// the healing state: consecutive failed heals (the circuit breaker, kept across restarts), a heal
// begun and not finished (with where it quarantined the files), the heal epoch, which every
// finished heal increases so that other processes notice the swap, and damage a Database saw
// but did not heal before it closed (the next open heals it).

#include <resilite/sqlite/detail/durable_file.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <fstream>
#include <string>
#include <vector>

namespace resilite::detail {

// One writer of the sidecar (and one healer) per database across processes: flock on
// "<db>-resilite-lock", a file of its own (a POSIX lock on the database file would be dropped by
// any close of it in this process). flocks on separate descriptors exclude each other within a
// process too.
class sidecar_lock {
public:
    explicit sidecar_lock(const std::filesystem::path& db)
        : fd_(::open((db.string() + "-resilite-lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
        if (fd_ >= 0 && ::flock(fd_, LOCK_EX) != 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }
    sidecar_lock(const sidecar_lock&) = delete;
    sidecar_lock& operator=(const sidecar_lock&) = delete;
    ~sidecar_lock() {
        if (fd_ >= 0) ::close(fd_);  // releases the flock
    }
    [[nodiscard]] bool held() const noexcept { return fd_ >= 0; }

private:
    int fd_;
};

[[nodiscard]] inline std::filesystem::path marker_path(const std::filesystem::path& db) {
    return std::filesystem::path{db.string() + "-resilite"};
}

struct marker {
    bool exists = false;
    std::string identity;     // empty in a marker written before identities existed
    std::string synchronous;  // "FULL", "NORMAL", ...; empty when unknown
    int heal_attempts = 0;          // heals begun since the last successful one
    std::string heal_quarantine;    // a heal in progress: where it put the damaged files
    std::uint64_t heal_epoch = 0;   // finished heals
    std::vector<long> opened;       // pids of processes with the database open (healing<> only)
    std::string damage_seen;        // damage seen and not healed when a Database closed (one line)
    // An operator asked for a missing database back (`resilite heal`: a deleted file, a new
    // machine): the next open heals it instead of refusing to guess. Cleared by a heal.
    std::string restore_requested;
    // resilite::restore() put a copy here whose archive number is this: the archive's records
    // after it were rolled back on purpose (the next open writes a snapshot after them, instead
    // of refusing a database behind its archive). -1: none.
    std::int64_t rolled_back_to = -1;
};

[[nodiscard]] inline marker read_marker(const std::filesystem::path& db) noexcept {
    marker m;
    try {
        std::ifstream in(marker_path(db));
        m.exists = static_cast<bool>(in);
        for (std::string line; std::getline(in, line);) try {  // a damaged line drops only itself
            if (line.starts_with("identity ")) m.identity = line.substr(9);
            if (line.starts_with("synchronous ")) m.synchronous = line.substr(12);
            if (line.starts_with("heal_attempts ")) m.heal_attempts = std::stoi(line.substr(14));
            if (line.starts_with("heal_quarantine ")) m.heal_quarantine = line.substr(16);
            if (line.starts_with("restore_requested ")) m.restore_requested = line.substr(18);
            if (line.starts_with("heal_epoch ")) m.heal_epoch = std::stoull(line.substr(11));
            if (line.starts_with("opened ")) m.opened.push_back(std::stol(line.substr(7)));
            if (line.starts_with("damage_seen ")) m.damage_seen = line.substr(12);
            if (line.starts_with("rolled_back_to ")) m.rolled_back_to = std::stoll(line.substr(15));
        } catch (const std::exception&) {
        }
    } catch (...) {
    }
    return m;
}

// Replaces the marker atomically (temporary file, rename). Returns false when it could not be
// written: the caller decides whether that matters.
[[nodiscard]] inline bool write_marker(const std::filesystem::path& db, const marker& m) noexcept {
    try {
        const auto target = marker_path(db);
        // A short temporary name: the marker's own name may be near the file-name limit.
        // (One per process and database: two databases of one directory may write at once.)
        const auto tmp = target.parent_path() / (".resilite-marker-" + std::to_string(::getpid()) + "-" +
                                                 std::to_string(std::hash<std::string>{}(db.filename().string())));
        {
            std::ofstream out(tmp, std::ios::trunc);
            out << "resilite marker: this database was initialised by resilite; if it is ever found empty, "
                   "its data was lost (restore it, do not recreate it)\n";
            if (!m.identity.empty()) out << "identity " << m.identity << '\n';
            if (!m.synchronous.empty()) out << "synchronous " << m.synchronous << '\n';
            if (m.heal_attempts > 0) out << "heal_attempts " << m.heal_attempts << '\n';
            if (!m.heal_quarantine.empty()) out << "heal_quarantine " << m.heal_quarantine << '\n';
            if (m.heal_epoch > 0) out << "heal_epoch " << m.heal_epoch << '\n';
            for (const long pid : m.opened)
                out << "opened " << pid << '\n';
            if (m.rolled_back_to >= 0) out << "rolled_back_to " << m.rolled_back_to << '\n';
            for (const auto& [key, text] : {std::pair{"damage_seen", &m.damage_seen},
                                            std::pair{"restore_requested", &m.restore_requested}}) {
                if (text->empty()) continue;
                auto one_line = *text;
                std::replace(one_line.begin(), one_line.end(), '\n', ' ');
                out << key << ' ' << one_line << '\n';
            }
            out.flush();
            if (!out || !fsync_path(tmp, false)) {
                std::error_code ec;
                std::filesystem::remove(tmp, ec);
                return false;
            }
        }
        std::error_code ec;
        std::filesystem::rename(tmp, target, ec);
        if (!ec) return fsync_path(target.has_parent_path() ? target.parent_path() : ".", true);
        std::filesystem::remove(tmp, ec);
        return false;
    } catch (...) {
        return false;
    }
}

// Writes a marker without identity if there is none (tests that build databases by hand).
inline void write_marker(const std::filesystem::path& db) noexcept {
    std::error_code ec;
    if (std::filesystem::exists(marker_path(db), ec)) return;
    static_cast<void>(write_marker(db, marker{}));
}

}  // namespace resilite::detail
