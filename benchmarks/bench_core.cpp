// resilite (default policies) against the raw SQLite C API and SQLiteCpp, in one run:
//   point_select  - SELECT by primary key on 100k rows (prepared, reused)
//   insert_batch  - 100k inserts in one transaction, synchronous=OFF (the library's own cost)
//   commit_full   - single-row transactions with synchronous=FULL (fsync-bound)
// Prints Google Benchmark's table, then the ratios resilite/raw and resilite/SQLiteCpp.
#include <resilite/resilite.hpp>

#include <SQLiteCpp/SQLiteCpp.h>
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

namespace {
constexpr int table_rows = 100'000;
constexpr int batch_rows = 100'000;

std::filesystem::path bench_dir() {
    static const std::filesystem::path dir = [] {
        std::string templ = (std::filesystem::temp_directory_path() / "resilite-bench-XXXXXX").string();
        if (::mkdtemp(templ.data()) == nullptr) std::abort();
        return std::filesystem::path{templ};
    }();
    return dir;
}

std::filesystem::path fresh(const std::string& name) {
    const auto p = bench_dir() / name;
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(p.string() + suffix);
    return p;
}

void check(int rc, sqlite3* db) {
    if (rc != SQLITE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) {
        fmt::print(stderr, "sqlite: {}\n", sqlite3_errmsg(db));
        std::abort();
    }
}

// The shared data set for point selects, built once with the raw API.
std::filesystem::path select_db() {
    static const std::filesystem::path p = [] {
        auto path = fresh("select.db");
        sqlite3* db = nullptr;
        check(sqlite3_open(path.c_str(), &db), db);
        check(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"
                               "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, v REAL);"
                               "BEGIN;", nullptr, nullptr, nullptr), db);
        sqlite3_stmt* s = nullptr;
        check(sqlite3_prepare_v2(db, "INSERT INTO t VALUES(?, ?, ?)", -1, &s, nullptr), db);
        for (int i = 1; i <= table_rows; ++i) {
            const auto name = fmt::format("name-{:06}", i);
            sqlite3_bind_int(s, 1, i);
            sqlite3_bind_text(s, 2, name.c_str(), static_cast<int>(name.size()), SQLITE_TRANSIENT);
            sqlite3_bind_double(s, 3, i * 0.5);
            check(sqlite3_step(s), db);
            sqlite3_reset(s);
        }
        sqlite3_finalize(s);
        check(sqlite3_exec(db, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE);", nullptr, nullptr, nullptr), db);
        sqlite3_close(db);
        return path;
    }();
    return p;
}

int next_id(int& i) { return (i = i * 7919 % table_rows) + 1; }

// ---- point select -------------------------------------------------------------------------

void point_select_raw(benchmark::State& state) {
    sqlite3* db = nullptr;
    check(sqlite3_open(select_db().c_str(), &db), db);
    sqlite3_stmt* s = nullptr;
    check(sqlite3_prepare_v2(db, "SELECT name FROM t WHERE id = ?", -1, &s, nullptr), db);
    int i = 1;
    for (auto _ : state) {
        sqlite3_bind_int64(s, 1, next_id(i));
        check(sqlite3_step(s), db);
        std::string name{reinterpret_cast<const char*>(sqlite3_column_text(s, 0)),
                         static_cast<std::size_t>(sqlite3_column_bytes(s, 0))};
        benchmark::DoNotOptimize(name);
        sqlite3_reset(s);
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
}

void point_select_sqlitecpp(benchmark::State& state) {
    SQLite::Database db{select_db().string(), SQLite::OPEN_READWRITE};
    SQLite::Statement q{db, "SELECT name FROM t WHERE id = ?"};
    int i = 1;
    for (auto _ : state) {
        q.bind(1, static_cast<std::int64_t>(next_id(i)));
        q.executeStep();
        std::string name = q.getColumn(0).getString();
        benchmark::DoNotOptimize(name);
        q.reset();
    }
}

void point_select_resilite(benchmark::State& state) {
    resilite::Database<> db{select_db()};
    int i = 1;
    for (auto _ : state) {
        auto name = db.query_one<std::string>("SELECT name FROM t WHERE id = ?", next_id(i));
        benchmark::DoNotOptimize(name);
    }
}

// ---- batch insert, synchronous=OFF ----------------------------------------------------------

void insert_batch_raw(benchmark::State& state) {
    for (auto _ : state) {
        state.PauseTiming();
        sqlite3* db = nullptr;
        check(sqlite3_open(fresh("batch-raw.db").c_str(), &db), db);
        check(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"
                               "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, v REAL)",
                           nullptr, nullptr, nullptr), db);
        state.ResumeTiming();
        check(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), db);
        sqlite3_stmt* s = nullptr;
        check(sqlite3_prepare_v2(db, "INSERT INTO t(name, v) VALUES(?, ?)", -1, &s, nullptr), db);
        for (int i = 0; i < batch_rows; ++i) {
            const std::string name = "row";
            sqlite3_bind_text(s, 1, name.c_str(), static_cast<int>(name.size()), SQLITE_STATIC);
            sqlite3_bind_double(s, 2, i * 0.25);
            check(sqlite3_step(s), db);
            sqlite3_reset(s);
        }
        sqlite3_finalize(s);
        check(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), db);
        state.PauseTiming();
        sqlite3_close(db);
        state.ResumeTiming();
    }
    state.SetItemsProcessed(state.iterations() * batch_rows);
}

