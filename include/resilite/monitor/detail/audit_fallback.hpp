#pragma once
// The audit log's fallback file, `<db>.audit-fallback.jsonl`: where an audit entry goes when the
// database cannot take it, until an import moves it into resilite_audit (flow/detail/audit_flow.hpp).
// Here, below the flows, so that the free functions that have no Database (reset_healing,
// restore) can audit too: their entries wait in the file for the next open.
//
// One JSON object per line, written whole with one write() and synced:
//   {"action":"...","actor":"...","at":"2026-11-22T10:00:00.123Z","detail":"...","file":"<id>",
//    "seq":3,"source":"host:pid","v":1,"crc":"0a1b2c3d"}
// `crc` is the CRC-32 of the line's bytes before `,"crc":` with the closing brace: a torn last
// line (a crash mid-write) fails it and is ignored; a bad line with good ones after it is
// damage, never silently dropped. `file` names the file the entry was first written to and `seq`
// counts within it: the pair is the entry's identity when it is imported (exactly once).

#include <resilite/core/detail/crc32.hpp>
#include <resilite/core/error.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/detail/json.hpp>
#include <resilite/detail/json_value.hpp>
#include <resilite/sqlite/detail/durable_file.hpp>

#include <resilite/detail/utc_format.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace resilite::detail {

[[nodiscard]] inline std::filesystem::path audit_fallback_path(const std::filesystem::path& db) {
    return std::filesystem::path{db.string() + ".audit-fallback.jsonl"};
}

struct audit_entry {
    std::string at_utc;  // "2026-11-22T10:00:00.123Z"
    std::string action, actor, detail, source;
    std::string file;       // the fallback file's id (empty: written to the database directly)
    std::uint64_t seq = 0;  // within that file
};

// UTC to the millisecond: enough to order what a reviewer reads, and what SQLite's own
// strftime('%Y-%m-%dT%H:%M:%fZ') gives, so that it sorts with it.
[[nodiscard]] inline std::string audit_time(std::chrono::system_clock::time_point t) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
    return resilite::detail::format("{}.{:03}Z", utc_format(t, "%Y-%m-%dT%H:%M:%S"), ms < 0 ? ms + 1000 : ms);
}

// Which process wrote the entry: cheap, and what a reviewer asks first.
[[nodiscard]] inline std::string audit_source() {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    return resilite::detail::format("{}:{}", host, static_cast<long>(::getpid()));
}

// Text that cannot go into a JSON line (invalid UTF-8) is refused before anything is written,
// so an entry reads the same whether the database or the fallback took it.
[[nodiscard]] inline bool audit_text_ok(std::string_view s) { return is_utf8(s); }

[[nodiscard]] inline std::uint32_t audit_crc(std::string_view bytes) {
    detail::crc32 crc;
    crc.process_bytes(bytes.data(), bytes.size());
    return crc.checksum();
}

inline constexpr std::string_view audit_crc_key = ",\"crc\":\"";

// One line, newline included.
[[nodiscard]] inline std::string encode_audit_line(const audit_entry& e) {
    // Names in alphabetical order: the same entry always gives the same bytes. (Text that is not
    // UTF-8 was refused before, audit_text_ok; json_string would replace it, never fail.)
    auto text = resilite::detail::format(
        "{{\"action\":{},\"actor\":{},\"at\":{},\"detail\":{},\"file\":{},\"seq\":{},\"source\":{},\"v\":1}}",
        json_string(e.action), json_string(e.actor), json_string(e.at_utc), json_string(e.detail),
        json_string(e.file), e.seq, json_string(e.source));
    const auto crc = audit_crc(text);
    text.pop_back();  // '}'
    return resilite::detail::format("{}{}{:08x}\"}}\n", text, audit_crc_key, crc);
}

// A line (without its newline) whose CRC and fields are sound, or nothing.
[[nodiscard]] inline std::optional<audit_entry> decode_audit_line(std::string_view line) {
    constexpr std::size_t tail = 8 + 2;  // 8 hex digits, then "}
    const auto at = line.rfind(audit_crc_key);
    if (at == std::string_view::npos || line.size() != at + audit_crc_key.size() + tail || !line.ends_with("\"}"))
        return std::nullopt;
    std::uint32_t stored = 0;
    for (const char ch : line.substr(at + audit_crc_key.size(), 8)) {
        const int d = ch >= '0' && ch <= '9' ? ch - '0' : (ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1);
        if (d < 0) return std::nullopt;
        stored = stored * 16 + static_cast<std::uint32_t>(d);
    }
    std::string covered{line.substr(0, at)};
    covered += '}';
    if (audit_crc(covered) != stored) return std::nullopt;
    const auto j = parse_json(covered);
    if (!j || j->unsigned_at("v") != 1u) return std::nullopt;
    auto text = [&](std::string_view name, std::string& out) {
        auto v = j->string_at(name);
        if (v) out = std::move(*v);
        return v.has_value();
    };
    audit_entry e;
    const auto seq = j->unsigned_at("seq");
    if (!seq || !text("file", e.file) || !text("at", e.at_utc) || !text("action", e.action) ||
        !text("actor", e.actor) || !text("detail", e.detail) || !text("source", e.source))
        return std::nullopt;
    e.seq = *seq;
    if (e.file.empty() || e.seq == 0) return std::nullopt;
    return e;
}

