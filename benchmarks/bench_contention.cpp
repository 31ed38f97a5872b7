// Write contention: 4 threads and 2 child processes insert single-row transactions into one
// database file for a fixed time. Compared: the raw C API and SQLiteCpp, each writer with its
// own connection and busy_timeout(5000), against resilite with its default policies (threads
// share one Database, as the library intends; each process has its own), with SQLite's busy
// wait inside each attempt set to several values.
// Prints throughput, p50/p99 commit latency and the errors that reached the writers; then each
// writer's commits (fewest, most) and the worst latency: a low p99 can hide starved writers.
//   bench_contention [seconds per contender, default 3] [rounds, default 5]
#include <resilite/resilite.hpp>

#include "interleave.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <utility>
#include <vector>

namespace {
using clock_type = std::chrono::steady_clock;
constexpr int threads = 4;
constexpr int processes = 2;

struct writer_result {
    std::vector<double> latencies_ms;
    std::uint64_t errors = 0;
};

// A writer: `commit(seq)` makes one transaction; returns false on an error that reached it.
using commit_fn = std::function<bool(int writer, int seq)>;

writer_result write_for(const commit_fn& commit, int writer, clock_type::time_point until) {
    writer_result r;
    for (int seq = 0; clock_type::now() < until; ++seq) {
        const auto t0 = clock_type::now();
        if (commit(writer, seq)) {
            r.latencies_ms.push_back(
                std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
        } else {
            ++r.errors;
        }
    }
    return r;
}

// Makes the per-writer commit function for one process: `make()` is called once per process
// and returns a factory of writers (so resilite's threads can share one Database).
using writer_factory = std::function<commit_fn(int writer)>;
using process_setup = std::function<writer_factory(const std::filesystem::path&)>;

struct summary {
    std::string name;
    double seconds = 0;
    std::vector<double> latencies_ms;
    std::uint64_t errors = 0;
    std::vector<std::size_t> per_writer;  // commits of each of the 6 writers
};

summary run(const std::string& name, const std::filesystem::path& dir, const process_setup& setup,
            double seconds) {
    const auto path = dir / (name + ".db");
    for (const char* suffix : {"", "-wal", "-shm", "-resilite"})
        std::filesystem::remove(path.string() + suffix);
    {
        resilite::sqlite::connection c{path};
        c.exec_script(
            "PRAGMA journal_mode=WAL; CREATE TABLE w(writer INTEGER, seq INTEGER, pad TEXT, PRIMARY "
            "KEY(writer, seq))");
    }
    const auto start = clock_type::now() + std::chrono::milliseconds{200};  // everyone starts together
    const auto until =
        start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
    std::vector<pid_t> children;
    for (int p = 0; p < processes; ++p) {
        const pid_t pid = ::fork();
        if (pid == 0) {
            auto factory = setup(path);
            auto commit = factory(100 + p);
            std::this_thread::sleep_until(start);
            const auto r = write_for(commit, 100 + p, until);
            std::ofstream out(dir / fmt::format("{}-child{}.txt", name, p));
            out << r.errors << '\n';
            for (double l : r.latencies_ms)
                out << l << '\n';
            std::_Exit(0);
        }
        children.push_back(pid);
    }
    auto factory = setup(path);
    std::vector<writer_result> results(threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            auto commit = factory(t);
            std::this_thread::sleep_until(start);
            results[static_cast<std::size_t>(t)] = write_for(commit, t, until);
        });
    }
    for (auto& th : pool)
        th.join();
    summary s{name, seconds, {}, 0, {}};
    for (auto& r : results) {
        s.per_writer.push_back(r.latencies_ms.size());
        s.errors += r.errors;
        s.latencies_ms.insert(s.latencies_ms.end(), r.latencies_ms.begin(), r.latencies_ms.end());
    }
    for (int p = 0; p < processes; ++p) {
        int status = 0;
        ::waitpid(children[static_cast<std::size_t>(p)], &status, 0);
        std::ifstream in(dir / fmt::format("{}-child{}.txt", name, p));
        std::uint64_t errors = 0;
        in >> errors;
        s.errors += errors;
        std::size_t n = 0;
        for (double l = 0; in >> l; ++n)
            s.latencies_ms.push_back(l);
        s.per_writer.push_back(n);
    }
    return s;
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

const std::string pad(100, 'p');

writer_factory raw_setup(const std::filesystem::path& path) {
    return [path](int) -> commit_fn {
        sqlite3* db = nullptr;
        sqlite3_open(path.c_str(), &db);
        sqlite3_busy_timeout(db, 5000);
        sqlite3_exec(db, "PRAGMA synchronous=FULL", nullptr, nullptr, nullptr);
        sqlite3_stmt* ins = nullptr;
        sqlite3_prepare_v2(db, "INSERT INTO w VALUES(?, ?, ?)", -1, &ins, nullptr);
        // The handles live as long as the writer's function (the process or thread ends with it).
        auto handles = std::shared_ptr<void>(nullptr, [db, ins](void*) {
            sqlite3_finalize(ins);
            sqlite3_close(db);
        });
        return [db, ins, handles](int writer, int seq) {
            if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) return false;
            sqlite3_bind_int(ins, 1, writer);
            sqlite3_bind_int(ins, 2, seq);
            sqlite3_bind_text(ins, 3, pad.c_str(), static_cast<int>(pad.size()), SQLITE_STATIC);
            const int rc = sqlite3_step(ins);
            sqlite3_reset(ins);
            if (rc != SQLITE_DONE || sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
                sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
                return false;
            }
            return true;
        };
    };
}

