#pragma once
// Segment files of the archive: their names, reading them (never through a link), appending
// to them durably, and finding the last record of a segment from its end.

#include <resilite/archive/detail/archive_format.hpp>
#include <resilite/core/error.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/detail/link_path.hpp>
#include <resilite/sqlite/detail/durable_file.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace resilite::detail::archive {

// Where a database's archive is: the configured directory, or "<database>.archive" beside it.
[[nodiscard]] inline std::filesystem::path archive_directory(const std::filesystem::path& db, const std::string& configured) {
    return configured.empty() ? std::filesystem::path{db.string() + ".archive"} : std::filesystem::path{configured};
}

[[nodiscard]] inline bool is_segment_name(std::string_view n) {
    return n.size() == 11 && n.ends_with(".sql") && n[4] == '_' &&
           std::all_of(n.begin(), n.begin() + 4, [](char c) { return c >= '0' && c <= '9'; }) &&
           std::all_of(n.begin() + 5, n.begin() + 7, [](char c) { return c >= '0' && c <= '9'; });
}

// Segment file names in the directory (none when the directory is a link), oldest first: regular files only (never a link, which
// could lead to any file; never a directory). `odd`, if given, receives the other entries that
// are named like segments.
[[nodiscard]] inline std::vector<std::string> list_segments(const std::filesystem::path& dir,
                                                            std::vector<std::string>* odd = nullptr) {
    std::vector<std::string> out;
    if (is_link_path(dir)) return out;  // a linked directory holds no segment resilite reads
    std::error_code ec;
    for (std::filesystem::directory_iterator it{dir, ec}, end; !ec && it != end; it.increment(ec)) {
        const auto name = it->path().filename().string();
        if (!is_segment_name(name)) continue;
        std::error_code st;
        if (it->symlink_status(st).type() == std::filesystem::file_type::regular) {
            out.push_back(name);
        } else if (odd != nullptr) {
            odd->push_back(name);
        }
    }
    std::sort(out.begin(), out.end());
    if (odd != nullptr) std::sort(odd->begin(), odd->end());
    return out;
}

[[noreturn]] inline void fail_io(std::string_view what, const std::filesystem::path& p) {
    throw library_failure(error_class::archive, "archive",
                          resilite::detail::format("{} {}: {}", what, p.string(), std::strerror(errno)),
                          p.string());
}

// Why a segment path cannot be used, or nothing when it is a regular file or absent. A link is
// never followed: it could make the archive append to, cut or read any file.
[[nodiscard]] inline std::optional<std::string> unusable_segment(const std::filesystem::path& p) {
    struct ::stat st {};
    if (::lstat(p.c_str(), &st) != 0 || S_ISREG(st.st_mode)) return std::nullopt;
    if (S_ISLNK(st.st_mode)) {
        return resilite::detail::format(
            "archive segment {} is a symbolic link; resilite never follows links in an "
            "archive (replace it with the file itself)",
            p.string());
    }
    return resilite::detail::format("archive segment {} is not a regular file (a directory?); move it away",
                                    p.string());
}

// A segment's bytes, read into a buffer that is not zero-filled first: a segment can be hundreds
// of megabytes, and filling the buffer before reading into it cost as much as the read.
class file_bytes {
public:
    file_bytes() = default;
    file_bytes(std::unique_ptr<char[]> data, std::size_t size) : data_(std::move(data)), size_(size) {}
    [[nodiscard]] std::string_view view() const noexcept { return {data_.get(), size_}; }
    operator std::string_view() const noexcept { return view(); }  // NOLINT: read like a string_view

private:
    std::unique_ptr<char[]> data_;
    std::size_t size_ = 0;
};

