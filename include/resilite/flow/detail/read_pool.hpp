#pragma once
// Read connections (settings().read_connections): read-only connections on the database file
// for the reads a Database runs outside a transaction, so that threads sharing one Database read
// beside each other and beside its writer (WAL lets them) instead of taking turns on its one
// connection. Opened lazily, up to the size, and only while the writer connection is in place:
// whoever closes or replaces that connection (a heal, a reconnect, close) closes the pool first,
// waiting for the reads in flight, and opens it again once a sound connection is back. A read
// connection must be on the same file as the writer (device and inode) and hold the same
// identity; a file replaced at the path (another process's heal) sends reads to the writer
// connection, which follows it.

#include <resilite/core/error.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/sqlite/connection.hpp>
#include <resilite/sqlite/detail/identity.hpp>

#include <fmt/format.h>

#include <sqlite3.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace resilite::detail {

// What a read connection is opened with, taken from the writer's when the pool opens.
struct reader_setup {
    std::filesystem::path path;
    std::string vfs;
    std::size_t cache_capacity = 64;
    std::chrono::milliseconds busy_timeout{0};
    std::function<void(sqlite::connection&)> on_connect;
    std::uint64_t dev = 0, ino = 0;  // the writer connection's file
    std::string identity;            // empty: none to compare
    bool follow_replaced = false;    // healing<>: a heal elsewhere sends reads to the writer's path
    // healing<>: the gate's mapped heal count (core/detail/file_gate.hpp) and the count the
    // writer's file was seen at; no mapping: one stat per read instead.
    const std::uint64_t* heals = nullptr;
    std::uint64_t heals_seen = 0;
};

[[nodiscard]] inline bool same_file(const std::filesystem::path& path, std::uint64_t dev, std::uint64_t ino) noexcept {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && static_cast<std::uint64_t>(st.st_dev) == dev &&
           static_cast<std::uint64_t>(st.st_ino) == ino;
}

class read_pool {
    struct reader {
        std::unique_ptr<sqlite::connection> conn;
        std::chrono::milliseconds busy{0};  // what its busy handler has now
        std::uint64_t generation = 0;       // forget_cached_pages() calls when it was taken
    };

public:
    // One read connection, for one operation; given back when it ends (or closed, if the read
    // failed in a way that may have left it unusable).
    class lease {
    public:
        lease(read_pool* pool, reader r) : pool_(pool), r_(std::move(r)) {}
        lease(const lease&) = delete;
        lease& operator=(const lease&) = delete;
        lease(lease&& o) noexcept : pool_(std::exchange(o.pool_, nullptr)), r_(std::move(o.r_)), keep_(o.keep_) {}
        lease& operator=(lease&&) = delete;
        ~lease() {
            if (pool_ != nullptr) pool_->give_back(std::move(r_), keep_);
        }

        [[nodiscard]] sqlite::connection& connection() noexcept { return *r_.conn; }
        void discard() noexcept { keep_ = false; }
        // A retried attempt: SQLite's busy wait never runs past what is left of the deadline.
        void busy_timeout(std::chrono::milliseconds wait) {
            if (wait == r_.busy) return;
            r_.conn->busy_timeout(wait);
            r_.busy = wait;
        }

    private:
        read_pool* pool_;
        reader r_;
        bool keep_ = true;
    };

    read_pool() = default;
    read_pool(const read_pool&) = delete;
    read_pool& operator=(const read_pool&) = delete;
    ~read_pool() { close(); }

    // One atomic load: false while closed (size 0, no writer connection, a heal, a failed open).
    [[nodiscard]] bool enabled() const noexcept { return enabled_.load(std::memory_order_acquire); }

    // The writer's path looked at the file again at this heal count, and kept it.
    void heals_seen(std::uint64_t n) noexcept { heals_seen_.store(n); }

