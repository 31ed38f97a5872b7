#pragma once
// Off the machine, top to bottom (settings().offsite.remote set; backup/detail/offsite_copy.hpp):
//   1. each backup, once taken, is queued; db.backup_now() copies it (with the manifest) before
//      it returns, a scheduled backup goes at the next round;
//   2. a round (maintain(), after its own work, never under the writer lock: the network must not
//      hold up writers): the database's remote folder is checked to be this database's (a folder
//      holding another database's copies is never written to), then the queued backups, then
//      each archive segment that changed since its last copy (closed ones once, the current one
//      as it grows);
//   3. health() shows what is not off the machine yet, since when (the lag), the last round that
//      succeeded and the last error; an unreachable remote is a warning event (once per new
//      error), local work goes on.
// Two locks, never held across each other's I/O: `round_` for a whole round (rclone runs under
// it), `state_` for the figures (never held during I/O, so health() and the writer lock never
// wait for the network).
// What went off the machine and what waits is kept in "<database>-resilite-offsite" beside the
// database (written after each change, a temporary file renamed over it), so that a restart
// neither copies every segment again nor forgets a backup whose copy failed.
// Fetching back (a dead disk, a new machine) is the heal's: heal_flow.

#include <resilite/archive/detail/segment_file.hpp>
#include <resilite/backup/detail/offsite_copy.hpp>
#include <resilite/core/detail/crc32.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/detail/utc_format.hpp>
#include <resilite/flow/detail/context.hpp>
#include <resilite/monitor/health_snapshot.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace resilite::detail {

template <class R>
class offsite_flow {
public:
    using time_point = std::chrono::steady_clock::time_point;

    explicit offsite_flow(context<R>& ctx) : ctx_(ctx) {}

    // 1. (the caller may hold the writer lock)
    void queue_backup(const std::filesystem::path& backup) {
        const auto remote = ctx_.with_lock([&] { return ctx_.config.offsite.remote; });
        if (remote.empty()) return;
        {
            std::lock_guard lock(state_);
            load(remote);
            unsent_backups_.push_back(backup);
            next_.reset();  // due now
        }
        save(remote);
        if (ctx_.wake_background) ctx_.wake_background();
    }

    // Db::backup_now(), after the backup (never under the writer lock): a round now, after the one
    // running, if any; empty when everything went off the machine, else why not.
    std::string ship_now() {
        const auto [s, archive_dir] = ctx_.with_lock([&] { return std::pair{ctx_.config.offsite, archive_directory()}; });
        if (s.remote.empty()) return {};
        std::lock_guard round(round_);
        run_round(s, archive_dir);
        std::lock_guard lock(state_);
        return error_;
    }

    // 2. maintain(), outside the writer lock. True when a round ran.
    bool ship_if_due() {
        const auto [s, archive_dir] = ctx_.with_lock([&] { return std::pair{ctx_.config.offsite, archive_directory()}; });
        if (s.remote.empty() || ctx_.heal_due.load()) return false;  // (a heal first; the network after)
        std::unique_lock round(round_, std::try_to_lock);  // a round running: this one is not needed
        if (!round.owns_lock()) return false;
        {
            std::lock_guard lock(state_);
            if (next_ && ctx_.now() < *next_) return false;
        }
        run_round(s, archive_dir);
        return true;
    }

    // (the caller holds the writer lock) The first round is due at once.
    [[nodiscard]] std::optional<time_point> next_due() const {
        if (ctx_.config.offsite.remote.empty()) return std::nullopt;
        std::lock_guard lock(state_);
        return next_ ? next_ : std::optional<time_point>{ctx_.now()};
    }

