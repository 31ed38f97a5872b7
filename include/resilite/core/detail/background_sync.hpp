#pragma once
// One fdatasync at a time on a helper thread, so that a flush overlaps other work: a
// written-ahead record's segment is made durable while SQLite's COMMIT makes the WAL durable
// (docs/design-notes.md, "What an archived commit costs"), a heal's candidate while it is
// checked. The caller always waits for the result before it touches the descriptor again or
// acknowledges anything.
//
// The thread starts at the first sync. A process forked from the one that started it has no
// such thread: there the sync runs on the caller, as it would without a helper.

#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>

namespace resilite::detail {

class background_sync {
public:
    background_sync() = default;
    background_sync(const background_sync&) = delete;
    background_sync& operator=(const background_sync&) = delete;
    ~background_sync() {
        if (!worker_.joinable()) return;
        if (::getpid() != owner_) {  // a forked child: the thread is not here to stop
            worker_.detach();
            return;
        }
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        worker_.join();
    }

    // Starts fdatasync(fd); `fail` (a test's injected fault) makes it report EIO after syncing.
    // Runs it here, at once, when no helper thread can be had. Call wait() before the next start.
    void start(int fd, bool fail = false) noexcept {
        outstanding_ = true;
        ran_here_ = !helper_ready();
        if (ran_here_) {
            result_ = sync_now(fd, fail);
            return;
        }
        {
            std::lock_guard lock(mutex_);
            fd_ = fd;
            fail_ = fail;
            state_ = state::asked;
        }
        wake_.notify_all();
    }

    // The result of the last start() not waited for yet: 0, or the errno of a failed sync.
    // Waits for it; 0 at once when there is none.
    [[nodiscard]] int wait() noexcept {
        if (!std::exchange(outstanding_, false)) return 0;
        if (ran_here_) return result_;
        if (::getpid() != owner_) return EIO;  // forked while a sync ran: no helper here to finish it
        std::unique_lock lock(mutex_);
        done_.wait(lock, [&] { return state_ == state::done; });
        state_ = state::idle;
        return result_;
    }

private:
    enum class state { idle, asked, done };

    [[nodiscard]] static int sync_now(int fd, bool fail) noexcept {
        int rc = ::fdatasync(fd);
        while (rc != 0 && errno == EINTR) rc = ::fdatasync(fd);
        if (rc != 0) return errno;
        return fail ? EIO : 0;
    }

    [[nodiscard]] bool helper_ready() noexcept {
        if (worker_.joinable()) return ::getpid() == owner_;
        try {
            owner_ = ::getpid();
            worker_ = std::thread([this] { loop(); });
            return true;
        } catch (...) {  // no thread to be had: the caller syncs
            return false;
        }
    }

    void loop() noexcept {
        std::unique_lock lock(mutex_);
        for (;;) {
            wake_.wait(lock, [&] { return stopping_ || state_ == state::asked; });
            if (stopping_) return;
            const int fd = fd_;
            const bool fail = fail_;
            lock.unlock();
            const int r = sync_now(fd, fail);
            lock.lock();
            result_ = r;
            state_ = state::done;
            done_.notify_all();
        }
    }

    std::mutex mutex_;
    std::condition_variable wake_, done_;
    state state_ = state::idle;
    int fd_ = -1;
    bool fail_ = false;
    bool stopping_ = false;
    bool ran_here_ = false;     // (the caller's thread only)
    bool outstanding_ = false;  // (the caller's thread only)
    int result_ = 0;
    pid_t owner_ = 0;
    std::thread worker_;  // last: started after everything it uses
};

}  // namespace resilite::detail
