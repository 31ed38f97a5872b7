#pragma once
// Copies to and from the remote of offsite_settings, one rclone run each (core/detail/run_command).
// Each database has its own folder, <remote>/<database file name>/, holding IDENTITY (whose
// copies these are), backups/ and archive/. A folder that names another database is never
// written to. Fetching never overwrites a local file: what is on the machine is at least as new
// as its copy off it.

#include <resilite/backup/offsite_settings.hpp>
#include <resilite/core/detail/run_command.hpp>
#include <resilite/detail/format.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace resilite::detail {

// "<remote>/<database file name>[/<kind>]", with no doubled slash.
[[nodiscard]] inline std::string offsite_folder(const offsite_settings& s, const std::filesystem::path& db,
                                                std::string_view kind = {}) {
    const bool slash = !s.remote.empty() && (s.remote.back() == '/' || s.remote.back() == ':');
    return resilite::detail::format("{}{}{}{}{}", s.remote, slash ? "" : "/", db.filename().string(),
                                    kind.empty() ? "" : "/", kind);
}

// Bounded retries: the timeout, not rclone's patience, says how long an unreachable remote costs.
inline void add_rclone_limits(std::vector<std::string>& args) {
    for (const char* a : {"--retries=1", "--low-level-retries=2", "--contimeout=10s", "-q"})
        args.emplace_back(a);
}

// What a copy not yet moved into place is called on the remote: "<name>.partial-<pid>".
inline constexpr std::string_view offsite_partial_suffix = ".partial-";

// rclone's messages without their "2026/12/05 13:03:43 " prefixes, so that the same failure reads
// the same every time (and is reported once).
[[nodiscard]] inline std::string without_timestamps(const std::string& text) {
    std::string out;
    std::size_t from = 0;
    while (from < text.size()) {
        auto end = text.find('\n', from);
        if (end == std::string::npos) end = text.size();
        std::string_view line{text.data() + from, end - from};
        const auto stamped = line.size() > 20 && line[4] == '/' && line[7] == '/' && line[10] == ' ' &&
                             line[13] == ':' && line[16] == ':' && line[19] == ' ' &&
                             std::isdigit(static_cast<unsigned char>(line[0]));
        if (stamped) line.remove_prefix(20);
        out.append(line);
        out += '\n';
        from = end + 1;
    }
    return out;
}

[[nodiscard]] inline command_result run_rclone(std::vector<std::string> args, const offsite_settings& s) {
    add_rclone_limits(args);
    auto r = run_command(args, s.timeout);
    r.stderr_tail = without_timestamps(r.stderr_tail);
    return r;
}

// Copies one local file to <folder>/<kind>/<name> (its own name unless given); empty when it
// worked, else why not.
// `keep_replaced`: the remote's copy is not overwritten but moved to <folder>/replaced/<stamp>/
// (a local file that was cut or rewritten, e.g. by an archive repair: the remote may hold bytes
// that are intact there and damaged here).
[[nodiscard]] inline std::string offsite_push(const offsite_settings& s, const std::filesystem::path& db,
                                              std::string_view kind, const std::filesystem::path& file,
                                              std::string name = {}, std::string_view keep_replaced = {}) {
    if (name.empty()) name = file.filename().string();
    // (Never a file that grows meanwhile: rclone would find the sizes differ and delete the
    // remote's copy. An archive segment is handed over as a snapshot of its complete records,
    // offsite_flow's snapshot_segment.)
    // Copied under a name of its own first, then moved over the remote's copy: rclone (1.60, the
    // local and WebDAV backends) writes a copy in place, so a copy cut short (the machine dies,
    // the timeout) would leave the remote's earlier copy of a segment truncated, losing records
    // that were off the machine already.
    const auto folder = offsite_folder(s, db, kind);
    const auto partial = resilite::detail::format("{}/{}{}{}", folder, name, offsite_partial_suffix, ::getpid());
    auto r = run_rclone({"rclone", "copyto", file.string(), partial}, s);
    if (r.ok()) {
        std::vector<std::string> args{"rclone", "moveto", partial, resilite::detail::format("{}/{}", folder, name)};
        if (!keep_replaced.empty()) {
            args.emplace_back("--backup-dir");
            args.push_back(resilite::detail::format("{}/replaced/{}", offsite_folder(s, db), keep_replaced));
        }
        r = run_rclone(std::move(args), s);
    }
    return r.ok() ? std::string{}
                  : r.failure(resilite::detail::format("copying {} off the machine", name), s.timeout);
}

// rclone's move deletes the copy in place first, then renames: a round killed in between
// leaves only "<name>.partial-<pid>", whole (the move starts only once its copy succeeded). In a
// fetched directory such a copy is taken under its name when no file has that name (the largest,
// if several); every other one is removed. (Whatever reads it checks it: a segment's records, a
// backup's manifest entry.)
inline void take_partial_copies(const std::filesystem::path& dir) {
    std::error_code ec;
    std::map<std::string, std::pair<std::filesystem::path, std::uintmax_t>> best;
    std::vector<std::filesystem::path> drop;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
        const auto name = e.path().filename().string();
        const auto at = name.find(offsite_partial_suffix);
        if (at == std::string::npos) continue;
        const auto base = name.substr(0, at);
        const auto size = std::filesystem::file_size(e.path(), ec);
        if (std::filesystem::exists(dir / base, ec)) {
            drop.push_back(e.path());
        } else if (auto it = best.find(base); it == best.end() || it->second.second < size) {
            if (it != best.end()) drop.push_back(it->second.first);
            best[base] = {e.path(), size};
        } else {
            drop.push_back(e.path());
        }
    }
    for (const auto& p : drop)
        std::filesystem::remove(p, ec);
    for (const auto& [base, found] : best)
        std::filesystem::rename(found.first, dir / base, ec);
}

