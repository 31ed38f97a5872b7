#pragma once
// Runs an external command (a backup sink, rclone) without a shell of ours in between:
// posix_spawnp, stdout discarded, the last lines of stderr kept, bounded in time (the command's
// whole process group is killed when it overstays). The result says how it ended in words an
// operator can act on: "exited with code 1: <its last stderr lines>", "timed out after 600 s".

#include <resilite/detail/format.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace resilite::detail {

struct command_result {
    bool started = false;
    int exit_code = -1;   // when it exited
    int signal = 0;       // when a signal ended it
    bool timed_out = false;
    std::string stderr_tail;  // its last stderr lines (at most ~2 KiB)

    [[nodiscard]] bool ok() const noexcept { return started && exit_code == 0 && !timed_out; }

    // Empty when it succeeded; otherwise one line saying how it ended.
    [[nodiscard]] std::string failure(std::string_view what, std::chrono::seconds timeout) const {
        if (ok()) return {};
        std::string tail = stderr_tail;
        while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
        for (auto& c : tail)
            if (c == '\n') c = '|';
        const auto said = tail.empty() ? std::string{} : resilite::detail::format(": {}", tail);
        if (!started) return resilite::detail::format("{} could not be started{}", what, said);
        if (timed_out)
            return resilite::detail::format("{} timed out after {} s and was killed{}", what, timeout.count(),
                                            said);
        if (signal != 0) return resilite::detail::format("{} was ended by signal {}{}", what, signal, said);
        return resilite::detail::format("{} exited with code {}{}", what, exit_code, said);
    }
};

// argv[0] is looked up in PATH. Never throws. Waits for the command itself (not for whatever it
// left running with its stderr): once it has exited, what it wrote is read and the rest of its
// process group, if any, is left alone.
[[nodiscard]] inline command_result run_command(const std::vector<std::string>& args, std::chrono::seconds timeout) noexcept {
    command_result r;
    try {
        if (args.empty()) return r;
        int err[2];
        if (::pipe2(err, O_CLOEXEC) != 0) {
            r.stderr_tail = std::strerror(errno);
            return r;
        }
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        posix_spawn_file_actions_init(&fa);
        posix_spawnattr_init(&attr);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, err[1], 2);
        // Its own process group, so that a timeout kills what it started too (rclone's children);
        // the signals an application may ignore or block are the defaults again in it.
        posix_spawnattr_setpgroup(&attr, 0);
        sigset_t none, defaults;
        sigemptyset(&none);
        sigemptyset(&defaults);
        for (const int s : {SIGPIPE, SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT})
            sigaddset(&defaults, s);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &defaults);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        std::vector<char*> argv;
        for (const auto& a : args)
            argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        pid_t pid = -1;
        const int rc = ::posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        ::close(err[1]);
        if (rc != 0) {
            ::close(err[0]);
            r.stderr_tail = resilite::detail::format("{}: {}", args[0], std::strerror(rc));
            return r;
        }
        r.started = true;
        ::fcntl(err[0], F_SETFL, ::fcntl(err[0], F_GETFL) | O_NONBLOCK);
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        std::string tail;
        bool open = true;
        const auto read_some = [&] {
            char buf[4096];
            for (;;) {
                const auto got = ::read(err[0], buf, sizeof buf);
                if (got < 0 && errno == EINTR) continue;
                if (got == 0) open = false;
                if (got <= 0) return;
                tail.append(buf, static_cast<std::size_t>(got));
                if (tail.size() > 2048) tail.erase(0, tail.size() - 2048);
            }
        };
        int status = 0;
        bool reaped = false, failed_wait = false;
        while (!reaped) {
            const auto w = ::waitpid(pid, &status, WNOHANG);
            if (w == pid) {
                reaped = true;
                break;
            }
            if (w < 0 && errno != EINTR) {  // (SIGCHLD ignored by the application: it reaped itself)
                failed_wait = true;
                break;
            }
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                r.timed_out = true;
                ::kill(-pid, SIGKILL);
                while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
                }
                reaped = true;
                break;
            }
            // Wakes for stderr, or at least every 50 ms to see whether the command has ended.
            pollfd p{err[0], POLLIN, 0};
            const int wait_ms = static_cast<int>(std::min<long long>(left.count(), 50));
            if (open && ::poll(&p, 1, wait_ms) > 0) read_some();
            else if (!open) ::poll(nullptr, 0, wait_ms);
        }
        if (open) read_some();  // what it wrote before it ended (never waits for what it left running)
        ::close(err[0]);
        if (failed_wait) {
            r.exit_code = -1;
            tail += "\n(its exit status could not be read)";
        } else if (WIFEXITED(status)) {
            r.exit_code = WEXITSTATUS(status);
        } else if (WIFSIGNALED(status)) {
            r.signal = WTERMSIG(status);
        }
        r.stderr_tail = std::move(tail);
    } catch (...) {
    }
    return r;
}

}  // namespace resilite::detail
