// Schema sync at open with 50 declared tables already in sync (DESIGN.md target: under 1 ms).
//   schema_sync_in_sync   the sync step alone (inspect everything, change nothing)
//   open_close_50_tables  a whole Database open (WAL, pragmas, sync) and close, for scale
//   open_close_no_schema  the same Database without a schema
#include <resilite/resilite.hpp>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <utility>

namespace {
template <int N>
struct row {
    BOOST_HANA_DEFINE_STRUCT(row, (std::int64_t, id), (std::string, name), (std::optional<double>, value),
                             (resilite::blob, data));
};

template <char Prefix, int N>
constexpr resilite::detail::fixed_string<4> numbered() {
    const char s[4] = {Prefix, static_cast<char>('0' + N / 10), static_cast<char>('0' + N % 10), 0};
    return resilite::detail::fixed_string<4>{s};
}

template <int N>
using table_n =
    resilite::table<numbered<'t', N>(), row<N>, resilite::primary_key<"id">,
                    resilite::index<numbered<'i', N>(), "name">, resilite::default_value<"name", "''">>;

template <int... N>
auto make_schema(std::integer_sequence<int, N...>) -> resilite::schema<table_n<N>...>;
using schema50 = decltype(make_schema(std::make_integer_sequence<int, 50>{}));

using Db = resilite::Database<schema50, resilite::null_observer,
                              resilite::wal_durability<resilite::synchronous::full, 60, 64, false>>;
using Plain = resilite::Database<resilite::null_observer,
                                 resilite::wal_durability<resilite::synchronous::full, 60, 64, false>>;

std::filesystem::path prepared() {
    static const std::filesystem::path p = [] {
        std::string templ =
            (std::filesystem::temp_directory_path() / "resilite-bench-schema-XXXXXX").string();
        if (::mkdtemp(templ.data()) == nullptr) std::abort();
        auto path = std::filesystem::path{templ} / "schema.db";
        Db db{path};  // creates all 50 tables and indexes
        if (db.sync_report().actions.size() != 100) std::abort();
        return path;
    }();
    return p;
}

void schema_sync_in_sync(benchmark::State& state) {
    resilite::sqlite::connection c{prepared()};
    const auto& def = schema50::definition();
    for (auto _ : state) {
        auto report = resilite::detail::sync_schema(c, def, resilite::schema_mode::add_missing);
        if (!report.actions.empty() || !report.drifts.empty()) state.SkipWithError("not in sync");
        benchmark::DoNotOptimize(report);
    }
}

void open_close_50_tables(benchmark::State& state) {
    const auto path = prepared();
    for (auto _ : state) {
        Db db{path};
        benchmark::DoNotOptimize(db.sync_report());
    }
}

void open_close_no_schema(benchmark::State& state) {
    const auto path = prepared();
    for (auto _ : state) {
        Plain db{path};
        benchmark::DoNotOptimize(db.path());
    }
}
}  // namespace

BENCHMARK(schema_sync_in_sync)->Unit(benchmark::kMicrosecond);
BENCHMARK(open_close_50_tables)->Unit(benchmark::kMicrosecond);
BENCHMARK(open_close_no_schema)->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
