#!/usr/bin/env bash
# The whole GPU check in one command, for a machine with a GPU, a torch 2.x wheel, a compiler and
# CMake but none of our -dev packages (the kit from cmake/gpu-kit.sh brings them):
#   1. unpack the kit; 2. configure the `cuda` preset against torch's CMake prefix and build;
#   3. the test suite; 4. one fixed batch's losses, gradients and weights on CPU vs CUDA
#   (`test_train_step "[cuda]"`); 5. bench/compare.sh on bench/gpu_r50.toml in fp32 and bf16;
#   6. data-parallel: one epoch of bench/gpu_r50.toml (SAM) on 1 GPU vs all GPUs (`--nproc N`,
#   NCCL), ms/step and the share of step time in all-reduce (skipped with fewer than 2 GPUs).
# Everything goes to OUT (default results/gpu-check): summary.txt and one log per part.
#   bash bench/gpu_check.sh [--kit DIR] [--out DIR] [--jobs N] [--skip-bench]
#   bash bench/gpu_check.sh --cpu ...   the same build and tests on the CPU with the `default`
#                                       preset (how cmake/check-debian13.sh --kit proves the kit)
# Target: under 10 minutes on one H200 machine (16 cores).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kit=$root/kit out=$root/results/gpu-check cpu=0 jobs=$(nproc) bench=1
while (($#)); do
  case "$1" in
    --kit) kit=$(realpath "$2") && shift ;;
    --out) out=$(realpath -m "$2") && shift ;;
    --jobs) jobs=$2 && shift ;;
    --cpu) cpu=1 ;;
    --skip-bench) bench=0 ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' && exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$1' (see --help)" >&2 && exit 2 ;;
  esac
  shift
done
mkdir -p "$out"
cd "$root"  # the presets and bench/ are found from here
summary=$out/summary.txt
: >"$summary"
say() { echo "$*" | tee -a "$summary"; }
failed=0
part() {  # part NAME LOG COMMAND...: runs the command into LOG, records time and status
  local name=$1 log=$out/$2 start=$SECONDS status
  shift 2
  echo "== $name (log: $log)"
  "$@" >"$log" 2>&1
  status=$?
  say "$(printf '%-34s %5d s  %s' "$name" $((SECONDS - start)) "$([[ $status == 0 ]] && echo ok || echo "FAILED ($status)")")"
  ((status == 0)) || { failed=1; tail -n 30 "$log"; }
  return $status
}

say "gpu_check: $(date -u +%FT%TZ) on $(hostname), $(nproc) cores, commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"
command -v nvidia-smi >/dev/null && say "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"