    // Opens the pool on the file the writer connection has open (the caller holds the writer
    // lock; the connections themselves open at the first reads).
    void open(reader_setup setup, std::size_t size) {
        std::lock_guard lock(mutex_);
        if (path_.empty()) path_ = setup.path;  // (a Database's path never changes: read without the mutex)
        dev_.store(setup.dev);
        ino_.store(setup.ino);
        follow_replaced_.store(setup.follow_replaced);
        heals_.store(setup.heals);
        heals_seen_.store(setup.heals_seen);
        setup_ = std::move(setup);
        size_ = size;
        failure_.clear();
        enabled_.store(size > 0, std::memory_order_release);
    }

    // Closed until open() again: reads go to the writer connection. Waits for the reads in flight
    // (none of them waits for the writer lock the caller holds), then closes every connection.
    void close() noexcept {
        std::vector<reader> doomed;
        {
            std::unique_lock lock(mutex_);
            enabled_.store(false, std::memory_order_release);
            changed_.notify_all();
            changed_.wait(lock, [&] { return leased_ == 0; });
            doomed.swap(idle_);
            open_ = 0;
        }
    }

    // A read connection, or nothing: the pool is closed, the file at the path is not the one it
    // reads (the writer's path follows a replaced file), or a connection could not be opened
    // (why: failure()). Waits while every connection is in use.
    [[nodiscard]] std::optional<lease> take() {
        if (!enabled()) return std::nullopt;  // (acquire: path_ is set)
        if (follow_replaced_.load(std::memory_order_relaxed) && replaced()) return std::nullopt;
        std::unique_lock lock(mutex_);
        for (;;) {
            if (!enabled_.load(std::memory_order_relaxed)) return std::nullopt;
            if (!idle_.empty()) {
                reader r = std::move(idle_.back());
                idle_.pop_back();
                r.generation = generation_;
                ++leased_;
                const auto busy = setup_.busy_timeout;
                lock.unlock();
                lease l{this, std::move(r)};
                l.busy_timeout(busy);  // (a retried read may have shortened it)
                return l;
            }
            if (open_ < size_) break;
            // Every connection in use: wait for one, at most SQLite's busy wait, then read on the
            // writer connection (a read inside a user function of a read connection, with a pool
            // of one, would otherwise wait for itself).
            if (changed_.wait_for(lock, setup_.busy_timeout) == std::cv_status::timeout && idle_.empty() &&
                open_ >= size_)
                return std::nullopt;
        }
        ++open_;
        ++leased_;
        const reader_setup setup = setup_;  // (opening takes a while: not under the mutex)
        const auto generation = generation_;
        lock.unlock();
        try {
            auto r = open_reader(setup);
            r.generation = generation;
            return lease{this, std::move(r)};
        } catch (...) {  // (on_connect is the user's: it may throw anything)
            std::string why = "an exception that is not a std::exception";
            try {
                throw;
            } catch (const std::exception& e) {
                why = e.what();
            } catch (...) {
            }
            lock.lock();
            --open_;
            --leased_;
            // Until the writer connection is put in place again: reads use it meanwhile.
            enabled_.store(false, std::memory_order_release);
            failure_ = std::move(why);
            failure_new_ = true;
            changed_.notify_all();
            return std::nullopt;
        }
    }

    // Why a read connection could not be opened, once (empty: none failed, or already taken):
    // the caller reports it.
    [[nodiscard]] std::string take_failure() {
        std::lock_guard lock(mutex_);
        if (!failure_new_) return {};
        failure_new_ = false;
        return failure_;
    }

    // Damage repaired by hand while open: a page a connection cached may be the damaged one (SQLite
    // trusts its cache until the WAL index says the file changed, and a repair by hand does not
    // touch it). Idle connections drop their caches; one in use is closed when given back.
    void forget_cached_pages() noexcept {
        std::lock_guard lock(mutex_);
        for (auto& r : idle_) sqlite3_db_release_memory(r.conn->native_handle());
        ++generation_;
    }

