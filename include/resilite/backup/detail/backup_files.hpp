#pragma once
// Backup files on disk: names with their UTC time, the manifest, retention, the sink command.

#include <resilite/core/detail/crc32.hpp>
#include <resilite/core/detail/errno_class.hpp>
#include <resilite/core/detail/run_command.hpp>
#include <resilite/backup/backup_result.hpp>
#include <resilite/backup/backup_settings.hpp>
#include <resilite/core/error.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/sqlite/detail/durable_file.hpp>
#include <resilite/sqlite/detail/identity.hpp>
#include <resilite/sqlite/detail/marker.hpp>

#include <resilite/detail/link_path.hpp>
#include <resilite/detail/utc_format.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <vector>

namespace resilite::detail {

[[nodiscard]] inline std::filesystem::path backup_directory(const std::filesystem::path& db,
                                                            const backup_settings& s) {
    return s.directory.empty() ? std::filesystem::path{db.string() + ".backups"}
                               : std::filesystem::path{s.directory};
}

// A backup directory that cannot take a file, in the class that says why (errno): a read-only
// mount is `read_only`, no write permission `permission`, a full disk `full`; the directory is
// named, and the database said to be untouched (SQLite, asked to open the temporary copy, said
// "the database file could not be opened", naming that file).
[[nodiscard]] inline error backup_directory_failure(const std::filesystem::path& dir, int err,
                                                    const std::filesystem::path& db) {
    const auto klass =
        err == ENOENT || err == ENOTDIR || err == ENAMETOOLONG ? error_class::cant_open : errno_class(err);
    return library_failure(
        klass, "backup",
        resilite::detail::format(
            "the backup directory {} cannot be written ({}): nothing was backed up; the database itself "
            "is not affected",
            dir.string(), std::error_code{err, std::generic_category()}.message()),
        db.string());
}

// Makes the backup directory if it is missing; one that cannot be made fails as
// backup_directory_failure.
inline void make_backup_directory(const std::filesystem::path& dir, const std::filesystem::path& db) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw backup_directory_failure(dir, ec.value(), db);
}

// Creates the empty temporary file the copy goes into (SQLite takes an empty file for a new
// database, and VACUUM INTO writes into one), so that a directory that cannot take a file fails
// here, as backup_directory_failure, before SQLite is asked to open it.
// Closing a descriptor drops every POSIX lock this process holds on its file. This one is safe
// to close: O_EXCL makes it a file created here, this instant, under a name of this process's
// own, and it is closed before any connection opens it, so no SQLite lock can be on it yet.
inline void create_backup_temp(const std::filesystem::path& dir, const std::filesystem::path& tmp,
                               const std::filesystem::path& db) {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) throw backup_directory_failure(dir, errno, db);
    ::close(fd);
}

// "app-20261122T080102.123Z.db": sortable, and the time can be read back.
[[nodiscard]] inline std::string backup_name(const std::filesystem::path& db,
                                             std::chrono::system_clock::time_point t) {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
    return resilite::detail::format("{}-{}.{:03}Z.db", db.stem().string(), utc_format(t, "%Y%m%dT%H%M%S"),
                                    ms);
}

struct backup_file {
    std::filesystem::path path;
    std::chrono::system_clock::time_point taken;
    unsigned sequence = 1;  // "-2", "-3"...: taken later in the same millisecond (promote_backup)
};

// CRC-32 of a whole regular file (never through a link); nothing when it cannot be read.
// Only ever a backup, and only while no connection of this process has it open (after the copy's
// connection closed, before a heal's or drill's check opens one): closing this descriptor would
// otherwise drop that connection's POSIX locks.
[[nodiscard]] inline std::optional<std::uint32_t> file_crc32(const std::filesystem::path& p) {
    const int fd = ::open(p.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    detail::crc32 crc;
    std::vector<char> buf(1 << 20);
    for (;;) {
        const auto n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            ::close(fd);
            return std::nullopt;
        }
        if (n == 0) break;
        crc.process_bytes(buf.data(), static_cast<std::size_t>(n));
    }
    ::close(fd);
    return crc.checksum();
}

// What the manifest recorded of a backup when it was taken.
struct manifest_entry {
    std::uint64_t bytes = 0;
    std::optional<std::uint32_t> crc32;  // manifests written before checksums have none
    std::optional<std::int64_t> archive_seq;
};