// Copies what <folder>/<kind>/ holds and `dir` lacks into `dir`; empty when it worked.
// rclone writes a local file in place, so a fetch killed midway would leave a cut file under a
// copy's name, which every later fetch would keep (what is here is never overwritten) and every
// heal would reject: the backup's size differs from its manifest's. So rclone copies into a
// staging directory inside `dir` (".fetch-<pid>-<n>": no backup or segment name, so nothing
// that lists `dir` sees it; files `dir` holds alike are skipped), and each whole file is then
// renamed into `dir` if `dir` lacks its name. A staging directory whose process is gone and that
// is older than two timeouts (so not another PID namespace's fetch in progress) is removed.
[[nodiscard]] inline std::string offsite_fetch(const offsite_settings& s, const std::filesystem::path& db,
                                               std::string_view kind, const std::filesystem::path& dir) {
    constexpr std::string_view prefix = ".fetch-";
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    const auto now = std::filesystem::file_time_type::clock::now();
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
        const auto name = e.path().filename().string();
        long long pid = 0;
        if (!name.starts_with(prefix) ||
            std::from_chars(name.data() + prefix.size(), name.data() + name.size(), pid).ec != std::errc{} || pid <= 0)
            continue;
        std::error_code age;
        const auto written = std::filesystem::last_write_time(e.path(), age);
        if (!age && now - written > 2 * s.timeout && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
            std::error_code ignored;
            std::filesystem::remove_all(e.path(), ignored);
        }
    }
    static std::atomic<unsigned> fetches{0};
    const auto stage = dir / resilite::detail::format("{}{}-{}", prefix, ::getpid(), fetches.fetch_add(1));
    std::filesystem::remove_all(stage, ec);
    if (!std::filesystem::create_directories(stage, ec) && ec)
        return resilite::detail::format("fetching the {} from off the machine: cannot create {}: {}", kind,
                                        stage.string(), ec.message());
    const auto r = run_rclone(
        {"rclone", "copy", offsite_folder(s, db, kind), stage.string(), "--compare-dest", dir.string()}, s);
    std::string failure;
    if (r.ok()) {
        take_partial_copies(stage);
        for (const auto& e : std::filesystem::directory_iterator(stage, ec)) {
            const auto to = dir / e.path().filename();
            if (!e.is_regular_file(ec) || std::filesystem::exists(to, ec)) continue;
            if (::renameat2(AT_FDCWD, e.path().c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) != 0 &&
                errno != EEXIST && failure.empty())
                failure = resilite::detail::format("fetching the {} from off the machine: cannot move {} into {}: {}",
                                                   kind, e.path().filename().string(), dir.string(),
                                                   std::strerror(errno));
        }
    }
    std::filesystem::remove_all(stage, ec);
    if (!r.ok()) return r.failure(resilite::detail::format("fetching the {} from off the machine", kind), s.timeout);
    return failure;
}

// Whose copies the database's folder holds. nullopt with `error` empty: none yet (a new folder).
struct remote_identity {
    std::optional<std::string> identity;
    std::string error;
};

[[nodiscard]] inline remote_identity offsite_identity(const offsite_settings& s, const std::filesystem::path& db) {
    const auto local = std::filesystem::temp_directory_path() /
                       resilite::detail::format("resilite-offsite-id-{}-{:016x}", ::getpid(),
                                                std::hash<std::string>{}(db.string()));
    const auto r = run_rclone({"rclone", "copyto", offsite_folder(s, db) + "/IDENTITY", local.string()}, s);
    remote_identity out;
    if (r.ok()) {
        std::ifstream in(local);
        std::string line;
        if (std::getline(in, line) && line.starts_with("resilite database ")) out.identity = line.substr(18);
        else out.error = "the remote folder's IDENTITY is not resilite's";
    } else if (r.exit_code != 3 && r.exit_code != 4) {  // (3, 4: rclone's "directory / file not found")
        out.error = r.failure("reading the remote folder's IDENTITY", s.timeout);
    }
    std::error_code ec;
    std::filesystem::remove(local, ec);
    return out;
}

// Claims the folder for `identity`; empty when it worked.
[[nodiscard]] inline std::string offsite_claim(const offsite_settings& s, const std::filesystem::path& db,
                                               const std::string& identity) {
    const auto local = std::filesystem::temp_directory_path() /
                       resilite::detail::format("resilite-offsite-id-{}-{:016x}", ::getpid(),
                                                std::hash<std::string>{}(db.string()));
    {
        std::ofstream out(local, std::ios::trunc);
        out << "resilite database " << identity << "\n";
    }
    const auto r = run_rclone({"rclone", "copyto", local.string(), offsite_folder(s, db) + "/IDENTITY"}, s);
    std::error_code ec;
    std::filesystem::remove(local, ec);
    return r.ok() ? std::string{} : r.failure("writing the remote folder's IDENTITY", s.timeout);
}

}  // namespace resilite::detail
