#!/usr/bin/env bash
# flatface's training step beside the same step in plain PyTorch (bench/baseline.py), on the same
# shapes and thread count, plus the loader, evaluation and the memory of each strategy.
#
#   bench/compare.sh                      # CPU: bench/cpu.toml, from the repository root's build/
#   BUILD=build-cuda TOML=bench/gpu_r50.toml bench/compare.sh --set 'train.precision="bf16"'
#
# Environment: BUILD (build folder, default build), TOML (default bench/cpu.toml), STEPS (timed
# steps per setup, 40), WARMUP (5), CLASSES (class-weight rows, 1000), REPEATS (alternating runs
# of each tool, 3), MEMORY_CLASSES (rows for the memory probe, 100000; 0 skips it), OUT (folder
# for the JSON files, results/bench). Extra arguments go to `flatface bench`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
flatface=${BUILD:-build}/bin/flatface
toml=${TOML:-bench/cpu.toml}
steps=${STEPS:-40}
warmup=${WARMUP:-5}
classes=${CLASSES:-1000}
repeats=${REPEATS:-3}
memory_classes=${MEMORY_CLASSES:-100000}
out=${OUT:-results/bench}
python=/usr/bin/python3  # Debian's python3-torch (same libtorch as flatface)
if [[ ! -x $python ]] || ! $python -c 'import torch' 2>/dev/null; then python=python3; fi

[[ -x $flatface ]] || { echo "compare.sh: $flatface not found; build first (README)" >&2; exit 2; }
mkdir -p "$out"
rm -f "$out"/flatface-*.json "$out"/baseline-*.json "$out"/memory-*.json

orl=../shared/data/orl
loader_args=()
[[ -d $orl ]] && loader_args=(--loader-data "{ plugin = \"image-folder\", path = \"$orl\" }")

# Alternate the two tools so that a slow spell of the machine hits both.
for ((r = 1; r <= repeats; r++)); do
  echo "== run $r/$repeats: flatface bench" >&2
  skip=()
  ((r > 1)) && skip=(--skip loader --skip eval)
  "$flatface" bench "$toml" --classes "$classes" --steps "$steps" --warmup "$warmup" \
    ${loader_args[@]+"${loader_args[@]}"} ${skip[@]+"${skip[@]}"} "$@" \
    --json "$out/flatface-$r.json" >&2
  threads=$($python -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"]["threads"])' \
    "$out/flatface-$r.json")
  echo "== run $r/$repeats: bench/baseline.py" >&2
  OMP_NUM_THREADS=$threads $python bench/baseline.py --config "$out/flatface-$r.json" \
    --json "$out/baseline-$r.json" >&2
done

# Peak memory of one setup per process, with a class-weight matrix large enough that the
# parameters dominate what a step allocates. Large blocks are mmap-ed (and returned on free), so
# peak RSS follows the live tensors instead of glibc's heap growth (which varies run to run).
if ((memory_classes > 0)); then
  setups=$($python -c 'import json,sys
for s in json.load(open(sys.argv[1]))["config"]["setups"]: print(s["name"])' "$out/flatface-1.json")
  while IFS= read -r setup; do
    echo "== memory: $setup ($memory_classes classes)" >&2
    MALLOC_MMAP_THRESHOLD_=65536 \
      "$flatface" bench "$toml" --setup "$setup" --classes "$memory_classes" --steps 3 --warmup 1 \
      --skip loader --skip eval "$@" --json "$out/memory-$setup.json" >/dev/null
  done <<<"$setups"
fi

$python - "$out" "$repeats" <<'EOF'
import glob, json, os, statistics, sys

out, repeats = sys.argv[1], int(sys.argv[2])
load = lambda p: json.load(open(p))
ff = [load(f"{out}/flatface-{r}.json") for r in range(1, repeats + 1)]
py = [load(f"{out}/baseline-{r}.json") for r in range(1, repeats + 1)]

def medians(runs, key="median_ms"):  # setup -> the median over runs of each run's `key`
    names = [s["setup"] for s in runs[0]["steps"]]
    return {n: statistics.median(next(s[key] for s in r["steps"] if s["setup"] == n)
                                 for r in runs) for n in names}, runs[0]["steps"]

f_ms, f_steps = medians(ff)
f_mean, _ = medians(ff, "amortised_ms")
p_ms, _ = medians(py)  # the baseline has the strategies it implements
cfg = ff[0]["config"]
plain = {s["head"]: s["setup"] for s in reversed(f_steps) if not s["two_pass"]}
print(f"# {ff[0]['date']}  {ff[0]['machine']}  torch {ff[0]['torch_version']}")
print(f"# {cfg['backbone']['plugin']} {cfg['input']}x{cfg['input']}, batch {cfg['batch_size']}, "
      f"{cfg['classes']} classes, {cfg['device']}, {cfg['threads']} threads, {cfg['precision']}; "
      f"median of {cfg['steps']} interleaved steps, median over {repeats} alternating runs\n")
print("| setup | perturbation | flatface ms | python ms | flatface / python | "
      "flatface x plain | python x plain | flatface amortised ms | amortised x plain |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
nan = float("nan")
for s in f_steps:
    n, base = s["setup"], plain.get(s["head"])
    fx = f_ms[n] / f_ms[base] if base else nan
    ax = f_mean[n] / f_mean[base] if base else nan
    py_ms = p_ms.get(n)
    px = py_ms / p_ms[base] if base and py_ms is not None and base in p_ms else nan
    py_cols = (f"{py_ms:.2f} | {f_ms[n] / py_ms:.3f}" if py_ms is not None else "- | -")
    print(f"| {n} | {s['perturbation']} | {f_ms[n]:.2f} | {py_cols} | {fx:.3f} | "
          f"{'-' if py_ms is None else f'{px:.3f}'} | {f_mean[n]:.2f} | {ax:.3f} |")

if ff[0].get("loader"):
    print("\n| loader | threads | img/s | x plain step |")
    print("|---|---:|---:|---:|")
    for l in ff[0]["loader"]:
        x = l["ratio_to_plain_step"]
        print(f"| {l['dataset']} | {l['threads']} | {l['images_per_second']:.0f} | "
              f"{'-' if x is None else f'{x:.1f}'} |")
if ff[0].get("eval"):
    print("\n| evaluation | pairs | seconds | pairs/s |")
    print("|---|---:|---:|---:|")
    for e in ff[0]["eval"]:
        print(f"| {e['benchmark']} | {e['pairs']} | {e['median_seconds']:.3f} | "
              f"{e['pairs_per_second']:.0f} |")

mem = {os.path.basename(p)[7:-5]: load(p) for p in glob.glob(f"{out}/memory-*.json")}
if mem:
    any_run = next(iter(mem.values()))
    param_mib = any_run["parameters"] * 4 / 2**20
    base = next((n for n, m in mem.items() if not m["steps"][0]["two_pass"]), None)
    print(f"\n| memory ({any_run['config']['classes']} classes, {any_run['parameters']} parameters"
          f" = {param_mib:.1f} MiB fp32) | peak RSS MiB | extra vs plain, in parameter copies |")
    print("|---|---:|---:|")
    for s in f_steps:
        m = mem.get(s["setup"])
        if not m:
            continue
        extra = (m["peak_rss_mb"] - mem[base]["peak_rss_mb"]) / param_mib if base else float("nan")
        print(f"| {s['setup']} | {m['peak_rss_mb']:.1f} | {extra:.2f} |")
EOF