[[nodiscard]] inline std::map<std::string, manifest_entry> read_manifest(const std::filesystem::path& dir) {
    std::map<std::string, manifest_entry> out;
    if (is_link_path(dir / "MANIFEST")) return out;
    std::ifstream in(dir / "MANIFEST");
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line.front() == '#') continue;
        std::vector<std::string> f;
        for (std::size_t from = 0;;) {
            const auto tab = line.find('\t', from);
            f.push_back(line.substr(from, tab == std::string::npos ? std::string::npos : tab - from));
            if (tab == std::string::npos) break;
            from = tab + 1;
        }
        if (f.size() < 6) continue;
        manifest_entry e;
        try {
            e.bytes = std::stoull(f[2]);
            if (f[5] != "-") e.archive_seq = std::stoll(f[5]);
            if (f.size() >= 7) e.crc32 = static_cast<std::uint32_t>(std::stoul(f[6], nullptr, 16));
        } catch (const std::exception&) {
            continue;
        }
        out[f[0]] = e;  // a later line for the same name wins
    }
    return out;
}

// The identity a database file holds (none: unreadable, or never opened by resilite: a
// point-in-time rebuild).
[[nodiscard]] inline std::optional<std::string> identity_in_file(const std::filesystem::path& db) noexcept {
    try {
        sqlite::connection c{db, SQLITE_OPEN_READONLY};
        return read_identity(c);
    } catch (...) {
        return std::nullopt;
    }
}

// A database's identity: its sidecar's (readable when the file is damaged), else its file's;
// empty when neither names one.
[[nodiscard]] inline std::string database_identity(const std::filesystem::path& db) {
    auto identity = read_marker(db).identity;
    return identity.empty() ? identity_in_file(db).value_or("") : identity;
}

// Why a backup cannot be trusted, or nothing: it must be a regular file that matches its
// manifest entry (size, and the checksum taken when it was made). A copy renamed, replaced or
// planted in the directory is refused, even when it would pass every other check.
// `read_all`: the checksum too, which reads the whole file (a heal, a drill, a restore); without
// it (retention, at every backup) the name and the size, from the directory alone.
[[nodiscard]] inline std::optional<std::string> untrusted_backup(const std::filesystem::path& backup,
                                                               const std::map<std::string, manifest_entry>& manifest,
                                                               bool read_all = true) {
    if (is_link_path(backup)) return std::string{"the backup is a symbolic link, never followed"};
    const auto it = manifest.find(backup.filename().string());
    if (it == manifest.end()) return std::string{"the backup is not in the manifest (renamed or put there by hand?)"};
    std::error_code ec;
    const auto size = std::filesystem::file_size(backup, ec);
    if (ec || size != it->second.bytes)
        return resilite::detail::format("the backup's size ({} bytes) differs from the manifest's ({} bytes)",
                                        ec ? 0 : size, it->second.bytes);
    if (read_all && it->second.crc32) {
        const auto crc = file_crc32(backup);
        if (!crc || *crc != *it->second.crc32)
            return resilite::detail::format(
                "the backup's checksum differs from the one the manifest recorded when it was taken");
    }
    return std::nullopt;
}

// The backups of `db` in `dir`, oldest first (by the time in their names).
[[nodiscard]] inline std::vector<backup_file> list_backups(const std::filesystem::path& db,
                                                           const std::filesystem::path& dir) {
    std::vector<backup_file> out;
    std::error_code ec;
    if (is_link_path(dir)) return out;
    const auto prefix = db.stem().string() + "-";
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
        const auto name = e.path().filename().string();
        std::error_code st;
        if (e.symlink_status(st).type() != std::filesystem::file_type::regular) continue;
        // prefix + 8 digits T 6 digits . 3 digits Z .db (+ optional -n before .db)
        if (!name.starts_with(prefix) || !name.ends_with(".db") || name.size() < prefix.size() + 23) continue;
        const auto stamp = name.substr(prefix.size(), 20);  // YYYYMMDDTHHMMSS.mmmZ
        std::tm tm{};
        int ms = 0;
        if (std::sscanf(stamp.c_str(), "%4d%2d%2dT%2d%2d%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                        &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7) {
            continue;
        }
        const auto day = std::chrono::year{tm.tm_year} /
                         std::chrono::month{static_cast<unsigned>(tm.tm_mon)} /
                         std::chrono::day{static_cast<unsigned>(tm.tm_mday)};
        const auto t = std::chrono::sys_days{day} + std::chrono::hours{tm.tm_hour} +
                       std::chrono::minutes{tm.tm_min} + std::chrono::seconds{tm.tm_sec} +
                       std::chrono::milliseconds{ms};
        // Ordered by the number, not as text: "-10" comes after "-9", "-2" after none.
        unsigned sequence = 1;
        if (const auto rest = name.substr(prefix.size() + 20); rest != ".db") {  // "-<n>.db"
            const auto n = rest.size() > 4 && rest.size() <= 12 && rest.front() == '-'
                               ? rest.substr(1, rest.size() - 4)
                               : std::string{};
            // (0: not a name resilite gives; listed, never the newest of its millisecond)
            sequence = !n.empty() && std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; })
                           ? static_cast<unsigned>(std::stoul(n))
                           : 0;
        }
        out.push_back({e.path(), std::chrono::time_point_cast<std::chrono::system_clock::duration>(t), sequence});
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
        if (a.taken != b.taken) return a.taken < b.taken;
        return a.sequence != b.sequence ? a.sequence < b.sequence : a.path < b.path;
    });
    return out;
}

