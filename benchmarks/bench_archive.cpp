// The text archive's cost and its rebuild speed.
//   1. Write throughput with synchronous=FULL: one row per commit, and 100 rows per commit, by the
//      raw C API, SQLiteCpp, resilite without archive, with archive flushed at every commit
//      (durable before the call returns) and with a batched archive (every 1000 ms).
//   2. Rebuilding a database of N rows (default 1 M) from its archive alone, against the sqlite3
//      shell replaying the same segment file (no checksums, no authorizer).
//   3. A baseline (write_baseline()) after a history of rewrites: its time, and a rebuild from it
//      against a rebuild from the whole history.
//   4. The peak memory of a rebuild of an archive of many one-row commits without a baseline,
//      against the sqlite3 shell's.
//   bench_archive [commits, default 2000] [rows, default 1000000] [baseline rows, default 200000]
//                 [one-row commits, default 300000]
// The writers run in 10 interleaved rounds (see interleave.hpp).
#include <resilite/resilite.hpp>

#include "interleave.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>

namespace {

struct Item {
    BOOST_HANA_DEFINE_STRUCT(Item, (std::int64_t, id), (std::string, name), (double, score));
};
using items = resilite::table<"items", Item, resilite::primary_key<"id">>;
using quiet = resilite::wal_durability<resilite::synchronous::full, 60, 64, false>;
using Plain = resilite::Database<resilite::schema<items>, resilite::null_observer, quiet>;
using OnCommit =
    resilite::Database<resilite::schema<items>, resilite::archive<>, resilite::null_observer, quiet>;
// No background thread: its drains would run during the other contenders' turns and be left
// out of its own time. Each round drains at its end instead (drain_archive(), timed), so the
// batched contender pays for the records it writes.
using Batched = resilite::Database<resilite::schema<items>, resilite::archive<resilite::flush_every_ms<1000>>,
                                   resilite::null_observer, quiet>;

std::filesystem::path fresh_dir(const char* name) {
    std::string templ =
        (std::filesystem::temp_directory_path() / fmt::format("resilite-bench-{}-XXXXXX", name)).string();
    if (::mkdtemp(templ.data()) == nullptr) std::abort();
    return templ;
}

Item item(std::int64_t i) {
    return Item{i, fmt::format("name number {}", i), static_cast<double>(i) / 3};
}

void check(int rc, sqlite3* db) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE) {
        fmt::print(stderr, "sqlite: {}\n", sqlite3_errmsg(db));
        std::abort();
    }
}

// Each contender keeps its database open across rounds and goes on numbering its rows; a round
// is `commits` commits of `per_commit` rows, each commit durable.
struct raw_writer {
    sqlite3* db = nullptr;
    sqlite3_stmt* ins = nullptr;
    std::int64_t id = 0;
    explicit raw_writer(const std::filesystem::path& p) {
        check(sqlite3_open(p.c_str(), &db), db);
        check(sqlite3_exec(db,
                           "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE items(id INTEGER "
                           "PRIMARY KEY, name TEXT NOT NULL, score REAL NOT NULL)",
                           nullptr, nullptr, nullptr),
              db);
        check(sqlite3_prepare_v2(db, "INSERT INTO items(id, name, score) VALUES(?, ?, ?)", -1, &ins, nullptr),
              db);
    }
    raw_writer(const raw_writer&) = delete;
    raw_writer& operator=(const raw_writer&) = delete;
    ~raw_writer() {
        sqlite3_finalize(ins);
        sqlite3_close_v2(db);
    }
    void commits(int n, int per_commit) {
        for (int c = 0; c < n; ++c) {
            if (per_commit > 1) check(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), db);
            for (int r = 0; r < per_commit; ++r) {
                const auto it = item(++id);
                sqlite3_bind_int64(ins, 1, it.id);
                sqlite3_bind_text(ins, 2, it.name.c_str(), static_cast<int>(it.name.size()), SQLITE_TRANSIENT);
                sqlite3_bind_double(ins, 3, it.score);
                check(sqlite3_step(ins), db);
                sqlite3_reset(ins);
            }
            if (per_commit > 1) check(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), db);
        }
    }
};

