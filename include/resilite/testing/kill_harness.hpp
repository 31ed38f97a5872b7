#pragma once
// resilite::testing::run_and_kill: a real process kill. A child process runs `work(report)`,
// calling report(n) after each commit it has seen acknowledged; the parent sends SIGKILL and
// returns every number the child reported. Whatever the child reported must be in the database
// afterwards. The kill comes either after the child has reported N commits
// (after_acknowledged{N}: the moment then falls wherever the child is in its next commit), or
// after a wall-clock delay. Prefer the first in tests: how many commits a child gets through in
// a given time depends on how loaded the machine is.

#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <utility>
#include <unistd.h>
#include <vector>

namespace resilite::testing {

struct kill_result {
    std::vector<std::int64_t> acknowledged;  // in the order reported
    bool killed = false;                     // false when the child had finished first
};

// Kill once the child has reported this many acknowledged commits.
struct after_acknowledged {
    std::size_t count = 1;
};

namespace detail {
struct child_process {
    pid_t pid = -1;
    int reports = -1;  // read end of the pipe the child reports through
};

// Forks; the child runs work(report) and exits. Returns once the child is running.
template <class Work>
child_process start_child(Work& work) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        ::close(fds[0]);
        const int out = fds[1];
        const char ready = 'r';
        if (::write(out, &ready, 1) != 1) ::_exit(2);
        std::function<void(std::int64_t)> report = [out](std::int64_t n) {
            // 8 bytes: below PIPE_BUF, so each report arrives whole or not at all.
            if (::write(out, &n, sizeof n) != static_cast<ssize_t>(sizeof n)) ::_exit(2);
        };
        try {
            work(report);
        } catch (...) {
            ::_exit(3);
        }
        ::_exit(0);
    }
    ::close(fds[1]);
    char ready = 0;
    if (::read(fds[0], &ready, 1) != 1) {
        ::close(fds[0]);
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        throw std::runtime_error("the child did not start");
    }
    return {pid, fds[0]};
}

// Reads reports until `limit` more have arrived or the child closed the pipe (it ended).
// Returns true when the limit was reached.
inline bool read_reports(int fd, kill_result& r, std::size_t limit) {
    std::int64_t n = 0;
    for (std::size_t got = 0; got < limit; ++got) {
        if (::read(fd, &n, sizeof n) != static_cast<ssize_t>(sizeof n)) return false;
        r.acknowledged.push_back(n);
    }
    return true;
}

// Kills the child (a no-op if it already ended), collects what it reported before dying and
// reaps it.
inline kill_result kill_and_collect(child_process c, kill_result r) {
    ::kill(c.pid, SIGKILL);
    static_cast<void>(read_reports(c.reports, r, static_cast<std::size_t>(-1)));
    ::close(c.reports);
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    r.killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    return r;
}
}  // namespace detail

// Kills the child once it has reported `when.count` commits (or collects it if it ends first:
// killed is then false).
template <class Work>
kill_result run_and_kill(Work&& work, after_acknowledged when) {
    const auto child = detail::start_child(work);
    kill_result r;
    static_cast<void>(detail::read_reports(child.reports, r, when.count));
    return detail::kill_and_collect(child, std::move(r));
}

// Kills the child `delay` after it started. How many commits it acknowledges by then depends on
// the machine's speed; tests that need some should use after_acknowledged.
template <class Work>
kill_result run_and_kill(Work&& work, std::chrono::microseconds delay) {
    const auto child = detail::start_child(work);
    std::this_thread::sleep_for(delay);
    return detail::kill_and_collect(child, kill_result{});
}

}  // namespace resilite::testing
