#!/usr/bin/env bash
# Compile time of each benchmarks/compile_*.cpp translation unit: user CPU seconds of one
# compiler run at -O2 (DESIGN.md §8 target: a TU using a 10-table Database within 5 s). A
# measurement for the log, never a pass/fail test.
#   benchmarks/compile_time.sh [compiler, default c++] [translation unit names, default every one]
set -euo pipefail
cxx="${1:-c++}"
root="$(cd "$(dirname "$0")/.." && pwd)"
printf '%-28s %10s %10s %14s\n' "translation unit" "user s" "sys s" "preprocessed"
shift || true
if [ "$#" -gt 0 ]; then units=("$@"); else units=("$root"/benchmarks/compile_*.cpp); fi
for tu in "${units[@]}"; do
  case "$tu" in /*) ;; *) tu="$root/benchmarks/$tu" ;; esac
  lines="$("$cxx" -std=c++20 -E -I"$root/include" "$tu" | wc -l)"
  # bash's own `time` (no /usr/bin/time on a fresh machine)
  TIMEFORMAT='%U %S'
  log="$(mktemp)"
  if ! times="$( { time "$cxx" -std=c++20 -O2 -I"$root/include" -c "$tu" -o /dev/null 2>"$log"; } 2>&1 | tail -1)" ||
     [ -s "$log" ]; then
    cat "$log" >&2
    rm -f "$log"
    echo "$(basename "$tu"): the compiler failed or complained" >&2
    exit 1
  fi
  rm -f "$log"
  printf '%-28s %10s %10s %14s\n' "$(basename "$tu")" "${times% *}" "${times#* }" "$lines lines"
done
printf 'target: compile_10_tables.cpp within 5 s user time\n'