struct sqlitecpp_writer {
    SQLite::Database db;
    SQLite::Statement ins;
    std::int64_t id = 0;
    static SQLite::Database& with_table(SQLite::Database& db) {
        db.exec(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE items(id INTEGER PRIMARY KEY, name "
            "TEXT NOT NULL, score REAL NOT NULL)");
        return db;
    }
    explicit sqlitecpp_writer(const std::filesystem::path& p)
        : db{p.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE},
          ins{with_table(db), "INSERT INTO items(id, name, score) VALUES(?, ?, ?)"} {}
    void commits(int n, int per_commit) {
        for (int c = 0; c < n; ++c) {
            std::optional<SQLite::Transaction> tx;
            if (per_commit > 1) tx.emplace(db);
            for (int r = 0; r < per_commit; ++r) {
                const auto it = item(++id);
                ins.bind(1, it.id);
                ins.bind(2, it.name);
                ins.bind(3, it.score);
                ins.exec();
                ins.reset();
            }
            if (tx) tx->commit();
        }
    }
};

template <class Db, bool DrainAtEnd = false>
struct resilite_writer {
    Db db;
    std::int64_t id = 0;
    explicit resilite_writer(const std::filesystem::path& p) : db{p} {}
    void commits(int n, int per_commit) {
        for (int c = 0; c < n; ++c) {
            if (per_commit == 1) {
                db.insert(item(++id));
            } else {
                db.transaction([&](auto& tx) {
                    for (int r = 0; r < per_commit; ++r)
                        tx.insert(item(++id));
                });
            }
        }
        if constexpr (DrainAtEnd) static_cast<void>(db.drain_archive());
    }
};

template <class W>
bench::contender writer(std::string name, const std::filesystem::path& p, int commits, int per_commit) {
    auto w = std::make_shared<W>(p);
    return {std::move(name), [w, commits, per_commit] {
                return bench::seconds_of([&] { w->commits(commits, per_commit); });
            }};
}

// `commits` per round, `rounds` rounds, contenders in turns.
void write_throughput(int commits, int per_commit, int rounds) {
    const auto dir = fresh_dir("archive-writes");
    {
        const int per_round = std::max(1, commits / rounds);
        bench::interleaved runs{{
            writer<raw_writer>("raw", dir / "raw.db", per_round, per_commit),
            writer<sqlitecpp_writer>("SQLiteCpp", dir / "cpp.db", per_round, per_commit),
            writer<resilite_writer<Plain>>("no archive", dir / "off.db", per_round, per_commit),
            writer<resilite_writer<OnCommit>>("on commit", dir / "on.db", per_round, per_commit),
            writer<resilite_writer<Batched, true>>("batched", dir / "batched.db", per_round, per_commit),
        }};
        runs.run(rounds);
        const auto rate = [&](const char* name) { return per_round / runs.median_of(name); };
        fmt::print("{} commits of {} row{} (synchronous=FULL), {} interleaved rounds of {}; time ratios: medians, "
                   "and the range of the per-round ratios:\n",
                   per_round * rounds, per_commit, per_commit == 1 ? "" : "s", rounds, per_round);
        fmt::print("  raw C API            {:8.0f} commits/s\n", rate("raw"));
        fmt::print("  SQLiteCpp            {:8.0f} commits/s  {}\n", rate("SQLiteCpp"), runs.ratio("SQLiteCpp", "raw"));
        fmt::print("  resilite, no archive {:8.0f} commits/s  {}\n", rate("no archive"),
                   runs.ratio("no archive", "raw"));
        fmt::print("  archive on commit    {:8.0f} commits/s  {}, {}\n", rate("on commit"),
                   runs.ratio("on commit", "raw"), runs.ratio("on commit", "no archive"));
        fmt::print("  archive batched      {:8.0f} commits/s  {}, {}  (drained once per round)\n", rate("batched"),
                   runs.ratio("batched", "raw"), runs.ratio("batched", "no archive"));
    }
    std::filesystem::remove_all(dir);
}

// Peak memory (maximum resident set) of `work`, in a child process of its own.
long peak_kib(const std::function<void()>& work) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        work();
        std::_Exit(0);
    }
    int status = 0;
    rusage usage{};
    if (pid < 0 || ::wait4(pid, &status, 0, &usage) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    return usage.ru_maxrss;
}