# 1. The kit, unpacked once into OUT/kit-root (dpkg-deb where there is one, else ar + tar).
prefix=$out/kit-root
unpack_kit() {
  [[ -f $kit/PACKAGES ]] || { echo "no kit at $kit: run cmake/gpu-kit.sh on Debian 12 and carry kit/"; return 2; }
  rm -rf "$prefix" && mkdir -p "$prefix"
  local deb tmp
  for deb in "$kit"/*.deb; do
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$deb" "$prefix"
    else
      tmp=$(mktemp -d) && (cd "$tmp" && ar x "$deb" && tar -xf data.tar.* -C "$prefix") && rm -rf "$tmp"
    fi
  done
  echo "unpacked $(ls "$kit"/*.deb | wc -l) packages into $prefix ($(du -sh "$prefix" | cut -f1))"
}
part "unpack kit" kit.log unpack_kit || exit 1

# The kit's libraries are used only where the machine lacks a library of that soname: its own
# (newer) copies of e.g. libssl or libzstd keep serving the compiler, CMake and Python.
libs=$out/kit-lib
rm -rf "$libs" && mkdir -p "$libs"
have=$(ldconfig -p 2>/dev/null | awk '{print $1}' | sort -u)
for lib in "$prefix"/usr/lib/x86_64-linux-gnu/*.so.* "$prefix"/usr/lib/x86_64-linux-gnu/hdf5/serial/*.so.*; do
  name=$(basename "$lib")
  [[ $name =~ \.so\.[0-9]+$ ]] || continue  # sonames only
  grep -qxF "$name" <<<"$have" || ln -sf "$lib" "$libs/$name"
done
export LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# gnuplot draws the report figures; the kit's (Debian names it gnuplot-nox) unless there is one.
command -v gnuplot >/dev/null || export FLATFACE_GNUPLOT=$prefix/usr/bin/gnuplot-nox

python=$(command -v python3 || true)
torch_prefix=""
if [[ -n $python ]]; then
  torch_prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)
  [[ -f $torch_prefix/Torch/TorchConfig.cmake ]] || torch_prefix=""  # Debian's python3-torch has none
fi
preset=cuda build=$out/build
((cpu)) && preset=default
say "torch: ${torch_prefix:-system libtorch}; python: ${python:-none}; preset: $preset"

# 2. Configure and build.
configure() {
  CMAKE_PREFIX_PATH="${torch_prefix:+$torch_prefix;}$prefix/usr" cmake --preset "$preset" -B "$build" --fresh \
    -DCMAKE_PREFIX_PATH="${torch_prefix:+$torch_prefix;}$prefix/usr" \
    -DCMAKE_CXX_COMPILER_LAUNCHER="$(command -v ccache || true)" \
    -DCMAKE_INSTALL_PREFIX="$build/install" \
    -DFLATFACE_PYTHON="${python:-/usr/bin/python3}"
}
part "configure ($preset preset)" configure.log configure || exit 1
part "build (-j $jobs)" build.log cmake --build "$build" -j "$jobs" || exit 1

# 3. The test suite (the CLI tests, embeddings and Python cross-checks run as on the CPU).
part "test suite" ctest.log ctest --test-dir "$build" -j "$jobs" --output-on-failure --timeout 900
grep -E "tests passed|tests failed" "$out/ctest.log" | tee -a "$summary"

if ((!cpu)); then
  # 4. The same batch and steps on CPU and CUDA, every strategy and head.
  part "CPU vs CUDA step" parity.log "$build/bin/test_train_step" "[cuda]" --success --reporter compact
  grep -E "^(All tests|test cases)" "$out/parity.log" | tail -n 1 | tee -a "$summary"
  # 5. Speed beside plain PyTorch, fp32 then bf16 (bench/RESULTS.md takes these tables).
  if ((bench)); then
    for precision in fp32 bf16; do
      part "compare.sh $precision" "bench-$precision.txt" env BUILD="$build" TOML=bench/gpu_r50.toml \
        CLASSES=10572 MEMORY_CLASSES=0 REPEATS=1 STEPS=20 OUT="$out/bench-$precision" \
        bash "$root/bench/compare.sh" --set "train.precision=\"$precision\""
    done
  fi
  # 6. One run on 1 GPU, then on all of them (global batch 128 either way).
  gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
  if ((bench && gpus > 1)); then
    data_parallel() {  # NPROC
      "$build/bin/flatface" run bench/gpu_r50.toml --only setup=sam --no-report \
        --set 'train.epochs=1' --set "experiment.output=\"$out/dist-$1\"" --nproc "$1"
    }
    for n in 1 "$gpus"; do
      part "data-parallel, $n GPU(s)" "dist-$n.log" data_parallel "$n" &&
        say "  $(grep -o '[0-9.]* ms/step' "$out/dist-$n.log" | head -1); $(grep -o '[0-9.]* s of [0-9.]* s of training steps in all-reduce ([0-9.]*%)' "$out/dist-$n.log" | head -1)"
    done
  fi
fi
say "gpu_check: $([[ $failed == 0 ]] && echo 'all parts passed' || echo 'SOME PARTS FAILED') in $SECONDS s"
exit $failed
