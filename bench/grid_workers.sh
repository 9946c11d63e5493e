#!/bin/bash
# The quickstart grid trained by one process with 2 threads (A) and by `--workers 2 --threads 1`
# (B), back to back in the order A B B A, each into a fresh output folder. Prints each run's wall
# time, flatface's own summary lines (claiming time included) and the machine's load while it
# ran (1-minute load average sampled every 10 s), and keeps everything in OUT.
#
#   bash bench/grid_workers.sh [OUT]        # from the repository root, after building
set -euo pipefail
FLATFACE=${FLATFACE:-build/bin/flatface}
TOML=${TOML:-experiments/quickstart.toml}
OUT=${1:-/tmp/flatface-grid-bench}
mkdir -p "$OUT"

run_one() {  # NAME ARGS...
  local name=$1
  shift
  local dir="$OUT/$name"
  rm -rf "$dir"
  mkdir -p "$dir"
  (while true; do cut -d' ' -f1 /proc/loadavg >>"$dir/load.txt"; sleep 10; done) &
  local sampler=$!
  uptime >"$dir/uptime-before.txt"
  local t0 t1
  t0=$(date +%s.%N)
  "$FLATFACE" run "$TOML" --set "experiment.output=\"$dir/results\"" "$@" >"$dir/log.txt" 2>&1 &
  local pid=$!
  # A status snapshot a third of the way in (the quickstart takes ~7 minutes).
  (sleep "${SNAPSHOT_AFTER:-150}"; "$FLATFACE" status "$dir/results" >"$dir/status.txt" 2>&1 || true) &
  wait "$pid"
  t1=$(date +%s.%N)
  uptime >"$dir/uptime-after.txt"
  kill "$sampler" 2>/dev/null || true
  wait 2>/dev/null || true
  local wall load
  wall=$(echo "$t1 - $t0" | bc)
  load=$(awk '{ s += $1; n += 1 } END { if (n) printf "%.2f", s / n }' "$dir/load.txt")
  printf '%s\t%s\twall %.1f s\tmean load %s\t%s\n' "$name" "$*" "$wall" "$load" \
    "$(tr -s ' ' <"$dir/uptime-before.txt")" | tee -a "$OUT/summary.txt"
  grep -E "trained|wall " "$dir/log.txt" | sed 's/^/    /' | tee -a "$OUT/summary.txt"
}

: >"$OUT/summary.txt"
run_one A1 --threads 2 --no-report
run_one B1 --workers 2 --threads 1 --no-report
run_one B2 --workers 2 --threads 1 --no-report
run_one A2 --threads 2 --no-report