    // 3. (the caller holds the writer lock) What is not off the machine yet is looked at now (a
    // stat per segment): a commit since the last round counts at once.
    void fill(health_snapshot& h) {
        h.offsite_enabled = !ctx_.config.offsite.remote.empty();
        if (!h.offsite_enabled) return;
        {
            std::lock_guard lock(state_);
            load(ctx_.config.offsite.remote);  // (once: a small local file)
        }
        const auto now = pending_now(archive_directory());
        std::lock_guard lock(state_);
        note_pending(now, ctx_.now());
        h.last_offsite_time = last_ok_;
        h.offsite_error = error_;
        h.offsite_pending = pending_;
        if (pending_since_)
            h.offsite_lag = std::chrono::duration_cast<std::chrono::seconds>(ctx_.now() - *pending_since_);
    }

private:
    struct version {
        std::uintmax_t size = 0;
        std::filesystem::file_time_type mtime{};
        std::uint64_t inode = 0;
        // What the remote received: its first `copied` bytes, and their CRC-32 (0 bytes: not
        // known, a state file written before this was kept). Not part of the file's version.
        std::uintmax_t copied = 0;
        std::uint32_t crc = 0;
        friend bool operator==(const version& a, const version& b) {
            return a.size == b.size && a.mtime == b.mtime && a.inode == b.inode;
        }
    };

    // (the caller holds round_, and not the writer lock: a round never takes it, so a thread that
    // holds it and waits for the round cannot deadlock)
    void run_round(const offsite_settings& s, const std::filesystem::path& archive_dir) {
        const auto started = ctx_.now();
        {
            std::lock_guard lock(state_);
            load(s.remote);
            if (shipped_for_ != s.remote) {  // another remote: nothing is there yet
                shipped_.clear();
                shipped_for_ = s.remote;
            }
            next_ = started + s.interval;
            if (claimed_for_ != s.remote) claimed_for_.clear();  // another remote: check it again
        }
        std::string error = claim(s);
        std::vector<std::filesystem::path> backups;
        {
            std::lock_guard lock(state_);
            backups = unsent_backups_;
        }
        for (const auto& b : backups) {
            if (!error.empty()) break;
            std::error_code ec;
            if (std::filesystem::exists(b, ec)) {  // (retention may have removed it meanwhile)
                error = offsite_push(s, ctx_.path, "backups", b);
                if (error.empty()) error = offsite_push(s, ctx_.path, "backups", b.parent_path() / "MANIFEST");
                if (!error.empty()) break;
            }
            std::lock_guard lock(state_);
            std::erase(unsent_backups_, b);
            sent_backups_.insert(b.string());
        }
        std::error_code ec;
        if (error.empty() && !is_link_path(archive_dir) && std::filesystem::is_directory(archive_dir, ec)) {
            const auto dir = ctx_.path.has_parent_path() ? ctx_.path.parent_path() : std::filesystem::path{"."};
            const auto prefix = ctx_.path.filename().string() + "-resilite-offsite.segment-";
            remove_stale_temp_files(dir, prefix);  // what a killed round left
            // (per Database too: two in one process, on one path, must not write one copy)
            const auto copy = dir / resilite::detail::format("{}{}-{:x}", prefix, ::getpid(),
                                                             reinterpret_cast<std::uintptr_t>(this));
            for (const auto& name : archive::list_segments(archive_dir)) {
                const auto file = archive_dir / name;
                const auto now = version_of(file);
                const auto before = shipped(name);
                if (!now || before == now) continue;
                // Cut or rewritten since its last copy (a repair, a torn tail set aside, a record
                // damaged in place), even when it has grown again since: the remote's copy is
                // moved aside, never overwritten.
                const bool replaced = before && (before->inode != now->inode || before->size > now->size ||
                                                 !still_begins_with(file, *before));
                const auto stamp = replaced ? utc_format(ctx_.clock.utc_now(), "%Y%m%dT%H%M%SZ") : std::string{};
                version copied;
                error = snapshot_segment(file, copy, copied);
                if (error.empty()) error = offsite_push(s, ctx_.path, "archive", copy, name, stamp);
                std::filesystem::remove(copy, ec);
                if (!error.empty()) break;  // likely down
                std::lock_guard lock(state_);
                shipped_[name] = copied;
            }
        }
        const auto left = pending_now(archive_dir);
        bool report = false;
        {
            std::lock_guard lock(state_);
            if (error.empty()) {
                error_.clear();
                last_ok_ = ctx_.clock.utc_now();
                // What was committed during the round waits since the round began at most.
                pending_since_.reset();
                note_pending(left, started);
            } else {
                report = error_ != error;  // the same failure again: reported once
                error_ = error;
                note_pending(left, started);
            }
        }
        save(s.remote);
        if (report) ctx_.emit_since("offsite", started, outcome::warning, 0, error_class::io, error);
    }

