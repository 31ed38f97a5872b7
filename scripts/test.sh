#!/usr/bin/env bash
# Builds and runs the whole test suite twice: a normal build (with the consumer and
# compile-fail tests, and the check that the docs' snippets equal the compiled examples) and an
# AddressSanitizer + UndefinedBehaviorSanitizer build.
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

echo "== normal build"
cmake -S . -B build/test -DCMAKE_BUILD_TYPE=Debug -DRESILITE_BUILD_BENCHMARKS=OFF
cmake --build build/test -j "$jobs"
ctest --test-dir build/test -j "$jobs" --output-on-failure

echo "== sanitizer build (address, undefined)"
cmake -S . -B build/sanitize -DCMAKE_BUILD_TYPE=Debug -DRESILITE_BUILD_BENCHMARKS=OFF \
      -DRESILITE_SANITIZE=address,undefined
cmake --build build/sanitize -j "$jobs"
ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  ctest --test-dir build/sanitize -j "$jobs" --output-on-failure -E '^(consumer|compile_fail|docs)\.'
