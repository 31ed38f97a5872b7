#pragma once
// The durable write queue of resilite::queue_writes<N> (docs/degradation.md): "<db>-resilite-queue"
// beside the database, one line per queued write, appended under an exclusive flock (any
// process of the database may append) and fsynced before the write is acknowledged.
//
//   <crc32 of the JSON, 8 hex digits> {"generation":"<16 hex digits>","resilite_queue":1}
//   <crc32> {"args":["1","'Ann'"],"at":"...Z","op":"insert","seq":1,"sql":"INSERT INTO ..."}
//
// The values are SQL literals that read back as exactly the value bound (the archive's own
// encoding: archive/detail/archive_capture.hpp). A line that does not end in a newline, or whose
// CRC fails, at the end of the file is a write cut short by a crash: it was never acknowledged,
// and the next append cuts it off. A bad line before the end is damage: the file is kept aside,
// never replayed in part nor deleted. The generation names one file's life (it starts when the
// file is created and ends when a replay removes it); the database stores the last sequence
// number replayed per generation, in the transaction of the replayed write: exactly once.

#include <resilite/archive/detail/archive_capture.hpp>
#include <resilite/core/detail/crc32.hpp>
#include <resilite/core/detail/errno_class.hpp>
#include <resilite/core/error.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/detail/json.hpp>
#include <resilite/detail/json_value.hpp>
#include <resilite/detail/utc_format.hpp>
#include <resilite/sqlite/connection.hpp>
#include <resilite/sqlite/detail/durable_file.hpp>
#include <resilite/sqlite/detail/reads_only.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace resilite::detail {

struct queued_write {
    std::uint64_t seq = 0;
    std::string op;                 // exec, insert, upsert, erase
    std::string sql;                // one statement with ?N parameters
    std::vector<std::string> args;  // exact SQL literals, in parameter order
    std::string at;                 // UTC, when it was queued
};

// What a replay reads: the entries in order, or why the file cannot be used.
struct queue_contents {
    std::string generation;
    std::vector<queued_write> entries;
    std::size_t torn_tail_bytes = 0;  // a last line cut short by a crash (never acknowledged)
    std::string damage;               // a bad line before the end: the file is kept aside
};

[[nodiscard]] inline std::uint32_t text_crc32(std::string_view s) noexcept {
    detail::crc32 crc;
    crc.process_bytes(s.data(), s.size());
    return crc.checksum();
}

// A quoted text literal ('...' with '' for ') as CAST(X'..' AS TEXT).
[[nodiscard]] inline std::string queued_text_as_hex(std::string_view literal) {
    std::string text;
    for (std::size_t i = 1; i + 1 < literal.size(); ++i) {
        text += literal[i];
        if (literal[i] == '\'') ++i;
    }
    std::string out = "CAST(X'";
    archive::append_hex(out, text);
    out += "' AS TEXT)";
    return out;
}

// A queued write's line, its JSON object: names in alphabetical order (the same write always
// gives the same bytes, as the previous JSON library wrote them). A rejected write also names
// its queue's generation and why. Text that is not UTF-8 cannot be queued, except an argument,
// which is written as CAST(X'..' AS TEXT) (it reads back as the same bytes).
[[nodiscard]] inline std::string queue_entry_json(const queued_write& w, std::string_view generation = {},
                                                  std::string_view rejected_because = {}) {
    if (!is_utf8(w.sql) || !is_utf8(w.op) || !is_utf8(w.at))
        throw library_failure(error_class::degraded, "queue",
                              "the statement's SQL text is not valid UTF-8: it cannot be queued", {});
    std::string args = "[";
    for (const auto& a : w.args) {
        if (args.size() > 1) args += ',';
        args += json_string(is_utf8(a) ? a : queued_text_as_hex(a));
    }
    args += ']';
    std::string body = resilite::detail::format("{{\"args\":{},\"at\":{}", args, json_string(w.at));
    if (!rejected_because.empty())
        body += resilite::detail::format(",\"generation\":{}", json_string(as_utf8(generation)));
    body += resilite::detail::format(",\"op\":{}", json_string(w.op));
    if (!rejected_because.empty())
        body += resilite::detail::format(",\"rejected\":{}", json_string(as_utf8(rejected_because)));
    body += resilite::detail::format(",\"seq\":{},\"sql\":{}}}", w.seq, json_string(w.sql));
    return body;
}

