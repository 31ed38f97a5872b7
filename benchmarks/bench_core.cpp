// Wall-clock comparison of resilite (default policies) with the raw SQLite C API and SQLiteCpp:
//   point_select  - SELECT by primary key on 100k rows
//   insert_batch  - 100k inserts in one transaction, synchronous=OFF (the library's own cost)
//   commit_full   - single-row transactions with synchronous=FULL (fsync-bound)
// Prints Google Benchmark's table, then resilite/raw and resilite/SQLiteCpp from the medians.
// Shared virtual machines are noisy at the few-percent level: bench_instructions.sh gives
// instruction counts for the CPU-bound work, which do not move between runs.
#include "contenders.hpp"

#include <benchmark/benchmark.h>

#include <map>
#include <set>
#include <vector>

namespace {
std::filesystem::path bench_dir() {
    static const std::filesystem::path dir = [] {
        std::string templ = (std::filesystem::temp_directory_path() / "resilite-bench-XXXXXX").string();
        if (::mkdtemp(templ.data()) == nullptr) std::abort();
        return std::filesystem::path{templ};
    }();
    return dir;
}

const std::filesystem::path& select_db() {
    static const std::filesystem::path p = [] {
        auto path = bench_dir() / "select.db";
        bench::build_select_database(path);
        return path;
    }();
    return p;
}

constexpr int batch_rows = 100'000;

template <class C>
void point_select(benchmark::State& state) {
    C c{select_db(), "OFF"};
    int i = 1;
    for (auto _ : state)
        benchmark::DoNotOptimize(c.point_select(bench::next_id(i)));
}

template <class C>
void insert_batch(benchmark::State& state) {
    const auto path = bench_dir() / fmt::format("batch-{}.db", C::name);
    for (auto _ : state) {
        state.PauseTiming();
        bench::remove_database(path);
        auto c = std::make_unique<C>(path, "OFF");
        state.ResumeTiming();
        c->insert_batch(batch_rows);
        state.PauseTiming();
        c.reset();
        state.ResumeTiming();
    }
    state.SetItemsProcessed(state.iterations() * batch_rows);
}

template <class C>
void commit_full(benchmark::State& state) {
    const auto path = bench_dir() / fmt::format("commit-{}.db", C::name);
    bench::remove_database(path);
    C c{path, "FULL"};
    int i = 0;
    for (auto _ : state)
        c.commit_one(++i);
}

// Records each benchmark's time so the ratios can be printed after the usual table.
class ratio_reporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        // The median of repetitions when there are any, else the single run.
        for (const auto& r : runs) {
            if (r.error_occurred) continue;
            const auto& name = r.run_name.function_name;
            if (r.run_type == Run::RT_Aggregate && r.aggregate_name == "median") {
                times_[name] = r.GetAdjustedRealTime();
                medians_.insert(name);
            } else if (r.run_type == Run::RT_Iteration && medians_.count(name) == 0) {
                times_[name] = r.GetAdjustedRealTime();
            }
        }
        ConsoleReporter::ReportRuns(runs);
    }
    void print_ratios() const {
        fmt::print("\n{:<14} {:>16} {:>22}\n", "work", "resilite / raw", "resilite / SQLiteCpp");
        for (const char* work : {"point_select", "insert_batch", "commit_full"}) {
            const auto get = [&](const char* who) {
                const auto it = times_.find(fmt::format("{}<bench::{}>", work, who));
                return it == times_.end() ? 0.0 : it->second;
            };
            const double raw = get("raw"), cpp = get("sqlitecpp"), res = get("resilite_default");
            if (raw <= 0 || cpp <= 0 || res <= 0) continue;
            fmt::print("{:<14} {:>16.3f} {:>22.3f}\n", work, res / raw, res / cpp);
        }
        for (const char* work : {"point_select", "commit_full"}) {  // what healing<> adds
            const auto it = times_.find(fmt::format("{}<bench::resilite_healing>", work));
            const auto base = times_.find(fmt::format("{}<bench::resilite_default>", work));
            if (it == times_.end() || base == times_.end() || base->second <= 0) continue;
            fmt::print("{:<14} healing<> / default: {:.3f}\n", work, it->second / base->second);
        }
    }

private:
    std::map<std::string, double> times_;
    std::set<std::string> medians_;
};
}  // namespace

BENCHMARK_TEMPLATE(point_select, bench::raw);
BENCHMARK_TEMPLATE(point_select, bench::sqlitecpp);
BENCHMARK_TEMPLATE(point_select, bench::resilite_default);
BENCHMARK_TEMPLATE(point_select, bench::resilite_healing);
BENCHMARK_TEMPLATE(insert_batch, bench::raw)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(insert_batch, bench::sqlitecpp)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(insert_batch, bench::resilite_default)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(commit_full, bench::raw)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(commit_full, bench::sqlitecpp)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(commit_full, bench::resilite_default)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(commit_full, bench::resilite_healing)->Unit(benchmark::kMicrosecond);

int main(int argc, char** argv) {
    // By default: 5 repetitions, interleaved at random so that no contender always runs first
    // or last (order alone moved the point-select ratio by several percent); ratios use medians.
    std::vector<char*> args(argv, argv + argc);
    std::string reps = "--benchmark_repetitions=5";
    std::string interleave = "--benchmark_enable_random_interleaving=true";
    std::string aggregates = "--benchmark_report_aggregates_only=true";
    if (argc == 1) {
        args.push_back(reps.data());
        args.push_back(interleave.data());
        args.push_back(aggregates.data());
    }
    argc = static_cast<int>(args.size());
    argv = args.data();
    benchmark::Initialize(&argc, argv);
    ratio_reporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    reporter.print_ratios();
    std::error_code ec;
    std::filesystem::remove_all(bench_dir(), ec);
    benchmark::Shutdown();
    return 0;
}