// The peak memory of a rebuild of `dir`/live.db.archive, and of the sqlite3 shell replaying it.
void print_peaks(const std::filesystem::path& dir, bool shell) {
    const long ours_kib =
        peak_kib([&] { static_cast<void>(resilite::rebuild(dir / "live.db.archive", dir / "peak.db")); });
    fmt::print("  peak memory: resilite::rebuild {:.0f} MiB", static_cast<double>(ours_kib) / 1024);
    if (shell) {
        // The shell runs under a child of ours; its own peak is that child's children's.
        const auto report = dir / "shell-peak.txt";
        static_cast<void>(peak_kib([&] {
            const auto command = fmt::format("cat '{}'/*.sql | sqlite3 '{}'", (dir / "live.db.archive").string(),
                                             (dir / "peak-shell.db").string());
            if (std::system(command.c_str()) != 0) std::_Exit(1);
            rusage children{};
            ::getrusage(RUSAGE_CHILDREN, &children);
            std::ofstream(report) << children.ru_maxrss;
        }));
        long shell_kib = -1;
        std::ifstream(report) >> shell_kib;
        fmt::print(", the sqlite3 shell {:.0f} MiB", static_cast<double>(shell_kib) / 1024);
    }
    fmt::print(" (target: 64 MiB + SQLite's cache)\n");
}