// A queued write's fields from its line's object, or why they are not there.
[[nodiscard]] inline std::optional<std::string> queue_entry_fields(const json_value& j, queued_write& w) {
    const auto seq = j.unsigned_at("seq");
    auto op = j.string_at("op");
    auto sql = j.string_at("sql");
    const auto* args = j.find("args");
    if (!seq || !op || !sql || args == nullptr || !args->is_array())
        return std::string{"seq (a whole number), op, sql (strings) and args (an array) are needed"};
    w.seq = *seq;
    w.op = std::move(*op);
    w.sql = std::move(*sql);
    w.args.clear();
    for (const auto& a : args->items) {
        if (!a.is_string()) return std::string{"args holds something that is not a string"};
        w.args.push_back(a.text);
    }
    w.at = j.string_at("at").value_or(std::string{});
    return std::nullopt;
}

// Parses a file's bytes; `valid_bytes` is set to the length of the whole lines that are sound.
[[nodiscard]] inline queue_contents parse_queue(std::string_view bytes, std::size_t* valid_bytes = nullptr) {
    queue_contents out;
    std::size_t pos = 0, good = 0;
    std::uint64_t last_seq = 0;
    while (pos < bytes.size()) {
        const auto nl = bytes.find('\n', pos);
        const bool last_line = nl == std::string_view::npos || nl + 1 == bytes.size();
        const auto line = bytes.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        const auto fail = [&](std::string why) {
            if (last_line) {
                out.torn_tail_bytes = bytes.size() - pos;
            } else {
                out.damage = resilite::detail::format("line at byte {}: {}", pos, why);
            }
        };
        if (nl == std::string_view::npos) {
            fail("no end of line");
            break;
        }
        if (line.size() < 10 || line[8] != ' ') {
            fail("no CRC");
            break;
        }
        const auto body = line.substr(9);
        std::uint32_t want = 0;
        if (std::sscanf(std::string{line.substr(0, 8)}.c_str(), "%8x", &want) != 1 || want != text_crc32(body)) {
            fail("CRC mismatch");
            break;
        }
        const auto parsed = parse_json(body);
        if (!parsed || !parsed->is_object()) {
            fail("not a JSON object");
            break;
        }
        const json_value& j = *parsed;
        if (pos == 0) {
            const auto generation = j.string_at("generation");
            if (j.find("resilite_queue") == nullptr || !generation) {
                fail("not a resilite queue header");
                break;
            }
            out.generation = *generation;
        } else {
            queued_write w;
            if (auto why = queue_entry_fields(j, w)) {
                fail(resilite::detail::format("entry fields: {}", *why));
                break;
            }
            if (w.seq != last_seq + 1) {  // a gap or a repeat is damage, wherever it is
                out.damage =
                    resilite::detail::format("line at byte {}: sequence {} after {}", pos, w.seq, last_seq);
                break;
            }
            last_seq = w.seq;
            out.entries.push_back(std::move(w));
        }
        pos = nl + 1;
        good = pos;
    }
    if (valid_bytes != nullptr) *valid_bytes = good;
    return out;
}

class write_queue {
public:
    explicit write_queue(const std::filesystem::path& db)
        : path_(db.string() + "-resilite-queue"), rejected_path_(db.string() + "-resilite-queue-rejected") {}
    write_queue(const write_queue&) = delete;
    write_queue& operator=(const write_queue&) = delete;

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    [[nodiscard]] const std::filesystem::path& rejected_path() const noexcept { return rejected_path_; }

    // Entries waiting as far as this process knows (health()); another process's appends are
    // seen at its next look at the file. No file: none waits (another process replayed them).
    [[nodiscard]] std::size_t depth() const noexcept {
        const auto d = depth_.load(std::memory_order_relaxed);
        return d == 0 || pending() ? d : 0;
    }
    [[nodiscard]] std::size_t rejected() const noexcept { return rejected_.load(std::memory_order_relaxed); }

    // Is there a queue file (of any process)? One stat.
    [[nodiscard]] bool pending() const noexcept {
        struct stat st {};
        return ::stat(path_.c_str(), &st) == 0;
    }

