// Readers in parallel: the same number of point selects done by one thread and split over two,
// for the raw C API and SQLiteCpp (a connection per thread) and for threads sharing one resilite
// Database, without read connections (they take turns on its one connection) and with
// `read_connections = 2`; then the same two threads reading while a third commits in a loop
// (the writer holds the writer lock for each of its transactions). Contenders run in turns;
// each line is the median over the rounds with its range.
//   bench_readers [reads per round, default 200000] [rounds, default 5]
#include <resilite/resilite.hpp>

#include "interleave.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int rows = 100'000;

using Db = resilite::Database<resilite::null_observer>;

Db::options with_readers(std::size_t n) {
    Db::options o;
    auto s = Db::default_settings();
    s.read_connections = n;
    o.settings = s;
    return o;
}

// Runs work(thread, reads) on `threads` threads, splitting `total` reads; returns the seconds.
double split(int threads, int total, const std::function<void(int, int)>& work) {
    return bench::seconds_of([&] {
        std::vector<std::thread> ts;
        for (int t = 0; t < threads; ++t)
            ts.emplace_back([&, t] { work(t, total / threads); });
        for (auto& t : ts)
            t.join();
    });
}

int key(std::mt19937& rng) { return static_cast<int>(rng() % rows) + 1; }

// A writer committing one row per transaction until told to stop, beside the readers.
class background_writer {
public:
    explicit background_writer(Db& db) : thread_([this, &db] {
        int i = 0;
        while (!stop_.load()) db.exec("INSERT INTO w(v) VALUES (?)", ++i);
    }) {}
    ~background_writer() {
        stop_.store(true);
        thread_.join();
    }

private:
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
    const int reads = argc > 1 ? std::atoi(argv[1]) : 200'000;
    const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
    const auto dir = std::filesystem::temp_directory_path() / fmt::format("resilite-bench-readers-{}", ::getpid());
    std::filesystem::create_directories(dir);
    const auto path = dir / "r.db";
    {
        Db db{path};
        db.exec_script("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL); CREATE TABLE w(v INTEGER)");
        db.transaction([](auto& tx) {
            for (int i = 1; i <= rows; ++i)
                tx.exec("INSERT INTO t VALUES (?, ?, ?)", i, fmt::format("name {}", i), i * 0.5);
        });
    }
    const std::string sql = "SELECT name, v FROM t WHERE id = ?";

    auto raw = [&](int threads) {
        return split(threads, reads, [&](int t, int n) {
            sqlite3* c = nullptr;
            sqlite3_open_v2(path.c_str(), &c, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
            sqlite3_busy_timeout(c, 5000);
            sqlite3_stmt* st = nullptr;
            sqlite3_prepare_v2(c, sql.c_str(), -1, &st, nullptr);
            std::mt19937 rng(static_cast<unsigned>(t + 1));
            for (int i = 0; i < n; ++i) {
                sqlite3_bind_int(st, 1, key(rng));
                if (sqlite3_step(st) == SQLITE_ROW) {
                    std::string name{reinterpret_cast<const char*>(sqlite3_column_text(st, 0))};
                    static_cast<void>(sqlite3_column_double(st, 1));
                }
                sqlite3_reset(st);
            }
            sqlite3_finalize(st);
            sqlite3_close(c);
        });
    };
    auto cpp = [&](int threads) {
        return split(threads, reads, [&](int t, int n) {
            SQLite::Database c{path.string(), SQLite::OPEN_READONLY};
            SQLite::Statement st{c, sql};
            std::mt19937 rng(static_cast<unsigned>(t + 1));
            for (int i = 0; i < n; ++i) {
                st.bind(1, key(rng));
                if (st.executeStep()) {
                    std::string name = st.getColumn(0).getString();
                    static_cast<void>(st.getColumn(1).getDouble());
                }
                st.reset();
            }
        });
    };
    auto ours = [&](Db& db, int threads) {
        return split(threads, reads, [&](int t, int n) {
            std::mt19937 rng(static_cast<unsigned>(t + 1));
            for (int i = 0; i < n; ++i)
                static_cast<void>(db.query_one<std::string, double>(sql, key(rng)));
        });
    };

    Db shared{path};
    Db pooled{path, with_readers(2)};
    bench::interleaved b{{
        {"raw 1", [&] { return raw(1); }},
        {"raw 2", [&] { return raw(2); }},
        {"SQLiteCpp 1", [&] { return cpp(1); }},
        {"SQLiteCpp 2", [&] { return cpp(2); }},
        {"resilite 1", [&] { return ours(shared, 1); }},
        {"resilite 2, one connection", [&] { return ours(shared, 2); }},
        {"resilite 2, read_connections=2", [&] { return ours(pooled, 2); }},
        {"resilite 2 + writer, one connection",
         [&] {
             background_writer w{shared};
             return ours(shared, 2);
         }},
        {"resilite 2 + writer, read_connections=2",
         [&] {
             background_writer w{pooled};
             return ours(pooled, 2);
         }},
    }};
    b.run(rounds);

    fmt::print("{} point selects per round, {} rounds; times are medians, ratios medians of per-round ratios\n",
               reads, rounds);
    for (const char* name : {"raw 1", "raw 2", "SQLiteCpp 1", "SQLiteCpp 2", "resilite 1", "resilite 2, one connection",
                             "resilite 2, read_connections=2", "resilite 2 + writer, one connection",
                             "resilite 2 + writer, read_connections=2"})
        fmt::print("  {:<42} {:7.3f} s  {:9.0f} reads/s\n", name, b.median_of(name), reads / b.median_of(name));
    fmt::print("speed-up of 2 threads over 1 (time of 1 / time of 2; target >= 1.8):\n");
    fmt::print("  raw, a connection per thread:          {}\n", b.ratio("raw 1", "raw 2"));
    fmt::print("  SQLiteCpp, a connection per thread:    {}\n", b.ratio("SQLiteCpp 1", "SQLiteCpp 2"));
    fmt::print("  resilite, one shared Database:         {}\n", b.ratio("resilite 1", "resilite 2, one connection"));
    fmt::print("  resilite, read_connections=2:          {}\n",
               b.ratio("resilite 1", "resilite 2, read_connections=2"));
    fmt::print("resilite against raw, same threads (time ratio):\n");
    fmt::print("  1 thread:                              {}\n", b.ratio("resilite 1", "raw 1"));
    fmt::print("  2 threads, read_connections=2:         {}\n", b.ratio("resilite 2, read_connections=2", "raw 2"));
    fmt::print("  2 threads, read_connections=2, vs SQLiteCpp: {}\n",
               b.ratio("resilite 2, read_connections=2", "SQLiteCpp 2"));
    fmt::print("reads beside a committing writer (time ratio, lower is better):\n");
    fmt::print("  read_connections=2 against one connection: {}\n",
               b.ratio("resilite 2 + writer, read_connections=2", "resilite 2 + writer, one connection"));
    std::filesystem::remove_all(dir);
}