void rebuild_speed(std::int64_t rows) {
    const auto dir = fresh_dir("archive-rebuild");
    const auto live = dir / "live.db";
    const double fill = bench::seconds_of([&] {
        OnCommit db{live};
        for (std::int64_t done = 0; done < rows;) {
            db.transaction([&](auto& tx) {
                for (int i = 0; i < 10'000 && done < rows; ++i)
                    tx.insert(item(++done));
            });
        }
    });
    std::uintmax_t bytes = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir / "live.db.archive"))
        bytes += e.file_size();
    fmt::print("rebuild of {} rows ({:.1f} MB of archive, written in {:.1f} s):\n", rows,
               static_cast<double>(bytes) / 1e6, fill);
    // Each contender builds a new file every round; 3 rounds in turns.
    std::vector<bench::contender> cs;
    int round = 0;
    cs.push_back({"resilite::rebuild", [&] {
                      const auto target = dir / fmt::format("rebuilt-{}.db", round);
                      resilite::archive_report report;
                      const double s =
                          bench::seconds_of([&] { report = resilite::rebuild(dir / "live.db.archive", target); });
                      if (report.tables.empty() || report.tables[0].rows != rows) {
                          fmt::print(stderr, "rebuild is incomplete:\n{}", report.to_text());
                          std::abort();
                      }
                      std::filesystem::remove(target);
                      return s;
                  }});
    const bool shell = std::system("command -v sqlite3 > /dev/null 2>&1") == 0;
    if (shell) {
        cs.push_back({"sqlite3 shell", [&] {
                          const auto target = dir / fmt::format("shell-{}.db", round++);
                          const auto command = fmt::format("cat '{}'/*.sql | sqlite3 '{}'",
                                                           (dir / "live.db.archive").string(), target.string());
                          const double s = bench::seconds_of([&] {
                              if (std::system(command.c_str()) != 0) std::abort();
                          });
                          std::filesystem::remove(target);
                          return s;
                      }});
    }
    bench::interleaved runs{std::move(cs)};
    runs.run(3, false);
    fmt::print(
        "  resilite::rebuild    {:6.2f} s  (median of 3; CRC, authorizer, integrity and foreign-key check, "
        "hashes)\n",
        runs.median_of("resilite::rebuild"));
    if (shell) {
        fmt::print("  sqlite3 shell replay {:6.2f} s  (median of 3; resilite: {})\n", runs.median_of("sqlite3 shell"),
                   runs.ratio("resilite::rebuild", "sqlite3 shell"));
    }
    print_peaks(dir, shell);
    std::filesystem::remove_all(dir);
}
// A database of `rows` rows whose archive holds every row written 4 times (inserted, then updated
// three times, 1,000 rows per commit): the time write_baseline() holds the writer, and a rebuild
// from that history against a rebuild from the baseline written after it, in turns.
void baseline_speed(std::int64_t rows) {
    const auto dir = fresh_dir("archive-baseline");
    const auto history = dir / "history";
    const auto based = dir / "based";
    std::filesystem::create_directories(history);
    {
        OnCommit db{history / "live.db"};
        for (int pass = 0; pass < 4; ++pass) {
            for (std::int64_t done = 0; done < rows;) {
                db.transaction([&](auto& tx) {
                    for (int i = 0; i < 1'000 && done < rows; ++i) {
                        ++done;
                        auto it = item(done);
                        it.score += pass;
                        if (pass == 0) tx.insert(it); else tx.upsert(it);
                    }
                });
            }
        }
    }
    std::filesystem::copy(history, based, std::filesystem::copy_options::recursive);
    double baseline_s = 0;
    {
        OnCommit db{based / "live.db"};
        baseline_s = bench::seconds_of([&] { static_cast<void>(db.write_baseline()); });
    }
    const auto archive_bytes = [](const std::filesystem::path& d) {
        std::uintmax_t bytes = 0;
        for (const auto& e : std::filesystem::directory_iterator(d))
            bytes += e.file_size();
        return static_cast<double>(bytes) / 1e6;
    };
    fmt::print("baselines: {} rows, each written 4 times ({:.1f} MB of archive):\n", rows,
               archive_bytes(history / "live.db.archive"));
    fmt::print("  write_baseline()     {:6.2f} s  (holds the writer; the baseline adds {:.1f} MB)\n", baseline_s,
               archive_bytes(based / "live.db.archive") - archive_bytes(history / "live.db.archive"));
    int round = 0;
    const auto rebuild_of = [&](const std::filesystem::path& from) {
        return [&, from] {
            const auto target = dir / fmt::format("rebuilt-{}.db", round++);
            resilite::archive_report report;
            const double s = bench::seconds_of([&] { report = resilite::rebuild(from / "live.db.archive", target); });
            if (report.tables.empty() || report.tables[0].rows != rows) std::abort();
            std::filesystem::remove(target);
            return s;
        };
    };
    std::vector<bench::contender> cs;
    cs.push_back({"history", rebuild_of(history)});
    cs.push_back({"baseline", rebuild_of(based)});
    bench::interleaved runs{std::move(cs)};
    runs.run(3, false);
    fmt::print("  rebuild, whole history {:6.2f} s, from the baseline {:6.2f} s (median of 3 in turns; {})\n",
               runs.median_of("history"), runs.median_of("baseline"), runs.ratio("baseline", "history"));
    std::filesystem::remove_all(dir);
}
// An archive of `commits` one-row commits and no baseline (an entry per record was what a
// rebuild's memory grew with): the peak memory of a rebuild and of the shell. Written on
// /dev/shm where there is one (the syncs of so many commits would take minutes on a disk).
void many_small_commits(std::int64_t commits) {
    const auto shm = std::filesystem::path{"/dev/shm"};
    std::string templ = ((std::filesystem::is_directory(shm) ? shm : std::filesystem::temp_directory_path()) /
                         "resilite-bench-small-XXXXXX")
                            .string();
    if (::mkdtemp(templ.data()) == nullptr) std::abort();
    const std::filesystem::path dir = templ;
    {
        OnCommit db{dir / "live.db"};
        for (std::int64_t i = 1; i <= commits; ++i) {
            auto it = item(i % 1000);
            it.name = fmt::format("commit {}", i);  // (an upsert that changes nothing archives nothing)
            db.upsert(it);
        }
    }
    std::uintmax_t bytes = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir / "live.db.archive"))
        bytes += e.file_size();
    fmt::print("rebuild of {} one-row commits, no baseline ({:.1f} MB of archive):\n", commits,
               static_cast<double>(bytes) / 1e6);
    print_peaks(dir, std::system("command -v sqlite3 > /dev/null 2>&1") == 0);
    std::filesystem::remove_all(dir);
}
}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IONBF, 0);
    const int commits = argc > 1 ? std::atoi(argv[1]) : 2000;
    const std::int64_t rows = argc > 2 ? std::atoll(argv[2]) : 1'000'000;
    write_throughput(commits, 1, 10);
    write_throughput(commits / 10, 100, 10);
    rebuild_speed(rows);
    baseline_speed(argc > 3 ? std::atoll(argv[3]) : 200'000);
    many_small_commits(argc > 4 ? std::atoll(argv[4]) : 300'000);
}
