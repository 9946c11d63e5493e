#!/bin/bash
# Data-parallel training on the CPU: one epoch of bench/cpu.toml's model (narrow IResNet-18,
# 56x56, global batch 64) trained by one process with 2 threads (A) and by 2 Gloo ranks with 1
# thread each (`--nproc 2 --threads 1`, B), for the plain step and SAM, in the order A B B A.
# Prints each session's ms/step (flatface's own completion line: training steps only, evaluation
# and saving left out), rank 0's share of step time spent in all-reduce, and the 1-minute load
# average before each session. Measure on a quiet machine (load < 2.5).
#
#   bash bench/dist_cpu.sh [OUT]        # from the repository root, after building
set -euo pipefail
FLATFACE=${FLATFACE:-build/bin/flatface}
OUT=${1:-/tmp/flatface-dist-bench}
mkdir -p "$OUT"

session() {  # NAME SETUP ARGS...
  local name=$1 setup=$2
  shift 2
  local dir="$OUT/$name-$setup"
  rm -rf "$dir"
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)
  "$FLATFACE" run bench/cpu.toml --only "setup=$setup" --no-report \
    --set 'train.epochs=1' --set "experiment.output=\"$dir\"" "$@" >"$dir.log" 2>&1
  local step share
  step=$(grep -o '[0-9.]* ms/step' "$dir.log" | head -1)
  share=$(grep -o 'in all-reduce ([0-9.]*%)' "$dir.log" | grep -o '[0-9.]*%' || echo "-")
  printf '%-28s %-6s %14s  all-reduce %6s  load %s\n' "$name" "$setup" "$step" "$share" "$load"
}

for setup in none sam; do
  session "1 process x 2 threads" "$setup" --threads 2
  session "2 ranks x 1 thread" "$setup" --threads 1 --nproc 2
  session "2 ranks x 1 thread" "$setup" --threads 1 --nproc 2
  session "1 process x 2 threads" "$setup" --threads 2
done