void insert_batch_sqlitecpp(benchmark::State& state) {
    for (auto _ : state) {
        state.PauseTiming();
        auto db = std::make_unique<SQLite::Database>(fresh("batch-cpp.db").string(),
                                                     SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        db->exec("PRAGMA journal_mode=WAL");
        db->exec("PRAGMA synchronous=OFF");
        db->exec("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, v REAL)");
        state.ResumeTiming();
        {
            SQLite::Transaction tx{*db};
            SQLite::Statement s{*db, "INSERT INTO t(name, v) VALUES(?, ?)"};
            for (int i = 0; i < batch_rows; ++i) {
                const std::string name = "row";
                s.bind(1, name);
                s.bind(2, i * 0.25);
                s.exec();
                s.reset();
            }
            tx.commit();
        }
        state.PauseTiming();
        db.reset();
        state.ResumeTiming();
    }
    state.SetItemsProcessed(state.iterations() * batch_rows);
}

void insert_batch_resilite(benchmark::State& state) {
    for (auto _ : state) {
        state.PauseTiming();
        auto db = std::make_unique<resilite::Database<>>(fresh("batch-resilite.db"));
        // OFF is outside what resilite's policies allow; set it underneath to measure only the
        // library's own cost, as the raw and SQLiteCpp runs do.
        db->with_connection([](auto& c) { c.exec_script("PRAGMA synchronous=OFF"); });
        db->exec_script("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, v REAL)");
        state.ResumeTiming();
        db->transaction([](auto& tx) {
            for (int i = 0; i < batch_rows; ++i) {
                const std::string name = "row";
                tx.exec("INSERT INTO t(name, v) VALUES(?, ?)", name, i * 0.25);
            }
        });
        state.PauseTiming();
        db.reset();
        state.ResumeTiming();
    }
    state.SetItemsProcessed(state.iterations() * batch_rows);
}

// ---- single-row commits, synchronous=FULL ------------------------------------------------------

void commit_full_raw(benchmark::State& state) {
    sqlite3* db = nullptr;
    check(sqlite3_open(fresh("commit-raw.db").c_str(), &db), db);
    check(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                           "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)", nullptr, nullptr, nullptr), db);
    sqlite3_stmt* s = nullptr;
    check(sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES(?)", -1, &s, nullptr), db);
    int i = 0;
    for (auto _ : state) {
        check(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), db);
        sqlite3_bind_int(s, 1, ++i);
        check(sqlite3_step(s), db);
        sqlite3_reset(s);
        check(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), db);
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
}

void commit_full_sqlitecpp(benchmark::State& state) {
    SQLite::Database db{fresh("commit-cpp.db").string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE};
    db.exec("PRAGMA journal_mode=WAL");
    db.exec("PRAGMA synchronous=FULL");
    db.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)");
    SQLite::Statement s{db, "INSERT INTO t(v) VALUES(?)"};
    int i = 0;
    for (auto _ : state) {
        SQLite::Transaction tx{db, SQLite::TransactionBehavior::IMMEDIATE};
        s.bind(1, ++i);
        s.exec();
        s.reset();
        tx.commit();
    }
}

void commit_full_resilite(benchmark::State& state) {
    resilite::Database<> db{fresh("commit-resilite.db")};
    db.exec_script("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)");
    int i = 0;
    for (auto _ : state) {
        db.transaction([&](auto& tx) { tx.exec("INSERT INTO t(v) VALUES(?)", ++i); });
    }
}

// Records each benchmark's time so the ratios can be printed after the usual table.
class ratio_reporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const auto& r : runs) {
            if (r.run_type == Run::RT_Iteration && r.error_occurred == false) {
                times_[r.benchmark_name()] = r.GetAdjustedRealTime();
            }
        }
        ConsoleReporter::ReportRuns(runs);
    }
    void print_ratios() const {
        fmt::print("\n{:<14} {:>16} {:>22}\n", "work", "resilite / raw", "resilite / SQLiteCpp");
        for (const char* work : {"point_select", "insert_batch", "commit_full"}) {
            const auto get = [&](const char* who) {
                const auto it = times_.find(fmt::format("{}_{}", work, who));
                return it == times_.end() ? 0.0 : it->second;
            };
            const double raw = get("raw"), cpp = get("sqlitecpp"), res = get("resilite");
            if (raw <= 0 || cpp <= 0 || res <= 0) continue;
            fmt::print("{:<14} {:>16.3f} {:>22.3f}\n", work, res / raw, res / cpp);
        }
    }

private:
    std::map<std::string, double> times_;
};
}  // namespace

BENCHMARK(point_select_raw);
BENCHMARK(point_select_sqlitecpp);
BENCHMARK(point_select_resilite);
BENCHMARK(insert_batch_raw)->Unit(benchmark::kMillisecond);
BENCHMARK(insert_batch_sqlitecpp)->Unit(benchmark::kMillisecond);
BENCHMARK(insert_batch_resilite)->Unit(benchmark::kMillisecond);
BENCHMARK(commit_full_raw)->Unit(benchmark::kMicrosecond);
BENCHMARK(commit_full_sqlitecpp)->Unit(benchmark::kMicrosecond);
BENCHMARK(commit_full_resilite)->Unit(benchmark::kMicrosecond);

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    ratio_reporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    reporter.print_ratios();
    std::error_code ec;
    std::filesystem::remove_all(bench_dir(), ec);
    benchmark::Shutdown();
    return 0;
}