    // "<database>-resilite-offsite": the remote, then a line per backup waiting and per segment
    // copied. Read once (the caller holds state_); a file for another remote counts for nothing
    // but its waiting backups.
    [[nodiscard]] std::filesystem::path state_file() const {
        return std::filesystem::path{ctx_.path.string() + "-resilite-offsite"};
    }
    void load(const std::string& remote) {
        if (loaded_) return;
        loaded_ = true;
        shipped_for_ = remote;
        std::ifstream in(state_file());
        std::string line, saved_remote;
        while (std::getline(in, line)) {
            std::istringstream words(line);
            std::string kind;
            words >> kind;
            if (kind == "remote") {
                std::getline(words >> std::ws, saved_remote);
            } else if (kind == "backup") {
                std::string file;
                std::getline(words >> std::ws, file);
                if (!file.empty() && std::find(unsent_backups_.begin(), unsent_backups_.end(), file) == unsent_backups_.end())
                    unsent_backups_.emplace_back(file);
            } else if (kind == "segment" && saved_remote == remote) {
                std::string name;
                version v;
                long long ticks = 0;
                if (words >> name >> v.size >> ticks >> v.inode) {
                    if (!(words >> v.copied >> std::hex >> v.crc)) v.copied = 0;  // (older state files)
                    v.mtime = std::filesystem::file_time_type{std::filesystem::file_time_type::duration{ticks}};
                    shipped_.try_emplace(name, v);
                }
            }
        }
    }
    // (not under state_: a copy of the figures is written; a small local file, so also under the
    // writer lock from queue_backup) Best effort: a state file that cannot be written costs a
    // second copy after a restart, never a copy skipped.
    void save(const std::string& remote) {
        std::lock_guard file(file_);  // first: the text written last is the newest (file_, then state_)
        // Backups another process queued and has not copied yet stay listed (every process of the
        // database writes this file); the ones this process copied do not.
        std::vector<std::string> others;
        {
            std::ifstream in(state_file());
            for (std::string line; std::getline(in, line);)
                if (line.starts_with("backup ")) others.push_back(line.substr(7));
        }
        std::string text;
        {
            std::lock_guard lock(state_);
            if (!loaded_) return;
            text = resilite::detail::format("remote {}\n", shipped_for_.empty() ? remote : shipped_for_);
            for (const auto& b : unsent_backups_)
                text += resilite::detail::format("backup {}\n", b.string());
            for (const auto& b : others) {
                std::error_code ec;
                if (sent_backups_.count(b) == 0 &&
                    std::find(unsent_backups_.begin(), unsent_backups_.end(), std::filesystem::path{b}) ==
                        unsent_backups_.end() &&
                    std::filesystem::exists(b, ec))
                    text += resilite::detail::format("backup {}\n", b);
            }
            for (const auto& [name, v] : shipped_)
                text += resilite::detail::format("segment {} {} {} {} {} {:08x}\n", name, v.size,
                                                 static_cast<long long>(v.mtime.time_since_epoch().count()),
                                                 v.inode, v.copied, v.crc);
        }
        const auto tmp =
            std::filesystem::path{resilite::detail::format("{}.tmp-{}", state_file().string(), ::getpid())};
        {
            std::ofstream out(tmp, std::ios::trunc);
            out << text;
            if (!out) return;
        }
        std::error_code ec;
        std::filesystem::rename(tmp, state_file(), ec);
    }