    // Connections open now, in use or idle (for tests and health).
    [[nodiscard]] std::size_t connections() const {
        std::lock_guard lock(mutex_);
        return open_;
    }

private:
    // A heal counted since the writer's path last looked (a load), or, without the gate's
    // mapping, the file at the path is not the writer's (a stat).
    [[nodiscard]] bool replaced() const noexcept {
        if (const auto* h = heals_.load(std::memory_order_relaxed))
            return __atomic_load_n(h, __ATOMIC_ACQUIRE) != heals_seen_.load(std::memory_order_relaxed);
        return !same_file(path_, dev_.load(), ino_.load());
    }

    [[nodiscard]] static reader open_reader(const reader_setup& s) {
        reader r;
        r.conn = std::make_unique<sqlite::connection>(s.path, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                                                      s.vfs.empty() ? nullptr : s.vfs.c_str(), s.cache_capacity);
        r.conn->busy_timeout(s.busy_timeout);
        r.busy = s.busy_timeout;
        // TEMP objects are the writer connection's: a read naming the temp schema is refused here
        // (SQLITE_AUTH) and runs there. Set before on_connect: an authorizer of its own wins.
        sqlite3_set_authorizer(r.conn->native_handle(), &refuse_temp, nullptr);
        if (s.on_connect) s.on_connect(*r.conn);
        // The file this connection has open holds the database's identity, and is still the one
        // at the path, the writer's (after its first read, when SQLite has opened the -wal too:
        // a file replaced meanwhile fails here).
        if (!s.identity.empty()) {
            const auto id = read_identity(*r.conn);
            if (id != s.identity)
                throw library_failure(
                    error_class::corrupt, "read connection",
                    resilite::detail::format("the read connection found identity {}, the database has {}",
                                             id.value_or("(none)"), s.identity),
                    s.path.string());
        }
        int moved = 0;
        if (sqlite3_file_control(r.conn->native_handle(), "main", SQLITE_FCNTL_HAS_MOVED, &moved) != SQLITE_OK ||
            moved != 0 || !same_file(s.path, s.dev, s.ino))
            throw library_failure(error_class::cant_open, "read connection",
                                  "the file at the path is no longer the one the database has open", s.path.string());
        return r;
    }

    // (A count(*) of sqlite_temp_master is authorized without its schema's name.)
    static int refuse_temp(void*, int action, const char* table, const char*, const char* schema,
                           const char*) noexcept {
        if (action != SQLITE_READ) return SQLITE_OK;
        const bool temp = (schema != nullptr && std::string_view{schema} == "temp") ||
                          (table != nullptr && std::string_view{table}.starts_with("sqlite_temp_"));
        return temp ? SQLITE_DENY : SQLITE_OK;
    }

    void give_back(reader r, bool keep) noexcept {
        std::lock_guard lock(mutex_);
        --leased_;
        if (keep && enabled_.load(std::memory_order_relaxed) && r.generation == generation_) {
            idle_.push_back(std::move(r));
        } else {
            --open_;
            r.conn.reset();
        }
        changed_.notify_all();
    }

    mutable std::mutex mutex_;
    std::condition_variable changed_;  // a connection given back, or the pool closed
    std::atomic<bool> enabled_{false};
    reader_setup setup_;                        // guarded by mutex_
    // What take() compares the file at the path with, without the mutex.
    std::filesystem::path path_;
    std::atomic<std::uint64_t> dev_{0}, ino_{0};
    std::atomic<bool> follow_replaced_{false};
    std::atomic<const std::uint64_t*> heals_{nullptr};
    std::atomic<std::uint64_t> heals_seen_{0};
    std::size_t size_ = 0, open_ = 0, leased_ = 0;  // guarded by mutex_
    std::uint64_t generation_ = 0;              // guarded by mutex_
    std::vector<reader> idle_;                  // guarded by mutex_
    std::string failure_;                       // guarded by mutex_
    bool failure_new_ = false;                  // guarded by mutex_
};

}  // namespace resilite::detail
