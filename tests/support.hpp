#pragma once
// Shared test helpers: temporary directories (never the working directory) and an observer
// that records events.

#include <resilite/resilite.hpp>
#include <resilite/testing/corruption.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace test {

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class temp_dir {
public:
    temp_dir() {
        std::string templ = (std::filesystem::temp_directory_path() / "resilite-test-XXXXXX").string();
        if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        path_ = templ;
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }
    [[nodiscard]] std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

// A small tmpfs mounted at <dir>/<name> for disk-full tests, unmounted at scope exit. Mounting
// needs root (CI runs as root); elsewhere mounted() is false and the test says so.
class small_volume {
public:
    small_volume(const std::filesystem::path& dir, std::string_view size, std::string name = "small")
        : path_(dir / name) {
        std::filesystem::create_directories(path_);
        const auto cmd = "mount -t tmpfs -o size=" + std::string{size} + " tmpfs '" + path_.string() +
                         "' 2>/dev/null";
        mounted_ = std::system(cmd.c_str()) == 0;
    }
    small_volume(const small_volume&) = delete;
    small_volume& operator=(const small_volume&) = delete;
    ~small_volume() {
        if (mounted_) static_cast<void>(std::system(("umount '" + path_.string() + "'").c_str()));
    }
    [[nodiscard]] bool mounted() const { return mounted_; }
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }
    // Read-only from now on, as a volume the kernel remounted after errors (nothing of it may be
    // open for writing: the remount is refused then).
    [[nodiscard]] bool remount_read_only() const {
        return mounted_ && std::system(("mount -o remount,ro '" + path_.string() + "' 2>/dev/null").c_str()) == 0;
    }

private:
    std::filesystem::path path_;
    bool mounted_ = false;
};

// An owned copy of a resilite::event.
struct recorded_event {
    std::string name;
    resilite::outcome result;
    std::chrono::nanoseconds duration;
    std::int64_t rows;
    int attempts;
    resilite::error_class error;
    std::string detail;
};

// Shared by copies, so the observer inside a Database and the test see the same list.
class event_log {
public:
    [[nodiscard]] resilite::callback_observer observer() const {
        auto s = state_;
        return resilite::callback_observer{[s](const resilite::event& e) {
            {
                std::lock_guard lock(s->mutex);
                s->events.push_back({std::string{e.name}, e.result, e.duration, e.rows, e.attempts, e.error,
                                     std::string{e.detail}});
            }
            s->cv.notify_all();
        }};
    }
    [[nodiscard]] std::vector<recorded_event> events() const {
        std::lock_guard lock(state_->mutex);
        return state_->events;
    }
    [[nodiscard]] std::size_t count(const std::string& name) const {
        std::lock_guard lock(state_->mutex);
        std::size_t n = 0;
        for (const auto& e : state_->events)
            n += e.name == name ? 1 : 0;
        return n;
    }
    void clear() {
        std::lock_guard lock(state_->mutex);
        state_->events.clear();
    }
    // Waits (on a condition variable, not a sleep) until `name` has been seen n times.
    bool wait_for(const std::string& name, std::size_t n,
                  std::chrono::seconds limit = std::chrono::seconds{20}) {
        return wait_for_any({name}, n, limit);
    }
    // The same for any of several names (e.g. "retry" or the operation's own end).
    bool wait_for_any(const std::vector<std::string>& names, std::size_t n,
                      std::chrono::seconds limit = std::chrono::seconds{20}) {
        std::unique_lock lock(state_->mutex);
        return state_->cv.wait_for(lock, limit, [&] {
            std::size_t seen = 0;
            for (const auto& e : state_->events)
                seen += std::find(names.begin(), names.end(), e.name) != names.end() ? 1 : 0;
            return seen >= n;
        });
    }

private:
    struct state {
        std::mutex mutex;
        std::condition_variable cv;
        std::vector<recorded_event> events;
    };
    std::shared_ptr<state> state_ = std::make_shared<state>();
};

// Background thread off, so tests decide when maintenance runs.
using manual_durability = resilite::wal_durability<resilite::synchronous::full, 60, 64, false>;

// Retries that give up within milliseconds, so busy tests stay fast: 4 attempts, 1..8 ms apart.
using fast_retry = resilite::exponential_backoff<1, 8, 4>;

using recording_db = resilite::Database<resilite::callback_observer, manual_durability, fast_retry>;

inline recording_db::options recording(const event_log& log) {
    recording_db::options o;
    o.observer = log.observer();
    return o;
}

// A WAL database whose index definition was swapped: quick_check passes, integrity_check fails.
inline void database_with_swapped_index(const std::filesystem::path& path, int rows) {
    {
        resilite::sqlite::connection c{path};
        c.exec_script("PRAGMA journal_mode=WAL; CREATE TABLE t(a TEXT, b TEXT); CREATE INDEX t_a ON t(a);");
        for (int i = 0; i < rows; ++i)
            c.exec("INSERT INTO t VALUES(?, ?)", std::to_string(i), std::to_string(-i));
    }
    resilite::testing::swap_index_definition(path);
}

}  // namespace test