    // The database's remote folder is this database's: claimed when new, never written to when it
    // names another (a new empty database where a lost one was, or two databases of one name).
    std::string claim(const offsite_settings& s) {
        {
            std::lock_guard lock(state_);
            if (claimed_for_ == s.remote) return {};
        }
        const auto found = offsite_identity(s, ctx_.path);
        if (!found.error.empty()) return found.error;
        if (found.identity && *found.identity != ctx_.identity) {
            return resilite::detail::format(
                "the remote folder {} holds the copies of another database (identity {}, this one is "
                "{}): nothing is written there; restore from it (resilite heal, resilite archive "
                "rebuild) or give this database another remote",
                offsite_folder(s, ctx_.path), *found.identity, ctx_.identity);
        }
        if (!found.identity) {
            if (auto e = offsite_claim(s, ctx_.path, ctx_.identity); !e.empty()) return e;
        }
        std::lock_guard lock(state_);
        claimed_for_ = s.remote;
        return {};
    }

    [[nodiscard]] std::optional<version> shipped(const std::string& name) const {
        std::lock_guard lock(state_);
        const auto it = shipped_.find(name);
        return it == shipped_.end() ? std::nullopt : std::optional<version>{it->second};
    }

    [[nodiscard]] static std::optional<version> version_of(const std::filesystem::path& p) {
        struct ::stat st {};  // one look: size, time and inode of the same file
        if (::stat(p.c_str(), &st) != 0) return std::nullopt;
        return version_of(st);
    }
    [[nodiscard]] static version version_of(const struct ::stat& st) {
        const auto since_epoch = std::chrono::seconds{st.st_mtim.tv_sec} + std::chrono::nanoseconds{st.st_mtim.tv_nsec};
        return version{static_cast<std::uintmax_t>(st.st_size),
                       std::filesystem::file_time_type{
                           std::chrono::duration_cast<std::filesystem::file_time_type::duration>(since_epoch)},
                       static_cast<std::uint64_t>(st.st_ino)};
    }