// The newest backup of `db` in `dir` that matches its manifest entry by name and size (the cheap
// part of untrusted_backup: health and metrics ask often), or any newest one where there is no
// manifest. A copy renamed by hand, one cut short, one from another directory is not "the last
// backup" whose age an alert watches.
[[nodiscard]] inline std::optional<backup_file> newest_listed_backup(const std::filesystem::path& db,
                                                                     const std::filesystem::path& dir) {
    const auto all = list_backups(db, dir);
    if (all.empty()) return std::nullopt;
    const auto manifest = read_manifest(dir);
    if (manifest.empty()) return all.back();
    for (auto it = all.rbegin(); it != all.rend(); ++it)
        if (!untrusted_backup(it->path, manifest, false)) return *it;
    return std::nullopt;
}

// Which backups retention keeps: the newest `keep_last`, or the newest in each of the last
// N hours / days / weeks; the newest backup is always kept.
[[nodiscard]] inline std::set<std::filesystem::path> retained(const std::vector<backup_file>& all,
                                                              const backup_settings& s) {
    std::set<std::filesystem::path> keep;
    if (all.empty()) return keep;
    keep.insert(all.back().path);
    const bool generations = s.keep_hourly + s.keep_daily + s.keep_weekly > 0;
    if (!generations) {
        for (std::size_t i = all.size() > static_cast<std::size_t>(s.keep_last) ? all.size() - s.keep_last
                                                                                : 0;
             i < all.size(); ++i) {
            keep.insert(all[i].path);
        }
        return keep;
    }
    const auto bucket_keep = [&](std::chrono::seconds width, int count) {
        std::map<std::int64_t, std::filesystem::path, std::greater<>> newest;  // bucket -> newest in it
        for (const auto& b : all) {
            const auto bucket =
                std::chrono::duration_cast<std::chrono::seconds>(b.taken.time_since_epoch()) / width;
            newest[bucket] = b.path;  // `all` is oldest first: the last assignment is the newest
        }
        int taken = 0;
        for (const auto& [bucket, path] : newest) {
            if (taken++ >= count) break;
            keep.insert(path);
        }
    };
    bucket_keep(std::chrono::hours{1}, s.keep_hourly);
    bucket_keep(std::chrono::hours{24}, s.keep_daily);
    bucket_keep(std::chrono::hours{24 * 7}, s.keep_weekly);
    return keep;
}

// One line per backup: name, UTC time, bytes, pages, check result, archive sequence number.
inline void append_manifest(const std::filesystem::path& dir, const backup_result& r) {
    const auto manifest = dir / "MANIFEST";
    const bool fresh = !std::filesystem::exists(manifest);
    {
        std::ofstream out(manifest, std::ios::app);
        if (fresh) out << "# resilite backup manifest: name, taken (UTC), bytes, pages, check, archive_seq, crc32\n";
        out << resilite::detail::format(
            "{}\t{}Z\t{}\t{}\t{}\t{}\t{:08x}\n", r.path.filename().string(),
            utc_format(r.taken, "%Y-%m-%dT%H:%M:%S"), r.bytes, r.pages, r.check.ok() ? "ok" : "failed",
            r.archive_seq ? resilite::detail::format("{}", *r.archive_seq) : std::string{"-"}, r.crc32);
    }
    static_cast<void>(fsync_path(manifest, false));
}

