#!/usr/bin/env bash
# Builds and runs the whole test suite twice, once per compiler: a Clang build (with the
# consumer and compile-fail tests, and the check that the docs' snippets equal the compiled
# examples) and a GCC build under AddressSanitizer + UndefinedBehaviorSanitizer. Both build
# with -Wall -Wextra -Wpedantic -Werror.
# Property tests use a fixed seed unless RESILITE_RANDOM_SEED=1 (or RC_PARAMS is set).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

if [ "${RESILITE_RANDOM_SEED:-0}" = "1" ]; then
  unset RC_PARAMS
  echo "property tests: random seed (printed by each property on failure)"
else
  export RC_PARAMS="${RC_PARAMS:-seed=20261122}"
  echo "property tests: RC_PARAMS=$RC_PARAMS"
fi
jobs="$(nproc)"

echo "== Clang build"
cmake -S . -B build/test-clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug -DRESILITE_BUILD_BENCHMARKS=OFF
cmake --build build/test-clang -j "$jobs"
ctest --test-dir build/test-clang -j "$jobs" --output-on-failure

echo "== GCC build under sanitizers (address, undefined)"
cmake -S . -B build/sanitize -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Debug -DRESILITE_BUILD_BENCHMARKS=OFF \
      -DRESILITE_SANITIZE=address,undefined
cmake --build build/sanitize -j "$jobs"
ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  ctest --test-dir build/sanitize -j "$jobs" --output-on-failure -E '^(consumer|compile_fail|docs)\.'