writer_factory sqlitecpp_setup(const std::filesystem::path& path) {
    return [path](int) -> commit_fn {
        auto db = std::make_shared<SQLite::Database>(path.string(), SQLite::OPEN_READWRITE);
        db->setBusyTimeout(5000);
        db->exec("PRAGMA synchronous=FULL");
        auto ins = std::make_shared<SQLite::Statement>(*db, "INSERT INTO w VALUES(?, ?, ?)");
        return [db, ins](int writer, int seq) {
            try {
                SQLite::Transaction tx{*db, SQLite::TransactionBehavior::IMMEDIATE};
                ins->bind(1, writer);
                ins->bind(2, seq);
                ins->bind(3, pad);
                ins->exec();
                ins->reset();
                tx.commit();
                return true;
            } catch (const std::exception&) {
                ins->reset();
                return false;
            }
        };
    };
}

// resilite with its default settings, changed by `adjust` (to compare busy-wait choices).
process_setup resilite_setup(std::function<void(resilite::settings&)> adjust) {
    return [adjust](const std::filesystem::path& path) -> writer_factory {
        using Db = resilite::Database<resilite::null_observer>;
        Db::options o;
        o.settings = Db::default_settings();
        adjust(*o.settings);
        auto db = std::make_shared<Db>(path, o);
        return [db](int) -> commit_fn {
            return [db](int writer, int seq) {
                try {
                    db->transaction(
                        [&](auto& tx) { tx.exec("INSERT INTO w VALUES(?, ?, ?)", writer, seq, pad); });
                    return true;
                } catch (const resilite::error& e) {
                    if (std::getenv("BENCH_VERBOSE") != nullptr) fmt::print(stderr, "{}\n", e.what());
                    return false;
                }
            };
        };
    };
}
}  // namespace