// What a fallback file holds.
struct audit_fallback_contents {
    std::vector<audit_entry> entries;    // the sound lines, in file order
    std::vector<std::size_t> bad_lines;  // 1-based numbers of whole lines that fail their CRC
    std::size_t torn_bytes = 0;          // after the last newline: a write a crash cut short
};

// A line is written whole with its newline, and acknowledged only once synced: bytes after the
// last newline are a write that never finished (ignored); a whole line that fails its CRC was
// damaged after it was written, and is never dropped without a word.
[[nodiscard]] inline audit_fallback_contents parse_audit_fallback(std::string_view text) {
    audit_fallback_contents out;
    std::size_t pos = 0, number = 0;
    while (pos < text.size()) {
        const auto nl = text.find('\n', pos);
        if (nl == std::string_view::npos) break;
        ++number;
        if (auto e = decode_audit_line(text.substr(pos, nl - pos))) {
            out.entries.push_back(std::move(*e));
        } else if (nl > pos) {
            out.bad_lines.push_back(number);
        }
        pos = nl + 1;
    }
    out.torn_bytes = text.size() - pos;
    return out;
}

// The fallback file, opened (created when `create`) and locked against other processes (flock:
// one writer or importer at a time). An importer removes the file when done: a waiter that
// then holds the lock on the removed file opens the path again.
class audit_fallback_file {
public:
    audit_fallback_file(std::filesystem::path path, bool create) : path_(std::move(path)) {
        for (int tries = 0; tries < 100; ++tries) {
            fd_ = ::open(path_.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
            if (fd_ < 0) {
                if (errno == ENOENT && !create) return;
                fail("cannot open");
            }
            if (::flock(fd_, LOCK_EX) != 0) fail("cannot lock");
            struct ::stat held {}, at_path {};
            if (::fstat(fd_, &held) == 0 && ::stat(path_.c_str(), &at_path) == 0 && held.st_ino == at_path.st_ino &&
                held.st_dev == at_path.st_dev) {
                if (!S_ISREG(held.st_mode)) fail("not a regular file:");
                created_ = create && held.st_size == 0;
                return;
            }
            ::close(std::exchange(fd_, -1));  // removed or replaced while we waited
        }
        fail("kept being replaced:");
    }
    audit_fallback_file(const audit_fallback_file&) = delete;
    audit_fallback_file& operator=(const audit_fallback_file&) = delete;
    ~audit_fallback_file() {
        if (fd_ >= 0) ::close(fd_);  // (releases the lock)
    }

    [[nodiscard]] bool exists() const noexcept { return fd_ >= 0; }
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

    [[nodiscard]] std::string read() {
        std::string out;
        char buf[65536];
        for (off_t at = 0;;) {
            const auto n = ::pread(fd_, buf, sizeof buf, at);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) fail("cannot read");
            if (n == 0) return out;
            out.append(buf, static_cast<std::size_t>(n));
            at += n;
        }
    }

    // Cuts the file to `size` (a torn tail) and syncs it.
    void cut(std::size_t size) {
        if (::ftruncate(fd_, static_cast<off_t>(size)) != 0 || ::fsync(fd_) != 0) fail("cannot cut the torn tail of");
    }