// Held from the choice of a backup's name to its link (promote_backup), so that two processes
// promoting into one directory never write manifest lines for the same name: flock on the
// directory itself (no file of ours added). Best effort: where it cannot be taken (some network
// file systems), the link still never replaces a file.
class backup_directory_lock {
public:
    explicit backup_directory_lock(const std::filesystem::path& dir)
        : fd_(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
        if (fd_ < 0) return;
        int rc = 0;
        while ((rc = ::flock(fd_, LOCK_EX)) != 0 && errno == EINTR) {
        }
        if (rc != 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }
    backup_directory_lock(const backup_directory_lock&) = delete;
    backup_directory_lock& operator=(const backup_directory_lock&) = delete;
    ~backup_directory_lock() {
        if (fd_ >= 0) ::close(fd_);  // releases the flock (no POSIX lock is ever on a directory)
    }

private:
    int fd_;
};

// Puts the finished copy `tmp` into `dir` under the first free name for r.taken, and sets r.path:
// "app-<time>.db", then "app-<time>-2.db", "-3"... in the same millisecond. A name is free when no
// file has it and the manifest never listed it (retention removes a backup, not its line): a name
// is never given twice, so the manifest never names two backups alike.
// The manifest line (r's size and checksum) is written before the file takes its name: a file
// under a backup's name always has its entry, so `resilite backups`, a heal or a drill looking
// meanwhile never calls a backup being promoted "not in the manifest". A crash in between leaves
// a line with no file, as retention does. `between` runs after the line, before the name (a test
// hook). link() then unlink(), not rename(): it fails on a name that exists (a file put there
// meanwhile) instead of replacing that file; the next name is taken (the line left for the
// first names a file that does not match it, so that file is never trusted).
template <class Between>
inline void promote_backup(const std::filesystem::path& tmp, const std::filesystem::path& dir,
                           const std::filesystem::path& db, backup_result& r, Between&& between) {
    const backup_directory_lock lock{dir};
    const auto manifest = read_manifest(dir);
    const auto base = backup_name(db, r.taken);  // ends in ".db"
    for (unsigned n = 1;; ++n) {
        const auto name =
            n == 1 ? base : resilite::detail::format("{}-{}.db", base.substr(0, base.size() - 3), n);
        if (manifest.contains(name)) continue;
        const auto target = dir / name;
        struct stat st {};
        if (::lstat(target.c_str(), &st) == 0) continue;  // taken: no line written for it
        r.path = target;
        append_manifest(dir, r);
        between();
        if (::link(tmp.c_str(), target.c_str()) == 0) {
            ::unlink(tmp.c_str());
            return;
        }
        const int err = errno;
        if (err == EEXIST) continue;
        if (err != EPERM && err != ENOTSUP && err != EOPNOTSUPP && err != ENOSYS)
            throw backup_directory_failure(dir, err, db);
        // A file system without hard links: a look, then rename() (only another process promoting
        // into this very name between the two could be replaced).
        if (std::filesystem::exists(target)) continue;
        std::filesystem::rename(tmp, target);
        return;
    }
}

// Runs the sink command (a shell command line) with {path} and {name} replaced, quoted; returns
// how it failed in one line (its exit code and last stderr lines, or that it timed out), or empty.
[[nodiscard]] inline std::string run_sink(const std::string& command, const std::filesystem::path& backup,
                                          std::chrono::seconds timeout) {
    if (command.empty()) return {};
    const auto quote = [](const std::string& s) {
        std::string out = "'";
        for (char c : s)
            out += c == '\'' ? std::string{"'\\''"} : std::string(1, c);
        return out + "'";
    };
    std::string cmd = command;
    const auto replace = [&](const std::string& key, const std::string& value) {
        for (auto at = cmd.find(key); at != std::string::npos; at = cmd.find(key, at + value.size())) {
            cmd.replace(at, key.size(), value);
        }
    };
    replace("{path}", quote(backup.string()));
    replace("{name}", quote(backup.filename().string()));
    const auto r = run_command({"/bin/sh", "-c", cmd}, timeout);
    return r.ok() ? std::string{}
                  : r.failure(resilite::detail::format("the sink command ({})", command), timeout);
}

// Temporary files of backups that never finished (a killed process): removed at the next run.
// Temporary copies of killed backups of `db` (".<name>.tmp-<pid>-<n>"); those of live
// processes are theirs to finish.
inline void clean_leftovers(const std::filesystem::path& dir, const std::filesystem::path& db) {
    remove_stale_temp_files(dir, resilite::detail::format(".{}.tmp-", db.filename().string()));
}

// A name no other backup in flight has: the pid (for clean_leftovers) and a counter (several
// Database objects in one process).
[[nodiscard]] inline std::string backup_temp_name(const std::filesystem::path& db) {
    static std::atomic<unsigned> counter{0};
    return resilite::detail::format(".{}.tmp-{}-{}", db.filename().string(), ::getpid(), counter++);
}

}  // namespace resilite::detail