    // The statement and its arguments as exact literals (SQLite itself checks each REAL reads
    // back bit for bit). Nothing touches the database: a scratch in-memory connection binds them.
    template <class... Args>
    [[nodiscard]] queued_write encode(std::string_view op, std::string_view sql, const Args&... args) {
        if (op == "exec") refuse_unreplayable(sql);
        queued_write w;
        w.op = std::string{op};
        w.sql = std::string{sql};
        if constexpr (sizeof...(Args) > 0) {
            std::lock_guard lock(scratch_mutex_);
            if (!scratch_) scratch_.emplace(":memory:");
            std::string select = "SELECT ?1";
            for (std::size_t i = 2; i <= sizeof...(Args); ++i)
                fmt::format_to(std::back_inserter(select), ",?{}", i);
            auto stmt = scratch_->prepare(select);
            stmt.bind_all_static(args...);
            static_cast<void>(stmt.step());
            for (int i = 0; i < static_cast<int>(sizeof...(Args)); ++i) {
                std::string literal;
                archive::append_literal(literal, *scratch_, stmt.native_handle(), i);
                w.args.push_back(std::move(literal));
            }
        }
        return w;
    }

    // An exec() that could never be replayed is refused now, as the database would refuse it,
    // instead of being answered "queued" and set aside at its replay: more than one statement
    // (class misuse), none (class misuse), a syntax error (class sql), or a statement that begins or ends a
    // transaction or cannot run inside one (each queued write is replayed inside a transaction
    // of its own; class misuse). Names are not checked: the tables are the database's.
    void refuse_unreplayable(std::string_view sql) {
        const char* const begin = sql.data();
        const char* const end = begin + sql.size();
        // One statement: the text up to the first complete one, then nothing but separators.
        for (std::size_t at = sql.find(';'); at != std::string_view::npos; at = sql.find(';', at + 1)) {
            if (sqlite3_complete(std::string{sql.substr(0, at + 1)}.c_str()) == 0) continue;
            if (!sqlite::statement::nothing_but_separators(begin + at + 1, end))
                throw refusal(sql, error_class::misuse,
                              "the SQL text holds more than one statement; run scripts with exec_script() when the "
                              "database is available");
            break;
        }
        // What only the parser says (on an empty database: "no such table" is not its to say).
        std::lock_guard lock(scratch_mutex_);
        if (!scratch_) scratch_.emplace(":memory:");
        sqlite3_stmt* stmt = nullptr;
        const int rc = sqlite3_prepare_v2(scratch_->native_handle(), begin, static_cast<int>(sql.size()), &stmt, nullptr);
        const bool empty = rc == SQLITE_OK && stmt == nullptr;  // only blanks and comments
        sqlite3_finalize(stmt);
        if (empty)
            throw refusal(sql, error_class::misuse,
                          "the SQL text holds no statement: there is nothing to queue or replay");
        if (rc != SQLITE_OK) {
            const std::string_view message = sqlite3_errmsg(scratch_->native_handle());
            if (message.starts_with("near \"") || message.starts_with("unrecognized token") ||
                message == "incomplete input")
                throw sqlite_failure(scratch_->native_handle(), rc, "exec", sql, database_path());
        }
        if (runs_as_given(sql))
            throw refusal(sql, error_class::misuse,
                          "this PRAGMA cannot be queued: each queued write is replayed inside a transaction of "
                          "its own, where SQLite ignores it; give it to options.on_connect");
        const char* word = sqlite::statement::skip_separators(begin, end);
        std::string first;
        for (; word < end && std::isalpha(static_cast<unsigned char>(*word)) != 0; ++word)
            first += static_cast<char>(std::toupper(static_cast<unsigned char>(*word)));
        for (const std::string_view control :
             {"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE", "VACUUM", "ATTACH", "DETACH"}) {
            if (first == control)
                throw refusal(sql, error_class::misuse,
                              resilite::detail::format(
                                  "{} cannot be queued: each queued write is replayed inside a transaction "
                                  "of its own; run it when the database is available",
                                  control));
        }
    }

    [[nodiscard]] error refusal(std::string_view sql, error_class klass, std::string note) const {
        technical_detail d;
        d.operation = "exec";
        d.sql = sql;
        d.note = std::move(note);
        d.database_path = database_path();
        return error{klass, std::move(d)};
    }

    [[nodiscard]] std::string database_path() const {
        const auto queue = path_.string();
        return queue.substr(0, queue.size() - std::string_view{"-resilite-queue"}.size());
    }

