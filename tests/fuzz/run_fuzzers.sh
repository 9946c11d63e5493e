#!/usr/bin/env bash
# Builds every tests/fuzz/fuzz_*.cpp with clang (-fsanitize=fuzzer,address,undefined) and runs each
# for a bounded time, seeded from make_seeds.py (shared data) and its own growing corpus.
#   tests/fuzz/run_fuzzers.sh [SECONDS per fuzzer, default 60]
# Env: FLATFACE_FUZZ_BUILD (build folder, default build-fuzz), FLATFACE_SHARED_DIR (../shared).
# Exits non-zero when a fuzzer finds a crash; the reproducer lands in <build>/fuzz-artifacts/.
set -euo pipefail
seconds=${1:-60}
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${FLATFACE_FUZZ_BUILD:-$src/build-fuzz}
shared=${FLATFACE_SHARED_DIR:-$(cd "$src/.." && pwd)/shared}

mkdir -p "$build"
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DFLATFACE_FUZZ=ON >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 1; }
fuzzers=$(cd "$src/tests/fuzz" && ls fuzz_*.cpp | sed 's/\.cpp$//')
# shellcheck disable=SC2086
cmake --build "$build" --target $fuzzers

python3 "$src/tests/fuzz/make_seeds.py" "$shared" "$build/fuzz-seeds"
mkdir -p "$build/fuzz-artifacts"
status=0
for f in $fuzzers; do
  corpus="$build/fuzz-corpus/$f"
  mkdir -p "$corpus"
  seeds=()
  [ -d "$build/fuzz-seeds/$f" ] && seeds=("$build/fuzz-seeds/$f")
  echo "== $f: ${seconds}s"
  if ! "$build/bin/$f" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
      -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$f-" "$corpus" "${seeds[@]}" \
      >"$build/fuzz-$f.log" 2>&1; then
    status=1
    echo "!! $f failed; see $build/fuzz-$f.log and $build/fuzz-artifacts/"
    grep -m1 -A20 "ERROR\|==ERROR\|runtime error\|deadly signal" "$build/fuzz-$f.log" || tail -30 "$build/fuzz-$f.log"
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$build/fuzz-$f.log" | sed "s/^/   /"
done
exit $status