int main(int argc, char** argv) {
    const double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
    std::string templ = (std::filesystem::temp_directory_path() / "resilite-contention-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) return 1;
    const std::filesystem::path dir = templ;

    struct named_setup {
        std::string first;
        process_setup second;
    };
    std::vector<named_setup> contenders;
    contenders.reserve(16);
    contenders.push_back({"raw", [](const auto& p) { return raw_setup(p); }});
    contenders.push_back({"sqlitecpp", [](const auto& p) { return sqlitecpp_setup(p); }});
    contenders.push_back({"resilite", resilite_setup([](resilite::settings&) {})});
    if (std::getenv("BENCH_PER_THREAD") != nullptr) {
        contenders.push_back({"resilite-db-per-thread", [](const std::filesystem::path& path) -> writer_factory {
            return [path](int) -> commit_fn {
                auto db = std::make_shared<resilite::Database<resilite::null_observer>>(path);
                return [db](int writer, int seq) {
                    try {
                        db->transaction(
                            [&](auto& tx) { tx.exec("INSERT INTO w VALUES(?, ?, ?)", writer, seq, pad); });
                        return true;
                    } catch (const resilite::error&) {
                        return false;
                    }
                };
            };
        }});
    }
    // The alternatives weighed for the defaults: SQLite's busy wait inside each attempt (ms),
    // the backoff cap between attempts (ms), attempts.
    if (std::getenv("BENCH_VARIANTS") != nullptr) {
        for (auto [wait, cap, attempts] : std::vector<std::tuple<int, int, int>>{
                 {100, 1000, 10}, {0, 50, 100000}, {10, 20, 100000}, {100, 100, 1000}, {1000, 100, 1000}}) {
            contenders.push_back({fmt::format("resilite-w{}-c{}-a{}", wait, cap, attempts),
                                  resilite_setup([=](resilite::settings& s) {
                                      s.busy_timeout = std::chrono::milliseconds{wait};
                                      s.retry.cap = std::chrono::milliseconds{cap};
                                      s.retry.max_attempts = attempts;
                                  })});
        }
    }
    // Rounds in turns (raw, SQLiteCpp, resilite, raw, ...): a slow spell of the machine falls on
    // every contender alike; each ratio is taken within a round, then its median over the rounds.
    const int rounds = std::max(1, argc > 2 ? std::atoi(argv[2]) : 5);
    std::vector<std::vector<summary>> by(contenders.size());
    for (int r = 0; r < rounds; ++r) {
        for (std::size_t i = 0; i < contenders.size(); ++i)
            by[i].push_back(run(contenders[i].first, dir, contenders[i].second, seconds / rounds));
    }
    const auto rate = [](const summary& s) { return static_cast<double>(s.latencies_ms.size()) / s.seconds; };
    const auto range = [](std::vector<double> v) {
        if (v.empty()) return std::string{"n/a"};
        const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
        return fmt::format("{:.2f} ({:.2f}-{:.2f})", bench::median(v), *lo, *hi);
    };
    fmt::print("{} threads + {} processes, single-row commits (synchronous=FULL), {:.1f} s each in {} "
               "interleaved rounds\n\n",
               threads, processes, seconds, rounds);
    fmt::print("{:<22} {:>10} {:>9} {:>9} {:>7} {:>22} {:>22}\n", "contender", "commits/s", "p50 ms", "p99 ms",
               "errors", "throughput/raw", "p99/raw's p99");
    for (std::size_t i = 0; i < contenders.size(); ++i) {
        std::vector<double> all_latencies, throughput, p99;
        std::uint64_t errors = 0;
        double commits = 0, measured = 0;
        for (int r = 0; r < rounds; ++r) {
            const auto& s = by[i][static_cast<std::size_t>(r)];
            const auto& base = by[0][static_cast<std::size_t>(r)];
            all_latencies.insert(all_latencies.end(), s.latencies_ms.begin(), s.latencies_ms.end());
            errors += s.errors;
            commits += static_cast<double>(s.latencies_ms.size());
            measured += s.seconds;
            if (rate(base) > 0) throughput.push_back(rate(s) / rate(base));
            const double base_p99 = percentile(base.latencies_ms, 0.99);
            if (base_p99 > 0) p99.push_back(percentile(s.latencies_ms, 0.99) / base_p99);
        }
        fmt::print("{:<22} {:>10.0f} {:>9.3f} {:>9.3f} {:>7} {:>22} {:>22}\n", contenders[i].first, commits / measured,
                   percentile(all_latencies, 0.5), percentile(all_latencies, 0.99), errors, range(throughput),
                   range(p99));
    }
    // A low p99 can hide writers that waited: one connection that keeps the lock commits often
    // and fast while the others sleep in SQLite's busy handler and commit rarely.
    fmt::print("\n{:<22} {:>26} {:>12}\n", "contender", "commits per writer min-max", "worst ms");
    for (std::size_t i = 0; i < contenders.size(); ++i) {
        std::size_t lo = std::numeric_limits<std::size_t>::max(), hi = 0;
        double worst = 0;
        for (const auto& s : by[i]) {
            for (const auto n : s.per_writer) {
                lo = std::min(lo, n);
                hi = std::max(hi, n);
            }
            for (const double l : s.latencies_ms)
                worst = std::max(worst, l);
        }
        fmt::print("{:<22} {:>26} {:>12.3f}\n", contenders[i].first, fmt::format("{}-{}", lo, hi), worst);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    return 0;
}