    // Appends the write (its sequence number set here) and syncs it; returns the number. Throws
    // class degraded when the queue holds `capacity` writes already, io when it cannot be written.
    std::uint64_t append(queued_write w, std::size_t capacity, std::chrono::system_clock::time_point utc) {
        std::lock_guard in_process(file_mutex_);
        file f = open_locked(true);
        struct stat st {};
        if (::fstat(f.fd, &st) != 0) fail_io("fstat");
        std::uint64_t last = 0;
        std::size_t count = 0;
        std::string generation;
        std::optional<cached> known;
        {
            std::lock_guard c(cache_mutex_);
            known = cache_;
        }
        if (known && known->ino == st.st_ino && known->size == static_cast<std::uint64_t>(st.st_size)) {
            last = known->last_seq;
            count = known->count;
        } else if (st.st_size > 0) {
            const auto bytes = read_all(f.fd);
            std::size_t valid = 0;
            auto contents = parse_queue(bytes, &valid);
            if (!contents.damage.empty()) {
                throw library_failure(error_class::degraded, "queue",
                                      resilite::detail::format(
                                          "the write queue {} is damaged ({}): nothing more is queued until "
                                          "a replay sets it aside",
                                          path_.string(), contents.damage),
                                      path_.string());
            }
            if (valid < bytes.size()) {  // a crash cut the last append short: never acknowledged
                if (::ftruncate(f.fd, static_cast<off_t>(valid)) != 0) fail_io("ftruncate");
            }
            if (valid == 0) st.st_size = 0;  // (the header itself was cut short)
            last = contents.entries.empty() ? 0 : contents.entries.back().seq;
            count = contents.entries.size();
        }
        if (count >= capacity) {
            throw library_failure(
                error_class::degraded, "queue",
                resilite::detail::format("the database is unavailable and the write queue is full ({} of {} "
                                         "writes); the write was not queued",
                                         count, capacity),
                path_.string());
        }
        std::string out;
        if (st.st_size == 0) {
            out += line(resilite::detail::format("{{\"generation\":{},\"resilite_queue\":1}}",
                                                 json_string(new_generation())));
        }
        w.seq = last + 1;
        w.at = utc_format(utc, "%Y-%m-%dT%H:%M:%S") + "Z";
        out += entry_line(w);
        write_all(f.fd, out);
        if (::fdatasync(f.fd) != 0) fail_io("fdatasync");
        if (st.st_size == 0 && !fsync_path(path_.parent_path().empty() ? "." : path_.parent_path(), true))
            fail_io("fsync of the directory");
        if (::fstat(f.fd, &st) != 0) fail_io("fstat");
        {
            std::lock_guard c(cache_mutex_);
            cache_ = cached{static_cast<std::uint64_t>(st.st_ino), static_cast<std::uint64_t>(st.st_size), w.seq,
                            count + 1};
        }
        depth_.store(count + 1, std::memory_order_relaxed);
        return w.seq;
    }

    // The file, held exclusively (no process appends) until it is released or removed.
    class held {
    public:
        held() = default;
        held(held&& o) noexcept : contents(std::move(o.contents)), fd_(std::exchange(o.fd_, -1)) {}
        held& operator=(held&&) = delete;
        held(const held&) = delete;
        ~held() {
            if (fd_ >= 0) ::close(fd_);  // releases the flock
        }
        [[nodiscard]] bool open() const noexcept { return fd_ >= 0; }
        void release() noexcept {
            if (fd_ >= 0) ::close(std::exchange(fd_, -1));
        }
        queue_contents contents;

    private:
        friend class write_queue;
        int fd_ = -1;
    };

    // For a replay: nothing when there is no queue file.
    [[nodiscard]] held take() {
        held h;
        file f = open_locked(false);
        if (f.fd < 0) return h;
        h.contents = parse_queue(read_all(f.fd));
        h.fd_ = std::exchange(f.fd, -1);
        depth_.store(h.contents.entries.size(), std::memory_order_relaxed);
        return h;
    }

    // Every entry is in the database: the file goes (under its lock, so no append is lost).
    void remove(held& h) {
        std::error_code ec;
        std::filesystem::remove(path_, ec);
        if (ec) fail_io("remove");
        static_cast<void>(fsync_path(path_.parent_path().empty() ? "." : path_.parent_path(), true));
        forget_file();
        h.release();
    }

    // A damaged file: renamed aside whole, never replayed in part. Returns the new name.
    std::filesystem::path set_aside(held& h, std::chrono::system_clock::time_point utc) {
        const auto aside = std::filesystem::path{
            resilite::detail::format("{}.damaged-{}", path_.string(), utc_format(utc, "%Y%m%dT%H%M%SZ"))};
        std::error_code ec;
        std::filesystem::rename(path_, aside, ec);
        if (ec) fail_io("rename");
        static_cast<void>(fsync_path(path_.parent_path().empty() ? "." : path_.parent_path(), true));
        forget_file();
        h.release();
        return aside;
    }

