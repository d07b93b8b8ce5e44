#!/usr/bin/env bash
# Runs tests/load/compare.sh RUNS times for each number of calls, appending every run to
# OUT/summary.csv, then tests/load/report.py prints the medians and draws OUT/load.png.
# Usage: tests/load/sweep.sh RUNS "CALLS..." [RAMP] [HOLD] [OUT]
# e.g.   tests/load/sweep.sh 3 "100 1000" 10s 20s; FRAMES_PER_WRITE=5 tests/load/sweep.sh 2 5000 20s 20s
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:?runs}; counts=${2:?calls}; ramp=${3:-10s}; hold=${4:-20s}; out=${5:-target/load}
mkdir -p "$out"
for calls in $counts; do
  for run in $(seq "$runs"); do
    echo "== $calls calls, run $run of $runs"
    tests/load/compare.sh "$calls" "$ramp" "$hold" "$out" 2>&1 | grep -v -e ' INFO ' -e ' WARN ' || true
  done
done
python3 tests/load/report.py "$out/summary.csv" "$out/load.png"
