// The floor under a written-ahead archive: what making one file durable costs on this disk,
// against two (a WAL-like file rewritten in place, and a segment-like file appended to), one
// after the other and from two threads at once. No SQLite, no resilite: the disk alone.
// docs/performance.md quotes it.
//   bench_sync_floor [steps, default 500] [directory, default the temporary directory]
#include "interleave.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

namespace {
void must(bool ok, const char* what) {
    if (!ok) {
        std::perror(what);
        std::exit(1);
    }
}
}  // namespace

int main(int argc, char** argv) {
    const int steps = argc > 1 ? std::atoi(argv[1]) : 500;
    const std::filesystem::path dir = argc > 2 ? argv[2] : std::filesystem::temp_directory_path();
    const auto wal_path = dir / "resilite-sync-floor-wal";
    const auto seg_path = dir / "resilite-sync-floor-segment";
    const int wal = ::open(wal_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const int seg = ::open(seg_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    must(wal >= 0 && seg >= 0, "open");
    const std::string bytes(200, 'x');
    long long step = 0;
    const auto write_both = [&] {
        ++step;
        must(::pwrite(wal, bytes.data(), bytes.size(), (step % 50) * 4096) == static_cast<ssize_t>(bytes.size()),
             "pwrite");
        must(::write(seg, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()), "write");
    };
    // A helper thread that syncs the segment when asked (the overlapped variant).
    std::atomic<long long> asked{0}, done{0};
    std::thread helper([&] {
        long long seen = 0;
        for (;;) {
            asked.wait(seen);
            seen = asked.load();
            if (seen < 0) return;
            must(::fdatasync(seg) == 0, "fdatasync");
            done.store(seen);
            done.notify_one();
        }
    });
    long long ticket = 0;
    const auto timed = [&](auto&& one_step) {
        return bench::seconds_of([&] {
                   for (int i = 0; i < steps; ++i) {
                       write_both();
                       one_step();
                   }
               }) /
               steps * 1e3;  // ms per step
    };
    bench::interleaved runs{{
        {"WAL only", [&] { return timed([&] { must(::fdatasync(wal) == 0, "fdatasync"); }); }},
        {"segment only", [&] { return timed([&] { must(::fdatasync(seg) == 0, "fdatasync"); }); }},
        {"both in turn", [&] {
             return timed([&] {
                 must(::fdatasync(seg) == 0, "fdatasync");
                 must(::fdatasync(wal) == 0, "fdatasync");
             });
         }},
        {"both at once", [&] {
             return timed([&] {
                 const long long t = ++ticket;
                 asked.store(t);
                 asked.notify_one();
                 must(::fdatasync(wal) == 0, "fdatasync");
                 for (long long d = done.load(); d != t; d = done.load())
                     done.wait(d);
             });
         }},
    }};
    runs.run(5);
    asked.store(-1);
    asked.notify_one();
    helper.join();
    fmt::print("{} steps of a 200-byte write to each file, then the syncs; 5 rounds in turns (ms per step, medians):\n",
               steps);
    for (const char* name : {"WAL only", "segment only", "both in turn", "both at once"})
        fmt::print("  {:<14} {:6.3f} ms  {}\n", name, runs.median_of(name), runs.ratio(name, "WAL only"));
    ::close(wal);
    ::close(seg);
    std::filesystem::remove(wal_path);
    std::filesystem::remove(seg_path);
}