    // The segment as it is now, up to the end of its last complete record, copied into `to`, a
    // file no one appends to: rclone compares the size it read with the size it saw at the start
    // and deletes the remote's copy when they differ, so the growing segment itself would fail
    // the copy (and lose the remote's previous one) whenever a commit lands meanwhile. A record
    // still being appended goes at the next round. `v`: the version copied. Empty when it
    // worked, else why not.
    [[nodiscard]] static std::string snapshot_segment(const std::filesystem::path& segment,
                                                      const std::filesystem::path& to, version& v) {
        try {
            std::uintmax_t size = 0;
            const auto in = archive::open_segment(segment, size);
            struct ::stat st {};
            if (::fstat(in.get(), &st) != 0) throw std::system_error(errno, std::generic_category(), "fstat");
            v = version_of(st);
            size = static_cast<std::uintmax_t>(st.st_size);
            std::uintmax_t end = size;
            archive::framing_walk walk{in.get(), size};
            if (const auto first = walk.start()) {
                auto at = *first;
                while (at < size) {
                    const auto step = walk.next(at);
                    if (!step) break;
                    at = step->end;
                }
                // Held back: a record begun that no record's end follows. Anything else the walk
                // cannot vouch for (a damaged record further up) is copied as it is: the remote
                // holds what this disk holds, and the records after it go too.
                std::string rest(std::min<std::uintmax_t>(size - at, archive::header_prefix.size()), '\0');
                rest.resize(archive::read_at_most(in.get(), rest.data(), rest.size(), at));
                if (at < size &&
                    (std::string_view{rest}.starts_with(archive::header_prefix) ||
                     archive::header_prefix.starts_with(rest)) &&
                    !holds(in.get(), at, size, archive::trailer_prefix))
                    end = at;
            }
            // (`to` is this round's own temporary file and `segment` an archive segment: neither is
            // a database file, whose descriptors must never be closed beside SQLite's locks.)
            const archive::owned_fd out{::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600)};
            if (out.get() < 0) throw std::system_error(errno, std::generic_category(), to.string());
            std::string buf(std::min<std::uintmax_t>(end, 1u << 20), '\0');
            crc32 crc;
            for (std::uintmax_t at = 0; at < end;) {
                const auto n = archive::read_at_most(in.get(), buf.data(),
                                                     static_cast<std::size_t>(std::min<std::uintmax_t>(end - at, buf.size())), at);
                if (n == 0) throw std::runtime_error("the segment was cut while it was read");
                crc.process_bytes(buf.data(), n);
                for (std::size_t done = 0; done < n;) {
                    const auto w = ::write(out.get(), buf.data() + done, n - done);
                    if (w < 0 && errno == EINTR) continue;
                    if (w < 0) throw std::system_error(errno, std::generic_category(), to.string());
                    done += static_cast<std::size_t>(w);
                }
                at += n;
            }
            v.copied = end;
            v.crc = crc.checksum();
            return {};
        } catch (const std::exception& e) {
            return resilite::detail::format(
                "copying {} off the machine: could not take its complete records: {}",
                segment.filename().string(), e.what());
        }
    }

    // Whether the segment's first bytes are still those the remote received (unknown: taken as
    // yes). Read only for a segment that changed since its last copy.
    [[nodiscard]] static bool still_begins_with(const std::filesystem::path& segment, const version& shipped) {
        if (shipped.copied == 0) return true;
        try {
            std::uintmax_t size = 0;
            const auto in = archive::open_segment(segment, size);
            if (size < shipped.copied) return false;
            std::string buf(std::min<std::uintmax_t>(shipped.copied, 1u << 20), '\0');
            crc32 crc;
            for (std::uintmax_t at = 0; at < shipped.copied;) {
                const auto n = archive::read_at_most(
                    in.get(), buf.data(),
                    static_cast<std::size_t>(std::min<std::uintmax_t>(shipped.copied - at, buf.size())), at);
                if (n == 0) return false;
                crc.process_bytes(buf.data(), n);
                at += n;
            }
            return crc.checksum() == shipped.crc;
        } catch (...) {
            return true;  // unreadable now: the copy that follows fails and says why
        }
    }

    // Whether `text` occurs in the file's bytes from `from` to `size` (read a window at a time).
    [[nodiscard]] static bool holds(int fd, std::uintmax_t from, std::uintmax_t size, std::string_view text) {
        std::string window;
        for (std::uintmax_t at = from; at < size;) {
            const auto keep = window.size() < text.size() ? window.size() : text.size() - 1;  // (across windows)
            window.erase(0, window.size() - keep);
            const auto n = static_cast<std::size_t>(std::min<std::uintmax_t>(size - at, 1u << 16));
            window.resize(keep + n);
            const auto got = archive::read_at_most(fd, window.data() + keep, n, at);
            window.resize(keep + got);
            if (window.find(text) != std::string::npos) return true;
            if (got == 0) break;
            at += got;
        }
        return false;
    }

    // Segments whose present version is not the one copied, plus the backups waiting.
    [[nodiscard]] std::uint64_t pending_now(const std::filesystem::path& archive_dir) const {
        std::uint64_t n = 0;
        std::error_code ec;
        if (!is_link_path(archive_dir) && std::filesystem::is_directory(archive_dir, ec))
            for (const auto& name : archive::list_segments(archive_dir)) {
                const auto v = version_of(archive_dir / name);
                if (v && shipped(name) != v) ++n;
            }
        std::lock_guard lock(state_);
        return n + unsent_backups_.size();
    }

    // (the caller holds state_)
    void note_pending(std::uint64_t n, time_point since) {
        pending_ = n;
        if (n == 0) pending_since_.reset();
        else if (!pending_since_) pending_since_ = since;
    }

    // (the caller holds the writer lock)
    [[nodiscard]] std::filesystem::path archive_directory() const {
        return archive::archive_directory(ctx_.path, ctx_.config.archive.directory);
    }

    context<R>& ctx_;
    std::mutex round_;
    mutable std::mutex state_;
    std::optional<time_point> next_;
    std::string claimed_for_;  // the remote whose folder was found to be this database's
    std::map<std::string, version> shipped_;
    std::vector<std::filesystem::path> unsent_backups_;
    bool loaded_ = false;  // the state file was read
    std::string shipped_for_;             // the remote shipped_ is about
    std::set<std::string> sent_backups_;  // copied by this process
    std::mutex file_;      // one writer of the state file at a time
    std::optional<std::chrono::system_clock::time_point> last_ok_;
    std::string error_;
    std::uint64_t pending_ = 0;
    std::optional<time_point> pending_since_;
};

}  // namespace resilite::detail
