#!/usr/bin/env bash
# The main job: builds and runs the resilite demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=Release -DRESILITE_BUILD_TESTS=OFF \
      -DRESILITE_BUILD_BENCHMARKS=OFF > /dev/null
cmake --build build/demo -j "$(nproc)" --target example_demo resilite_cli > /dev/null
exec build/demo/examples/resilite-demo --cli build/demo/tools/resilite "$@"
