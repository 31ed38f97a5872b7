// Counts the instructions one contender spends on one kind of work, under callgrind, with
// collection switched on only around the measured loop (set-up and the data set excluded).
//   valgrind --tool=callgrind --instr-atstart=no bench_instructions WORK CONTENDER DIR
// bench_instructions.sh runs every combination and prints the ratios.
#include "contenders.hpp"

#include <valgrind/callgrind.h>

#include <cstring>

namespace {
constexpr int selects = 20'000;
constexpr int batch_rows = 20'000;

template <class C>
int run(const char* work, const std::filesystem::path& dir) {
    if (std::strcmp(work, "point_select") == 0) {
        const auto path = dir / "select.db";
        if (!std::filesystem::exists(path)) bench::build_select_database(path);
        C c{path, "OFF"};
        std::size_t sum = 0;
        int i = 1;
        CALLGRIND_START_INSTRUMENTATION;
        for (int k = 0; k < selects; ++k)
            sum += c.point_select(bench::next_id(i)).size();
        CALLGRIND_STOP_INSTRUMENTATION;
        return sum > 0 ? 0 : 1;
    }
    if (std::strcmp(work, "insert_batch") == 0) {
        const auto path = dir / fmt::format("batch-{}.db", C::name);
        bench::remove_database(path);
        C c{path, "OFF"};
        CALLGRIND_START_INSTRUMENTATION;
        c.insert_batch(batch_rows);
        CALLGRIND_STOP_INSTRUMENTATION;
        return 0;
    }
    return 2;
}
}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        fmt::print(stderr,
                   "usage: bench_instructions point_select|insert_batch raw|sqlitecpp|resilite|resilite_healing DIR\n");
        return 2;
    }
    const std::string who = argv[2];
    if (who == "raw") return run<bench::raw>(argv[1], argv[3]);
    if (who == "sqlitecpp") return run<bench::sqlitecpp>(argv[1], argv[3]);
    if (who == "resilite") return run<bench::resilite_default>(argv[1], argv[3]);
    if (who == "resilite_healing") return run<bench::resilite_healing>(argv[1], argv[3]);
    return 2;
}