    // A write SQLite refused on replay (a constraint, say): kept, with why, in the rejected file.
    void reject(const queued_write& w, std::string_view generation, std::string_view why) {
        const int fd = ::open(rejected_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0) fail_io("open of the rejected file");
        try {
            write_all(fd, entry_line(w, generation, why));
            if (::fdatasync(fd) != 0) fail_io("fdatasync of the rejected file");
        } catch (...) {
            ::close(fd);
            throw;
        }
        ::close(fd);
        rejected_.fetch_add(1, std::memory_order_relaxed);
    }

    void forget_file() noexcept {
        std::lock_guard c(cache_mutex_);
        cache_.reset();
        depth_.store(0, std::memory_order_relaxed);
    }

    void forget_one() noexcept {
        if (auto d = depth_.load(); d > 0) depth_.store(d - 1, std::memory_order_relaxed);
    }

private:
    struct file {
        int fd = -1;
        file() = default;
        explicit file(int f) : fd(f) {}
        file(file&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
        file& operator=(file&& o) noexcept {
            std::swap(fd, o.fd);
            return *this;
        }
        ~file() {
            if (fd >= 0) ::close(fd);
        }
    };
    struct cached {
        std::uint64_t ino = 0, size = 0, last_seq = 0;
        std::size_t count = 0;
    };

    [[noreturn]] void fail_io(std::string_view what) const {
        throw library_failure(errno_class(errno), "queue",
                              resilite::detail::format("the write queue {}: {} failed: {}", path_.string(),
                                                       what, std::strerror(errno)),
                              path_.string());
    }

    // Opens and flocks the file at the path; again if a replay removed or renamed it meanwhile
    // (its lock was on the old file).
    [[nodiscard]] file open_locked(bool create) {
        for (;;) {
            file f{::open(path_.c_str(), O_RDWR | O_APPEND | O_CLOEXEC | (create ? O_CREAT : 0), 0600)};
            if (f.fd < 0) {
                if (!create && errno == ENOENT) return f;
                fail_io("open");
            }
            while (::flock(f.fd, LOCK_EX) != 0) {
                if (errno != EINTR) fail_io("flock");
            }
            struct stat held_st {}, path_st {};
            if (::fstat(f.fd, &held_st) != 0) fail_io("fstat");
            if (::stat(path_.c_str(), &path_st) == 0 && path_st.st_ino == held_st.st_ino &&
                path_st.st_dev == held_st.st_dev)
                return f;
            if (!create && errno == ENOENT) return file{};
        }
    }

    [[nodiscard]] std::string read_all(int fd) const {
        std::string bytes;
        char buf[65536];
        off_t at = 0;
        for (;;) {
            const auto n = ::pread(fd, buf, sizeof buf, at);
            if (n < 0) {
                if (errno == EINTR) continue;
                fail_io("read");
            }
            if (n == 0) return bytes;
            bytes.append(buf, static_cast<std::size_t>(n));
            at += n;
        }
    }

    void write_all(int fd, std::string_view bytes) const {
        while (!bytes.empty()) {
            const auto n = ::write(fd, bytes.data(), bytes.size());
            if (n < 0) {
                if (errno == EINTR) continue;
                fail_io("write");
            }
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
    }

    [[nodiscard]] static std::string line(std::string_view body) {  // (one line: JSON escapes control characters)
        return resilite::detail::format("{:08x} {}\n", text_crc32(body), body);
    }

    [[nodiscard]] static std::string entry_line(const queued_write& w, std::string_view generation = {},
                                                std::string_view rejected_because = {}) {
        return line(queue_entry_json(w, generation, rejected_because));
    }

    [[nodiscard]] static std::string new_generation() {
        std::random_device rd;
        const std::uint64_t g = (static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^
                                static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
        return resilite::detail::format("{:016x}", g);
    }

    std::filesystem::path path_, rejected_path_;
    std::mutex scratch_mutex_;
    std::optional<sqlite::connection> scratch_;
    std::mutex file_mutex_;  // appends of this process one at a time (for cache_)
    std::mutex cache_mutex_;
    std::optional<cached> cache_;  // the file as this process last wrote it (guarded by cache_mutex_)
    std::atomic<std::size_t> depth_{0};
    std::atomic<std::size_t> rejected_{0};
};

}  // namespace resilite::detail
