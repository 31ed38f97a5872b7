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
#include <memory>
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
        if (!helper_) return;
        if (::getpid() != owner_) {
            // A forked child: the thread is not here to stop, and the condition variable it was
            // waiting on when the process forked still counts it as a waiter, so destroying it
            // would wait forever. The child's copy of the helper is left as it is.
            static_cast<void>(helper_.release());
            return;
        }
        {
            std::lock_guard lock(helper_->mutex);
            helper_->stopping = true;
        }
        helper_->wake.notify_all();
        helper_->worker.join();
    }

    // Starts fdatasync(fd); `fail` (a test's injected fault) makes it report EIO after syncing.
    // Runs it here, at once, when no helper thread can be had. Call wait() before the next start.
    void start(int fd, bool fail = false) noexcept {
        outstanding_ = true;
        ran_here_ = !helper_ready();
        if (ran_here_) {
            result_here_ = sync_now(fd, fail);
            return;
        }
        {
            std::lock_guard lock(helper_->mutex);
            helper_->fd = fd;
            helper_->fail = fail;
            helper_->state = step::asked;
        }
        helper_->wake.notify_all();
    }

    // The result of the last start() not waited for yet: 0, or the errno of a failed sync.
    // Waits for it; 0 at once when there is none.
    [[nodiscard]] int wait() noexcept {
        if (!std::exchange(outstanding_, false)) return 0;
        if (ran_here_) return result_here_;
        if (::getpid() != owner_) return EIO;  // forked while a sync ran: no helper here to finish it
        std::unique_lock lock(helper_->mutex);
        helper_->done.wait(lock, [&] { return helper_->state == step::done; });
        helper_->state = step::idle;
        return helper_->result;
    }

private:
    enum class step { idle, asked, done };

    // What the caller and the helper thread share, on the heap so that a forked child can leave
    // it untouched (see the destructor).
    struct helper {
        std::mutex mutex;
        std::condition_variable wake, done;
        step state = step::idle;
        int fd = -1;
        bool fail = false;
        bool stopping = false;
        int result = 0;
        std::thread worker;  // last: started after everything it uses
    };

    [[nodiscard]] static int sync_now(int fd, bool fail) noexcept {
        int rc = ::fdatasync(fd);
        while (rc != 0 && errno == EINTR) rc = ::fdatasync(fd);
        if (rc != 0) return errno;
        return fail ? EIO : 0;
    }

    [[nodiscard]] bool helper_ready() noexcept {
        if (helper_) return ::getpid() == owner_;
        try {
            auto h = std::make_unique<helper>();
            h->worker = std::thread([h = h.get()] { loop(*h); });
            owner_ = ::getpid();
            helper_ = std::move(h);
            return true;
        } catch (...) {  // no thread to be had: the caller syncs
            return false;
        }
    }

    static void loop(helper& h) noexcept {
        std::unique_lock lock(h.mutex);
        for (;;) {
            h.wake.wait(lock, [&] { return h.stopping || h.state == step::asked; });
            if (h.stopping) return;
            const int fd = h.fd;
            const bool fail = h.fail;
            lock.unlock();
            const int r = sync_now(fd, fail);
            lock.lock();
            h.result = r;
            h.state = step::done;
            h.done.notify_all();
        }
    }

    std::unique_ptr<helper> helper_;
    pid_t owner_ = 0;
    bool ran_here_ = false;     // (the caller's thread only)
    bool outstanding_ = false;  // (the caller's thread only)
    int result_here_ = 0;
};

}  // namespace resilite::detail
