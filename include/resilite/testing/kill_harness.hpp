#pragma once
// resilite::testing::run_and_kill: a real process kill. A child process runs `work(report)`,
// calling report(n) after each commit it has seen acknowledged; the parent sends SIGKILL after
// `delay` and returns every number the child reported. Whatever the child reported must be in
// the database afterwards.

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace resilite::testing {

struct kill_result {
    std::vector<std::int64_t> acknowledged;  // in the order reported
    bool killed = false;                     // false when the child had finished first
};

template <class Work>
kill_result run_and_kill(Work&& work, std::chrono::microseconds delay) {
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
    if (::read(fds[0], &ready, 1) != 1) throw std::runtime_error("the child did not start");
    std::this_thread::sleep_for(delay);
    ::kill(pid, SIGKILL);
    kill_result r;
    std::int64_t n = 0;
    while (::read(fds[0], &n, sizeof n) == static_cast<ssize_t>(sizeof n))
        r.acknowledged.push_back(n);
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    return r;
}

}  // namespace resilite::testing
