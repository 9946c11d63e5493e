#!/usr/bin/env python3
"""Amortised training-step cost per setup of a finished grid, from its HDF5 result files.

    /usr/bin/python3 bench/step_cost.py results/efficient

For every setup (mean over its runs): the mean step time over all epochs (batch size /
images_per_second, each epoch's rate measured over all its steps), its ratio to the plain step of
the same head (the setup whose perturbation is `none`), the fraction of steps that made a second
pass, the training wall time per run (the last epoch's wall_time: steps, evaluation and saving),
and the final training accuracy, benchmark accuracy (mean over the benchmarks) and
generalization gap, as mean ± sample std over the runs. Prints a Markdown table.
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
            order = [setup["name"] for setup in config.get("setup", [])]
            yield {
                "order": order.index(a["setup"]) if a["setup"] in order else len(order),
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
    rows.sort(key=lambda r: r["order"])  # the experiment's setup order
    setups = list(dict.fromkeys(r["setup"] for r in rows))
    by_setup = {s: [r for r in rows if r["setup"] == s] for s in setups}
    mean = lambda s, k: statistics.mean(r[k] for r in by_setup[s])

    def pm(s, f):  # mean ± sample std over the runs, in percent
        v = [100 * f(r) for r in by_setup[s]]
        return f"{statistics.mean(v):.2f} ± {statistics.stdev(v):.2f}" if len(v) > 1 else \
            f"{v[0]:.2f}"

    plain = {by_setup[s][0]["head"]: s for s in setups if by_setup[s][0]["perturbation"] == "none"}
    print("| setup | runs | ms/step | x plain | second pass | wall s/run | train acc % | "
          "benchmark acc % | gap (points) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in setups:
        base = plain.get(by_setup[s][0]["head"])
        ratio = mean(s, "ms") / mean(base, "ms") if base else float("nan")
        print(f"| {s} | {len(by_setup[s])} | {mean(s, 'ms'):.1f} | {ratio:.2f} | "
              f"{100 * mean(s, 'second_pass'):.0f}% | {mean(s, 'wall'):.1f} | "
              f"{pm(s, lambda r: r['train_acc'])} | {pm(s, lambda r: r['bench_acc'])} | "
              f"{pm(s, lambda r: r['train_acc'] - r['bench_acc'])} |")


if __name__ == "__main__":
    main()