    // One line at the end of the file, synced; the directory too when the file is new. A write
    // that fails is taken back (the file cut to where it was), so no half line stays behind.
    void append(std::string_view line) {
        const auto end = ::lseek(fd_, 0, SEEK_END);
        if (end < 0) fail("cannot append to");
        std::string_view rest = line;
        while (!rest.empty()) {
            const auto n = ::pwrite(fd_, rest.data(), rest.size(), end + static_cast<off_t>(line.size() - rest.size()));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                const int saved = errno;
                static_cast<void>(::ftruncate(fd_, end));
                errno = saved;
                fail("cannot append to");
            }
            rest.remove_prefix(static_cast<std::size_t>(n));
        }
        if (::fsync(fd_) != 0) {
            const int saved = errno;
            static_cast<void>(::ftruncate(fd_, end));
            errno = saved;
            fail("cannot sync");
        }
        if (created_ && !fsync_path(std::filesystem::absolute(path_).parent_path(), true))
            fail("cannot sync the directory of");
        created_ = false;
    }

    // After an import committed: the file removed (or, when it held damaged lines, renamed
    // aside for a person to read), and the directory synced. Returns where it was set aside.
    std::optional<std::filesystem::path> retire(bool set_aside, std::chrono::system_clock::time_point now) {
        std::optional<std::filesystem::path> aside;
        if (set_aside) {
            auto to = std::filesystem::path{resilite::detail::format("{}.rejected-{}", path_.string(),
                                                                     utc_format(now, "%Y%m%dT%H%M%SZ"))};
            for (int n = 2; std::filesystem::exists(to); ++n)
                to = resilite::detail::format("{}.rejected-{}-{}", path_.string(),
                                              utc_format(now, "%Y%m%dT%H%M%SZ"), n);
            if (::rename(path_.c_str(), to.c_str()) != 0) fail("cannot set aside");
            aside = to;
        } else if (::unlink(path_.c_str()) != 0 && errno != ENOENT) {
            fail("cannot remove");
        }
        if (!fsync_path(std::filesystem::absolute(path_).parent_path(), true)) fail("cannot sync the directory of");
        return aside;
    }

private:
    [[noreturn]] void fail(std::string_view what) {
        const int saved = errno;
        throw library_failure(error_class::io, "audit",
                              resilite::detail::format("{} the audit fallback file {}: {}", what,
                                                       path_.string(), std::strerror(saved)),
                              path_.string());
    }

    std::filesystem::path path_;
    int fd_ = -1;
    bool created_ = false;
};

// A new file's id: unique enough that two files never share one (an import tells entries apart
// by file id and sequence number).
[[nodiscard]] inline std::string new_audit_file_id() {
    std::random_device rd;
    const auto now = std::chrono::system_clock::now().time_since_epoch().count();
    return resilite::detail::format("{:016x}{:08x}",
                                    static_cast<std::uint64_t>(now) ^ (std::uint64_t{rd()} << 32), rd());
}

// Appends one entry to the fallback of `db`, numbering it after the last sound line (a torn
// tail is cut first: it was never acknowledged). Returns the entry as written; `torn` says how
// many bytes of a torn tail were cut. Throws (class io) when it cannot.
inline audit_entry append_audit_fallback(const std::filesystem::path& db, audit_entry e, std::size_t* torn = nullptr) {
    audit_fallback_file f{audit_fallback_path(db), true};
    const auto text = f.read();
    const auto have = parse_audit_fallback(text);
    if (have.torn_bytes > 0) f.cut(text.size() - have.torn_bytes);  // so the new line starts a line
    if (torn != nullptr) *torn = have.torn_bytes;
    if (have.entries.empty()) {
        e.file = new_audit_file_id();
        e.seq = 1;
    } else {
        e.file = have.entries.back().file;
        e.seq = 0;
        for (const auto& x : have.entries)
            if (x.file == e.file && x.seq > e.seq) e.seq = x.seq;
        e.seq += 1 + have.bad_lines.size();  // (a damaged line may have held the highest number)
    }
    f.append(encode_audit_line(e));
    return e;
}

// Entries waiting in the fallback of `db` (complete lines; 0 when there is no file). Never locks:
// health() must not wait for an import.
[[nodiscard]] inline std::uint64_t audit_fallback_depth(const std::filesystem::path& db) noexcept {
    const int fd = ::open(audit_fallback_path(db).c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return 0;
    std::uint64_t n = 0;
    char buf[65536];
    for (;;) {
        const auto got = ::read(fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        for (ssize_t i = 0; i < got; ++i)
            n += buf[i] == '\n' ? 1 : 0;
    }
    ::close(fd);
    return n;
}

// For the free functions that have no Database (reset_healing, restore): the entry waits in the
// fallback until a Database opens `db`. Never throws: what they did is done, and the audit entry
// is the lesser loss; returns false when it could not be written.
[[nodiscard]] inline bool audit_without_database(const std::filesystem::path& db, std::string_view action,
                                                 std::string_view detail) noexcept {
    try {
        audit_entry e;
        e.at_utc = audit_time(std::chrono::system_clock::now());
        e.action = action;
        e.actor = "resilite";
        e.detail = detail;
        e.source = audit_source();
        static_cast<void>(append_audit_fallback(db, std::move(e)));
        return true;
    } catch (...) {
        return false;
    }
}

}  // namespace resilite::detail
