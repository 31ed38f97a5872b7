#pragma once
// resilite::testing::trials(n): how many trials a randomized test runs: n, times the factor in
// the environment variable RESILITE_TRIALS (e.g. RESILITE_TRIALS=10 for a long run).

#include <cstdlib>
#include <string>

namespace resilite::testing {

[[nodiscard]] inline int trials(int n) {
    const char* factor = std::getenv("RESILITE_TRIALS");
    if (factor == nullptr) return n;
    const int f = std::atoi(factor);
    return f > 0 ? n * f : n;
}

}  // namespace resilite::testing
