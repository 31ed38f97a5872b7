#pragma once
// The files and records healing keeps beside a database: the heal lock, the list of processes
// that have the database open (clean closes), the scratch names, the quarantine root, the heal
// log, and what damage at open means.

#include <resilite/core/error.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/heal/healing_settings.hpp>
#include <resilite/monitor/check_health.hpp>
#include <resilite/sqlite/detail/marker.hpp>

#include <fmt/format.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace resilite::detail {

// One healer per database across processes (sqlite/detail/marker.hpp).
class heal_lock {
public:
    explicit heal_lock(const std::filesystem::path& db) : lock_(db) {
        if (!lock_.held()) throw library_failure(error_class::io, "heal", "could not take the heal lock", db.string());
    }

private:
    sidecar_lock lock_;
};

// Clean closes: with healing on, every process that has the database open is listed in the
// sidecar, and leaves at close. A listed process that no longer exists closed it uncleanly (a
// crash, a kill, a power cut): the next open runs a quick_check, which a clean restart skips.
[[nodiscard]] inline bool process_gone(long pid) noexcept {
    return pid <= 0 || (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH);
}

[[nodiscard]] inline bool unclean_close_seen(const std::filesystem::path& db) {
    const auto m = read_marker(db);
    return std::any_of(m.opened.begin(), m.opened.end(), process_gone);
}

// "<prefix><pid>-<16 hex digits of the database name>.db": one per process and database (two
// databases of one directory may heal at once), of a fixed length whatever the name.
[[nodiscard]] inline std::string scratch_name(std::string_view prefix, const std::filesystem::path& db) {
    return resilite::detail::format("{}{}-{:016x}.db", prefix, ::getpid(),
                                    std::hash<std::string>{}(db.filename().string()));
}

[[nodiscard]] inline std::filesystem::path quarantine_root(const std::filesystem::path& db,
                                                          const healing_settings& s) {
    if (!s.quarantine_directory.empty()) return s.quarantine_directory;
    return std::filesystem::absolute(db).parent_path() / "quarantine";
}

// The quarantined copies of `db` under `root`, oldest first: "<name>-YYYYMMDDTHHMMSSZ[-n]",
// never another database's ("app.db-old-...").
[[nodiscard]] inline std::vector<std::filesystem::path> list_quarantines(const std::filesystem::path& db,
                                                                        const std::filesystem::path& root) {
    std::vector<std::filesystem::path> out;
    const auto prefix = db.filename().string() + "-";
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(root, ec)) {
        const auto name = e.path().filename().string();
        const bool ours = name.size() >= prefix.size() + 16 && name.starts_with(prefix) &&
                          name[prefix.size() + 8] == 'T' && name[prefix.size() + 15] == 'Z' &&
                          std::all_of(name.begin() + static_cast<std::ptrdiff_t>(prefix.size()),
                                      name.begin() + static_cast<std::ptrdiff_t>(prefix.size() + 8),
                                      [](char c) { return c >= '0' && c <= '9'; });
        if (ours) out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

[[nodiscard]] inline std::filesystem::path heal_log_path(const std::filesystem::path& db) {
    return std::filesystem::path{db.string() + ".heal-log.jsonl"};
}

// The database file is missing, or its header or WAL is damaged, or a heal was begun and not
// finished, or a Database saw damage and closed before healing it: what to heal, in words;
// nothing when the file looks sound.
[[nodiscard]] inline std::optional<std::string> damage_at_open(const std::filesystem::path& db) {
    const auto m = read_marker(db);
    const auto h = check_health(db, check_level::header);
    if (h.result == health_report::finding::missing) {
        // (Interrupted, or no source could heal it: the sidecar cannot tell which.)
        if (!m.heal_quarantine.empty())
            return resilite::detail::format(
                "an earlier heal did not finish: it was interrupted, or no source could heal the "
                "database (its files are in {})",
                m.heal_quarantine);
        // An operator asked for it back (`resilite heal`: a deleted file, a new machine).
        if (!m.restore_requested.empty())
            return resilite::detail::format("the database file is gone: {}", m.restore_requested);
        return std::nullopt;  // never created, or removed on purpose: open says which
    }
    if (!h.ok() && h.result != health_report::finding::io_error)
        return resilite::detail::format("{}: {}", to_string(h.result), h.detail);
    if (!m.damage_seen.empty())
        return resilite::detail::format("damage seen before the last close: {}", m.damage_seen);
    return std::nullopt;
}

// Adds this process to the sidecar's list (and drops the processes that are gone). Serialised with
// heals and other openers by the heal lock.
inline void register_open(const std::filesystem::path& db) {
    heal_lock lock{db};
    auto m = read_marker(db);
    if (!m.exists) return;
    std::erase_if(m.opened, process_gone);
    m.opened.push_back(static_cast<long>(::getpid()));
    if (!write_marker(db, m))
        throw library_failure(error_class::io, "open", "could not write the sidecar " + marker_path(db).string(),
                              db.string());
}

// Takes this process off the list once (another Database of this process may still be open),
// and records damage this Database saw and did not heal, for the next open to heal.
inline void register_close(const std::filesystem::path& db, const std::string& damage = {}) noexcept {
    try {
        heal_lock lock{db};
        auto m = read_marker(db);
        const auto mine = std::find(m.opened.begin(), m.opened.end(), static_cast<long>(::getpid()));
        if (mine == m.opened.end() && damage.empty()) return;
        if (mine != m.opened.end()) m.opened.erase(mine);
        if (!damage.empty()) m.damage_seen = damage;
        static_cast<void>(write_marker(db, m));
    } catch (...) {  // the next open runs one quick_check more
    }
}


}  // namespace resilite::detail
