#!/usr/bin/env bash
# Instruction counts (callgrind) of the CPU-bound work for each contender, and the ratios.
# Repeatable to the instruction, unlike wall-clock time on a shared machine.
#   benchmarks/bench_instructions.sh BUILD_DIR      (BUILD_DIR holds benchmarks/bench_instructions)
set -euo pipefail
bin="${1:?build directory}/benchmarks/bench_instructions"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
declare -A count
for work in point_select insert_batch; do
  for who in raw sqlitecpp resilite resilite_healing; do
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$dir/$work.$who.out" \
      "$bin" "$work" "$who" "$dir" > /dev/null 2>&1
    count[$work.$who]="$(grep -E '^totals:' "$dir/$work.$who.out" | awk '{print $2}')"
  done
done
printf '%-14s %14s %14s %14s %16s %22s %22s\n' work raw sqlitecpp resilite "resilite / raw" "resilite / SQLiteCpp" \
  "healing<> / resilite"
for work in point_select insert_batch; do
  r=${count[$work.raw]} c=${count[$work.sqlitecpp]} s=${count[$work.resilite]} h=${count[$work.resilite_healing]}
  printf '%-14s %14s %14s %14s %16s %22s %22s\n' "$work" "$r" "$c" "$s" \
    "$(awk -v a="$s" -v b="$r" 'BEGIN{printf "%.3f", a/b}')" "$(awk -v a="$s" -v b="$c" 'BEGIN{printf "%.3f", a/b}')" \
    "$(awk -v a="$h" -v b="$s" 'BEGIN{printf "%.3f", a/b}')"
done
