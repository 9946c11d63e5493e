#!/usr/bin/env python3
"""Amortised training-step cost per setup of a finished grid, from its HDF5 result files.

    /usr/bin/python3 bench/step_cost.py results/efficient

For every setup (mean over its runs): the mean step time over all epochs (batch size /
images_per_second, each epoch's rate measured over all its steps), its ratio to the plain step of
the same head (the setup whose perturbation is `none`), the fraction of steps that made a second
pass, the training wall time per run (the last epoch's wall_time: steps, evaluation and saving),
and the final training and benchmark accuracy. Prints a Markdown table.
"""
import glob
import statistics
import sys
import tomllib

import h5py
import numpy as np


def runs(folder):
    for path in sorted(glob.glob(f"{folder}/*.h5")):
        with h5py.File(path, "r") as f:
            a = f.attrs
            if a["status"] != "complete":
                continue
            config = tomllib.loads(a["config_toml"])
            batch = config["train"]["batch_size"]
            m = f["metrics"]
            img_s = m["images_per_second"][:]
            names = [str(n) for n in a["benchmark_names"]]
            bench = np.mean([f[f"eval/{n}/accuracy"][-1] for n in names]) if names else np.nan
            yield {
                "setup": a["setup"],
                "head": a["head_plugin"],
                "perturbation": a["perturbation"],
                "ms": float(np.mean(1e3 * batch / img_s)),
                "second_pass": float(np.mean(m["second_pass_fraction"][:]))
                if "second_pass_fraction" in m else float("nan"),
                "wall": float(m["wall_time"][-1]),
                "train_acc": float(m["train_accuracy"][-1]),
                "bench_acc": float(bench),
            }


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rows = list(runs(sys.argv[1]))
    if not rows:
        sys.exit(f"step_cost: no complete run in {sys.argv[1]}")
    setups = list(dict.fromkeys(r["setup"] for r in rows))  # first-seen order
    by_setup = {s: [r for r in rows if r["setup"] == s] for s in setups}
    mean = lambda s, k: statistics.mean(r[k] for r in by_setup[s])
    plain = {by_setup[s][0]["head"]: s for s in setups if by_setup[s][0]["perturbation"] == "none"}
    print("| setup | runs | ms/step | x plain | second pass | wall s/run | train acc | "
          "benchmark acc | gap |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in setups:
        base = plain.get(by_setup[s][0]["head"])
        ratio = mean(s, "ms") / mean(base, "ms") if base else float("nan")
        train, bench = mean(s, "train_acc"), mean(s, "bench_acc")
        print(f"| {s} | {len(by_setup[s])} | {mean(s, 'ms'):.1f} | {ratio:.2f} | "
              f"{100 * mean(s, 'second_pass'):.0f}% | {mean(s, 'wall'):.1f} | {100 * train:.2f}% | "
              f"{100 * bench:.2f}% | {100 * (train - bench):.2f} |")


if __name__ == "__main__":
    main()