// A descriptor that is closed when it goes out of scope (an allocation that throws never leaks
// it).
class owned_fd {
public:
    explicit owned_fd(int fd) noexcept : fd_(fd) {}
    owned_fd(owned_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    owned_fd(const owned_fd&) = delete;
    owned_fd& operator=(const owned_fd&) = delete;
    owned_fd& operator=(owned_fd&& o) noexcept {
        if (this != &o) {
            if (fd_ >= 0) ::close(fd_);
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }
    ~owned_fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    [[nodiscard]] int get() const noexcept { return fd_; }

private:
    int fd_;
};

// A segment opened for reading: a regular file, never through a link (a device or a FIFO named
// like a segment could otherwise block or never end). `size` receives its size.
[[nodiscard]] inline owned_fd open_segment(const std::filesystem::path& p, std::uintmax_t& size) {
    if (auto why = unusable_segment(p)) throw library_failure(error_class::archive, "archive", *why, p.string());
    owned_fd fd{::open(p.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)};
    if (fd.get() < 0) fail_io("cannot read archive segment", p);
    struct ::stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        throw library_failure(
            error_class::archive, "archive",
            resilite::detail::format("archive segment {} is not a regular file", p.string()), p.string());
    }
    size = static_cast<std::uintmax_t>(st.st_size);
    return fd;
}

// Up to `n` bytes at `offset` into `out`; fewer only at the end of the file or on an error.
[[nodiscard]] inline std::size_t read_at_most(int fd, char* out, std::size_t n, std::uintmax_t offset) noexcept {
    std::size_t got = 0;
    while (got < n) {
        const auto r = ::pread(fd, out + got, n - got, static_cast<off_t>(offset + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += static_cast<std::size_t>(r);
    }
    return got;
}

// The bytes of an open segment from `from` to `size`.
[[nodiscard]] inline file_bytes read_from(int fd, std::uintmax_t from, std::uintmax_t size) {
    const auto n = static_cast<std::size_t>(size > from ? size - from : 0);
    std::unique_ptr<char[]> data{new char[n == 0 ? 1 : n]};  // (default-initialized: not zeroed)
    const auto got = read_at_most(fd, data.get(), n, from);
    return {std::move(data), got};
}

// A segment's whole text, exactly its size.
[[nodiscard]] inline file_bytes read_file(const std::filesystem::path& p) {
    std::uintmax_t size = 0;
    const auto fd = open_segment(p, size);
    return read_from(fd.get(), 0, size);
}

// Appends to a segment through a buffer; finish() syncs it (and the directory when the file is
// new), unless the caller syncs it. A new file starts with the preamble. Destroyed without
// finish() (a failed write: a full volume), it takes back what it wrote, and removes the file if
// it created it: a failure we see is no tear and leaves nothing behind (the caller holds the
// write lock: no one else appends meanwhile). Only a crash leaves a torn tail, which the next
// drain sets aside.
class segment_appender {
public:
    segment_appender(std::filesystem::path file, std::string_view preamble) : file_(std::move(file)) {
        if (auto why = unusable_segment(file_))
            throw library_failure(error_class::archive, "archive", *why, file_.string());
        fd_ = ::open(file_.c_str(), O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
        if (fd_ < 0 && errno == ENOENT) {
            fd_ = ::open(file_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            created_ = fd_ >= 0;
        }
        if (fd_ < 0) fail_io("cannot open archive segment", file_);
        owned_ = true;
        struct ::stat st {};
        if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
            ::close(std::exchange(fd_, -1));
            throw library_failure(
                error_class::archive, "archive",
                resilite::detail::format("archive segment {} is not a regular file", file_.string()),
                file_.string());
        }
        start_ = st.st_size;
        fresh_ = st.st_size == 0;
        if (fresh_) buffer_ = preamble;
    }
    // Appends through `fd` (opened O_APPEND by an earlier appender and kept), which the caller
    // has just seen to be `file` at `size` bytes, under the write lock. The descriptor stays open.
    segment_appender(std::filesystem::path file, int fd, off_t size) : file_(std::move(file)), fd_(fd), start_(size) {}
    segment_appender(const segment_appender&) = delete;
    segment_appender& operator=(const segment_appender&) = delete;
    ~segment_appender() {
        if (fd_ < 0) return;
        if (!finished_) {
            if (created_) {
                static_cast<void>(::unlink(file_.c_str()));
            } else if (written_bytes_ > 0) {
                static_cast<void>(::ftruncate(fd_, start_));
            }
        }
        if (owned_) ::close(fd_);
    }

    std::string& buffer() noexcept { return buffer_; }
    [[nodiscard]] off_t start() const noexcept { return start_; }
    // The file's size after what this appender wrote.
    [[nodiscard]] off_t end() const noexcept { return start_ + written_bytes_; }
    [[nodiscard]] bool created() const noexcept { return created_; }
    // Writes the buffer out once it holds `at_least` bytes.
    void flush(std::size_t at_least = 0) {
        if (buffer_.size() < at_least || buffer_.empty()) return;
        std::string_view rest{buffer_};
        while (!rest.empty()) {
            const auto n = ::write(fd_, rest.data(), rest.size());
            if (n < 0) {
                if (errno == EINTR) continue;
                fail_io("cannot append to archive segment", file_);
            }
            written_bytes_ += n;
            rest.remove_prefix(static_cast<std::size_t>(n));
        }
        buffer_.clear();
    }
    // `sync` false: the caller syncs the descriptor itself (overlapped with the database's own
    // sync, see background_sync) before it acknowledges anything. A new file is synced here
    // all the same, with its directory. Returns whether it synced.
    bool finish(bool sync = true) {
        flush();
        sync = sync || fresh_;
        if (sync && ::fdatasync(fd_) != 0) fail_io("cannot sync archive segment", file_);
        if (fresh_ && !fsync_path(file_.parent_path(), true))
            fail_io("cannot sync archive directory", file_.parent_path());
        finished_ = true;
        return sync;
    }
    // After finish(): the descriptor this appender opened, for the caller to keep (-1: it was
    // borrowed, or none).
    [[nodiscard]] int release() noexcept {
        if (!finished_ || !owned_) return -1;
        owned_ = false;
        return std::exchange(fd_, -1);
    }

private:
    std::filesystem::path file_;
    int fd_ = -1;
    bool owned_ = false, fresh_ = false, created_ = false, finished_ = false;
    off_t start_ = 0;  // the size before this appender wrote
    off_t written_bytes_ = 0;
    std::string buffer_;
};

// The segment being appended to, kept open between commits: one open per segment instead of
// one per commit. Used only while its path still names the same file (device and inode): a
// segment renamed over (a repair) or removed is opened afresh.
class kept_segment {
public:
    kept_segment() = default;
    kept_segment(const kept_segment&) = delete;
    kept_segment& operator=(const kept_segment&) = delete;
    ~kept_segment() { reset(); }

    // Closes the descriptor, unless its number no longer refers to the kept file (then it is
    // someone else's now, and only forgotten).
    void reset() noexcept {
        if (fd_ >= 0 && still_ours()) ::close(fd_);
        fd_ = -1;
        file_.clear();
    }
    // Takes `fd` (an O_APPEND descriptor of `file`); closes it at once if it cannot be checked.
    void keep(const std::filesystem::path& file, int fd) noexcept {
        reset();
        if (fd < 0) return;
        struct ::stat st {};
        if (::fstat(fd, &st) != 0) {
            ::close(fd);
            return;
        }
        fd_ = fd;
        dev_ = st.st_dev;
        ino_ = st.st_ino;
        try {
            file_ = file;
        } catch (...) {
            reset();
        }
    }
    // Sets `st`'s device and inode to the kept file's; false when none is kept.
    [[nodiscard]] bool describe(struct ::stat& st) const noexcept {
        if (fd_ < 0) return false;
        st.st_dev = dev_;
        st.st_ino = ino_;
        return true;
    }
    // The kept descriptor when `file` is the kept file, `seen` (the caller's lstat of it, under
    // the write lock) is the same file, and the descriptor itself still refers to it: a number
    // closed behind the library's back (a double close elsewhere, a daemon closing every
    // descriptor) and reused must never receive a record. -1 otherwise.
    [[nodiscard]] int for_file(const std::filesystem::path& file, const struct ::stat& seen) const noexcept {
        if (fd_ < 0 || seen.st_dev != dev_ || seen.st_ino != ino_ || file != file_ || !still_ours()) return -1;
        return fd_;
    }

private:
    [[nodiscard]] bool still_ours() const noexcept {
        struct ::stat own {};
        if (::fstat(fd_, &own) != 0 || own.st_dev != dev_ || own.st_ino != ino_) return false;
        const int flags = ::fcntl(fd_, F_GETFL);
        return flags >= 0 && (flags & O_APPEND) != 0 && (flags & O_ACCMODE) == O_WRONLY;
    }

    std::filesystem::path file_;
    int fd_ = -1;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
};

// Sets a torn tail aside in a file of its own, created new (never through a link), written
// whole and synced; on any failure the file is removed and the caller must not cut the tail.
[[nodiscard]] inline bool set_aside(const std::filesystem::path& aside, std::string_view bytes) {
    const int fd = ::open(aside.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return false;
    bool ok = true;
    while (ok && !bytes.empty()) {
        const auto n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) continue;
        ok = n > 0;
        if (ok) bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    ok = ok && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) static_cast<void>(::unlink(aside.c_str()));
    return ok;
}

struct tail_info {
    std::int64_t seq = 0, last_id = 0, first_id = 0;
    std::uint32_t crc = 0;
    std::string utc;
    std::string segment;  // the segment's file name
};

// The last record of a segment that ends with a complete, valid record and starts with a v1
// preamble, read from the end (a monthly segment can be large: reading it whole at every open
// and after every other process's drain would be slow). The window read grows until it holds
// the record's header (a batched record can be megabytes). Nothing when anything is unusual: the
// caller then reads the whole segment.
[[nodiscard]] inline std::optional<tail_info> read_last_record(const std::filesystem::path& path,
                                                               std::uintmax_t size, const std::string& name) {
    if (size == 0) return std::nullopt;
    const owned_fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (fd.get() < 0) return std::nullopt;
    const auto read_at = [&](std::uintmax_t offset, std::size_t n) {
        std::string buf(n, '\0');
        buf.resize(read_at_most(fd.get(), buf.data(), n, offset));
        return buf;
    };
    const auto head = read_at(0, format_line.size() + 1);
    if (!head.starts_with(format_line) || (head.size() > format_line.size() && head.back() != ' '))
        return std::nullopt;
    for (std::uintmax_t chunk_max = 1u << 16;; chunk_max *= 8) {
        const auto chunk = static_cast<std::size_t>(std::min(size, chunk_max));
        const auto buf = read_at(size - chunk, chunk);
        if (buf.size() != chunk || buf.empty() || buf.back() != '\n') return std::nullopt;
        const auto line_start = buf.rfind('\n', buf.size() - 2);
        if (line_start == std::string::npos) return std::nullopt;
        std::string_view last{buf};
        last = last.substr(line_start + 1);
        std::int64_t seq = 0;
        if (!parse::take(last, trailer_prefix) || !parse::number(last, seq)) return std::nullopt;
        // The record's header line, at the start of a line before its trailer line ("-- txn N "
        // appears in both; never the segment's first line, its preamble). A line of the record's
        // own text may read the same: each such line, from the end, is tried as the header until
        // one frames the record that ends the segment; the window grows while none does.
        const auto needle = resilite::detail::format("\n{}{} ", header_prefix, seq);
        int framed = 0;  // candidates whose framing fits, each checked in full (a few at most)
        for (auto hit = buf.rfind(needle, line_start); hit != std::string::npos;
             hit = hit == 0 ? std::string::npos : buf.rfind(needle, hit - 1)) {
            const auto header = hit + 1;
            // First the cheap test: a header of this number whose body ends where the trailer starts.
            const auto eol = buf.find('\n', header);
            const auto h = parse::header(std::string_view{buf}.substr(header, eol - header));
            if (!h || h->seq != seq || eol + 1 + 7 > line_start + 1 || h->bytes != line_start + 1 - (eol + 1 + 7))
                continue;
            if (++framed > 4) return std::nullopt;  // (the caller reads the segment whole)
            const auto contents = read_segment(std::string_view{buf}.substr(header), name);
            if (contents.records.size() != 1 || !contents.problems.empty() ||
                header + contents.records.front().end != buf.size())
                continue;
            const auto& r = contents.records.front();
            return tail_info{r.header.seq, r.header.last_id, r.header.first_id, r.crc, r.header.utc, name};
        }
        if (chunk == size) return std::nullopt;
    }
}

// Walks a segment by its records' framing alone (each header's byte count, `BEGIN;`, each
// trailer's number), without parsing or checking bodies, through a 64 KiB window: records
// smaller than it are read with it, larger ones are passed unread. Stops at the first thing that
// is not such a record (a broken frame, a length past the file, text that is no record, a format
// line); a segment without a v1 preamble is not walked at all.
class framing_walk {
public:
    struct step {
        std::optional<record_header> header;  // a record (else a comment or a blank line)
        std::uintmax_t end = 0;               // just after it
    };

    framing_walk(int fd, std::uintmax_t size) : fd_(fd), size_(size) {}

    // Where the walk starts: just after the v1 preamble line (nothing: no walk).
    [[nodiscard]] std::optional<std::uintmax_t> start() {
        const auto first = line_at(0);
        if (!first || !first->starts_with(format_line) ||
            (first->size() != format_line.size() && (*first)[format_line.size()] != ' '))
            return std::nullopt;
        return first->size() + 1;
    }

    // The record, comment or blank line at `pos`; nothing where the walk cannot vouch for what
    // is there. `seq_limit`: a record numbered above it is not passed.
    [[nodiscard]] std::optional<step> next(std::uintmax_t pos,
                                           std::int64_t seq_limit = std::numeric_limits<std::int64_t>::max()) {
        const auto l = line_at(pos);
        if (!l) return std::nullopt;
        if (!l->starts_with(header_prefix)) {
            // A comment or a blank line between records (the note a drain leaves); anything else
            // (a format line among them too) ends the walk.
            if ((l->starts_with("--") && !l->starts_with(format_prefix)) ||
                l->find_first_not_of(" \t\r") == std::string_view::npos) {
                const auto end = pos + l->size() + 1;
                if (end <= size_) return step{std::nullopt, end};
            }
            return std::nullopt;
        }
        const auto h = parse::header(*l);
        const auto body_start = pos + l->size() + 1 + 7;  // (`l` is not used past the next read)
        // A claimed length never reaches past the file (one that wraps around would send the
        // walk backwards).
        if (!h || h->seq > seq_limit || body_start > size_ || h->bytes > size_ - body_start) return std::nullopt;
        const auto begin = line_at(body_start - 7);
        if (!begin || *begin != "BEGIN;") return std::nullopt;
        const auto body_end = body_start + h->bytes;
        const auto trailer = line_at(body_end);
        if (!trailer || !parse::trailer(*trailer, h->seq)) return std::nullopt;
        // (Within the size taken at the start: a record completed since is the next reader's.)
        if (body_end + trailer->size() + 1 > size_) return std::nullopt;
        return step{h, body_end + trailer->size() + 1};
    }

private:
    // The complete line at `offset` (without its newline), if it fits the window; valid until the
    // next call.
    std::optional<std::string_view> line_at(std::uintmax_t offset) {
        constexpr std::size_t window_size = 1u << 16;
        if (offset < window_at_ || offset >= window_at_ + window_.size() ||
            std::string_view{window_}.substr(static_cast<std::size_t>(offset - window_at_)).find('\n') ==
                std::string_view::npos) {
            const auto n =
                static_cast<std::size_t>(std::min<std::uintmax_t>(window_size, size_ > offset ? size_ - offset : 0));
            window_.assign(n, '\0');
            window_.resize(read_at_most(fd_, window_.data(), n, offset));
            window_at_ = offset;
        }
        const std::string_view rest = std::string_view{window_}.substr(static_cast<std::size_t>(offset - window_at_));
        const auto nl = rest.find('\n');
        if (nl == std::string_view::npos) return std::nullopt;
        return rest.substr(0, nl);
    }

    int fd_;
    std::uintmax_t size_;
    std::string window_;
    std::uintmax_t window_at_ = 0;
};

// Where the records a reader does not need end: the records numbered up to `through`, walked
// over by their framing (framing_walk). Reading from an earlier offset is always safe. Numbers
// must rise above `floor` (the walk of the segments before) and from one record to the next; one
// that does not is `disordered`: the caller cannot tell a copy of a skipped record from a
// conflicting one, and reads everything.
struct skipped_prefix {
    std::uintmax_t offset = 0;  // where reading must start
    std::int64_t last_seq = 0;  // the highest number walked over (0: none)
    std::int64_t records = 0;   // how many were walked over
    bool disordered = false;
};

[[nodiscard]] inline skipped_prefix skip_records_through(int fd, std::uintmax_t size, std::int64_t through,
                                                         std::int64_t floor) {
    skipped_prefix out;
    framing_walk walk{fd, size};
    const auto start = walk.start();
    if (!start) return out;
    out.offset = *start;
    for (auto pos = *start;;) {
        const auto s = walk.next(pos, through);
        if (!s) break;
        pos = s->end;
        if (!s->header) continue;
        if (s->header->seq <= std::max(floor, out.last_seq)) {
            out.disordered = true;
            break;
        }
        out.offset = pos;
        out.last_seq = s->header->seq;
        ++out.records;
    }
    return out;
}

// Where a chunk of whole records that starts at `from` ends: at least `target` bytes of them (or
// the segment's end), cut after a record whose framing the walk vouches for, so that a chunk
// read on its own reads exactly as it would inside the whole segment. `size` (the rest read as
// one chunk) where the walk cannot go on: what is there is read with exact reporting.
[[nodiscard]] inline std::uintmax_t whole_records_end(int fd, std::uintmax_t size, std::uintmax_t from,
                                                      std::uintmax_t target) {
    framing_walk walk{fd, size};
    auto pos = from;
    if (from == 0) {
        const auto start = walk.start();
        if (!start) return size;
        pos = *start;
    }
    while (pos < size && pos - from < target) {
        const auto s = walk.next(pos);
        if (!s) return size;
        pos = s->end;
    }
    return pos;
}

// Record bodies left in their segments by a read in chunks (read_archive), read again when they
// are applied, through a window of at least 4 MiB, and checked against their CRC-32 again: a
// segment changed between the two reads fails here rather than apply something else.
class record_bodies {
public:
    explicit record_bodies(std::filesystem::path dir) : dir_(std::move(dir)) {}

    [[nodiscard]] std::string_view body_of(const record& r) {
        constexpr std::size_t window_size = 4u << 20;
        const auto bytes = r.header.bytes;
        if (r.segment != segment_ || !fd_) {
            fd_.reset();
            fd_.emplace(open_segment(dir_ / r.segment, size_));
            segment_ = r.segment;
            window_ = {};
            window_at_ = 0;
        }
        if (r.body_at < window_at_ || r.body_at + bytes > window_at_ + window_.view().size()) {
            window_ = {};  // (freed before the next one is read)
            const auto want = std::max<std::uintmax_t>(window_size, bytes);
            window_at_ = r.body_at;
            window_ = read_from(fd_->get(), r.body_at, std::min<std::uintmax_t>(size_, r.body_at + want));
        }
        const std::string_view all = window_.view();
        const auto at = static_cast<std::size_t>(r.body_at - window_at_);
        if (at + bytes > all.size() ||
            checksum(r.header.seq, r.header.utc, r.header.kind, all.substr(at, bytes)) != r.crc) {
            throw library_failure(
                error_class::archive, "archive",
                resilite::detail::format("archive segment {} changed while it was read: txn {} no longer "
                                         "matches what was read before; nothing of it was applied",
                                         r.segment, r.header.seq),
                (dir_ / r.segment).string());
        }
        return all.substr(at, bytes);
    }

private:
    std::filesystem::path dir_;
    std::string segment_;
    std::optional<owned_fd> fd_;
    std::uintmax_t size_ = 0;
    file_bytes window_;
    std::uintmax_t window_at_ = 0;
};

// A segment read after the records numbered up to `through` (see skip_records_through), through
// one descriptor: the walk and the read see the same file.
struct segment_tail {
    file_bytes text;
    skipped_prefix skipped;
};

[[nodiscard]] inline segment_tail read_segment_after(const std::filesystem::path& p, std::int64_t through,
                                                     std::int64_t floor = 0) {
    std::uintmax_t size = 0;
    const auto fd = open_segment(p, size);
    segment_tail out;
    out.skipped = skip_records_through(fd.get(), size, through, floor);
    if (out.skipped.records == 0) out.skipped.offset = 0;  // nothing passed: read whole, lines exact
    out.text = read_from(fd.get(), out.skipped.offset, size);
    return out;
}

}  // namespace resilite::detail::archive
