// Backing up a large database while a writer commits: throughput of the online backup API and
// of VACUUM INTO against a plain file copy (cp) of the same file, and the writer's worst commit
// latency while each runs. The contenders run in turns, round after round (interleave.hpp):
// each figure is a median over the rounds, each ratio the median of the per-round ratios.
//   bench_backup [megabytes, default 1024] [rounds, default 3]
#include <resilite/resilite.hpp>

#include "interleave.hpp"

#include <fmt/format.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

namespace {
using clock_type = std::chrono::steady_clock;

template <class Db>
void fill(Db& db, std::int64_t megabytes) {
    db.with_connection([](auto& c) { c.exec_script("PRAGMA synchronous=OFF"); });  // setup only
    db.exec_script("CREATE TABLE IF NOT EXISTS big(id INTEGER PRIMARY KEY, payload BLOB NOT NULL)");
    const std::int64_t rows = megabytes * 1024;  // 1 KiB each
    resilite::blob payload(1000);
    for (std::int64_t done = 0; done < rows;) {
        db.transaction([&](auto& tx) {
            for (int i = 0; i < 20000 && done < rows; ++i, ++done) {
                payload[static_cast<std::size_t>(done % 1000)] = static_cast<std::byte>(done);
                tx.exec("INSERT INTO big(payload) VALUES(?)", payload);
            }
        });
    }
    db.with_connection(
        [](auto& c) { c.exec_script("PRAGMA synchronous=FULL; PRAGMA wal_checkpoint(TRUNCATE);"); });
}

struct writer_stats {
    std::uint64_t commits = 0;
    double worst_ms = 0;
};

// Commits small transactions until told to stop; reports the worst commit latency.
template <class Db>
writer_stats write_during(Db& db, const std::function<void()>& work) {
    std::atomic<bool> stop{false};
    writer_stats stats;
    std::thread writer([&] {
        while (!stop) {
            const auto t0 = clock_type::now();
            db.exec("INSERT INTO big(payload) VALUES(?)", resilite::blob(200));
            stats.worst_ms = std::max(
                stats.worst_ms, std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
            ++stats.commits;
        }
    });
    work();
    stop = true;
    writer.join();
    return stats;
}
// One backup of `path`, with checks at `level`, while a writer commits nonstop (or without one);
// returns the backup's seconds, and the writer's figures in `w`.
template <class Db>
double backup_once(const std::filesystem::path& path, resilite::check_level level, bool writer, writer_stats& w) {
    typename Db::options o;
    o.settings = Db::default_settings();
    o.settings->backup.check = level;
    Db db{path, o};
    resilite::backup_result r;
    if (writer) {
        w = write_during(db, [&] { r = db.backup_now(); });
    } else {
        r = db.backup_now();
    }
    return std::chrono::duration<double>(r.duration).count();
}
}  // namespace

int main(int argc, char** argv) {
    const std::int64_t megabytes = argc > 1 ? std::atoll(argv[1]) : 1024;
    std::string templ = (std::filesystem::temp_directory_path() / "resilite-bench-backup-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) return 1;
    const std::filesystem::path dir = templ;
    const auto path = dir / "big.db";
    using Online = resilite::Database<
        resilite::null_observer,
        resilite::backup<resilite::online_backup<1024, 1>, resilite::on_demand, resilite::keep_last<2>>>;
    using Vacuum = resilite::Database<
        resilite::null_observer,
        resilite::backup<resilite::vacuum_into, resilite::on_demand, resilite::keep_last<2>>>;
    {
        Online db{path};
        const auto t0 = clock_type::now();
        fill(db, megabytes);
        fmt::print("generated {} MiB in {:.1f} s\n", std::filesystem::file_size(path) >> 20,
                   std::chrono::duration<double>(clock_type::now() - t0).count());
    }
    const double size_mb = static_cast<double>(std::filesystem::file_size(path)) / (1 << 20);

    // cp of the same (closed, quiescent) file, synced like a backup is: the speed limit. Then
    // the backup API alone, and each method while a writer commits, with checks of the source
    // and the copy at header level (the copy's own speed) and at the default quick_check.
    const int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
    std::map<std::string, writer_stats> worst;  // the writer's worst over the rounds
    const auto with_writer = [&](std::string name, auto* tag, resilite::check_level level) {
        using Db = std::remove_pointer_t<decltype(tag)>;
        return bench::contender{name, [&, name, level] {
                                    writer_stats w;
                                    const double s = backup_once<Db>(path, level, true, w);
                                    auto& k = worst[name];
                                    k.commits += w.commits;
                                    k.worst_ms = std::max(k.worst_ms, w.worst_ms);
                                    return s;
                                }};
    };
    using resilite::check_level;
    bench::interleaved b{{
        {"cp + fsync (no writer)",
         [&] {
             return bench::seconds_of([&] {
                 std::filesystem::copy_file(path, dir / "copy.db", std::filesystem::copy_options::overwrite_existing);
                 static_cast<void>(resilite::detail::fsync_path(dir / "copy.db", false));
             });
         }},
        {"online backup API (no writer)",
         [&] {
             writer_stats none;
             return backup_once<Online>(path, check_level::header, false, none);
         }},
        with_writer("online, header checks", static_cast<Online*>(nullptr), check_level::header),
        with_writer("VACUUM INTO, header checks", static_cast<Vacuum*>(nullptr), check_level::header),
        with_writer("online, quick_check", static_cast<Online*>(nullptr), check_level::quick),
        with_writer("VACUUM INTO, quick_check", static_cast<Vacuum*>(nullptr), check_level::quick),
    }};
    b.run(rounds, false);
    std::filesystem::remove(dir / "copy.db");
    fmt::print("{} MiB, {} rounds in turns (medians; ratios: median of the per-round ratios, and their range)\n",
               static_cast<long>(size_mb), rounds);
    for (const char* name : {"cp + fsync (no writer)", "online backup API (no writer)", "online, header checks",
                             "VACUUM INTO, header checks", "online, quick_check", "VACUUM INTO, quick_check"}) {
        const auto it = worst.find(name);
        fmt::print("  {:<32} {:>8.1f} MiB/s  {}{}\n", name, size_mb / b.median_of(name),
                   std::string{name}.starts_with("cp") ? std::string{}
                                                       : "time " + b.ratio(name, "cp + fsync (no writer)"),
                   it == worst.end() ? std::string{}
                                     : fmt::format("; writer: {} commits in all, worst {:.1f} ms", it->second.commits,
                                                   it->second.worst_ms));
    }

    // Another process writing nonstop: each of its commits restarts the backup API's copy; the
    // default online_backup<> falls back to VACUUM INTO after 1 restart. Target: <= 2 x VACUUM INTO.
    {
        const pid_t other = ::fork();
        if (other == 0) {
            sqlite3* c = nullptr;
            sqlite3_open_v2(path.c_str(), &c, SQLITE_OPEN_READWRITE, nullptr);
            sqlite3_busy_timeout(c, 5000);
            for (;;)
                sqlite3_exec(c, "INSERT INTO big(payload) VALUES(zeroblob(200))", nullptr, nullptr, nullptr);
        }
        using Default = resilite::Database<
            resilite::null_observer, resilite::backup<resilite::online_backup<>, resilite::on_demand, resilite::keep_last<2>>>;
        const auto timed = [&](auto* tag) {
            using Db = std::remove_pointer_t<decltype(tag)>;
            typename Db::options o;
            o.settings = Db::default_settings();
            o.settings->backup.check = resilite::check_level::header;
            Db db{path, o};
            double best = 1e9;
            resilite::backup_result r;
            for (int i = 0; i < 3; ++i) {
                r = db.backup_now();
                best = std::min(best, std::chrono::duration<double>(r.duration).count());
            }
            return std::pair{best, r};
        };
        const auto [online_s, online_r] = timed(static_cast<Default*>(nullptr));
        const auto [vacuum_s, vacuum_r] = timed(static_cast<Vacuum*>(nullptr));
        ::kill(other, SIGKILL);
        ::waitpid(other, nullptr, 0);
        fmt::print("another process writing: default online_backup<> {:.3f} s ({} restarts, {}), VACUUM INTO "
                   "{:.3f} s: ratio {:.2f} (target <= 2)\n",
                   online_s, online_r.restarts, online_r.vacuumed ? "fell back to VACUUM INTO" : "online copy",
                   vacuum_s, online_s / vacuum_s);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    return 0;
}
