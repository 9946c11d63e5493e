"""Checks the results of run.sh's training grids (one HDF5 file per run).

    compare_runs.py plugins RESULTS_DIR   the head and the perturbation, setup against setup:
- sam-ball with ball = "l2" is the in-tree sam to the bit: every metric of every epoch equal;
- sam-ball with ball = "linf" takes another step: ‖ε‖₂ = ρ sqrt(#{g_i ≠ 0}) is far above ρ;
- the out-of-tree angular-margin with m = 0.5 and the installed in-tree combined-margin with
  (m1, m2, m3) = (1, 0.5, 0), loaded together, are each ArcFace with m = 0.5 computed another way
  (arccos and cos instead of cos θ cos m − sin θ sin m), so equal up to float32 rounding over
  the first epoch, while the normalised softmax (no margin) is not.

    compare_runs.py same RESULTS_DIR RESULTS_DIR   the dataset: two grids that differ only in the
                                                   training set's format give the same runs
"""
import glob
import sys

import h5py
import numpy as np

KEYS = ("loss", "perturbation_loss", "loss_perturbed", "grad_norm", "epsilon_norm",
        "train_accuracy")


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def load(folder):
    runs = {}
    for path in glob.glob(folder + "/*.h5"):
        with h5py.File(path, "r") as f:
            setup = text(f.attrs["setup"])
            if text(f.attrs["status"]) != "complete":
                sys.exit(f"FAIL: {path} ({setup}) is {text(f.attrs['status'])}")
            m = {k: np.array(f["metrics"][k]) for k in KEYS}
            for name in f["eval"]:
                m["eval/" + name] = np.array(f["eval"][name]["accuracy"])
            runs[setup] = m
    return runs


def same(first, second):
    a, b = load(first), load(second)
    if set(a) != set(b) or not a:
        sys.exit(f"FAIL: setups {sorted(a)} and {sorted(b)}")
    for setup in a:
        for k in a[setup]:
            if not np.array_equal(a[setup][k], b[setup][k]):
                sys.exit(f"FAIL: {setup}: {k} {a[setup][k]} vs {b[setup][k]}")
        print(f"{setup}: the same, bit for bit:",
              {k: a[setup][k].tolist() for k in ("loss", "train_accuracy")})
    print("same runs: ok")


def plugins(folder):
    runs = load(folder)
    want = {"sam", "sam-ball-l2", "sam-ball-linf", "arcface", "angular", "combined", "softmax"}
    if set(runs) != want:
        sys.exit(f"FAIL: setups {sorted(runs)}, expected {sorted(want)}")
    epochs = len(runs["sam"]["loss"])
    if epochs != 2:
        sys.exit(f"FAIL: {epochs} epochs, expected 2")

    sam, l2 = runs["sam"], runs["sam-ball-l2"]
    for k in sam:
        if not np.array_equal(sam[k], l2[k]):
            sys.exit(f"FAIL: sam-ball l2 differs from sam in {k}: {l2[k]} vs {sam[k]}")
    print("sam-ball l2 == sam, bit for bit:", {k: sam[k].tolist() for k in ("loss", "epsilon_norm")})

    # ρ g / (‖g‖ + 1e-12) has norm ρ; ρ sign(g) has norm ρ sqrt(n) with n the nonzero entries.
    if not np.allclose(sam["epsilon_norm"], 0.1, rtol=1e-5):
        sys.exit(f"FAIL: sam's ‖ε‖ {sam['epsilon_norm']} is not ρ = 0.1")
    linf = runs["sam-ball-linf"]
    ratio = linf["epsilon_norm"] / 1e-4
    if not (np.all(ratio > 100) and np.all(np.isfinite(linf["loss"]))):
        sys.exit(f"FAIL: sam-ball linf's ‖ε‖/ρ {ratio} should be sqrt(#nonzero g) > 100")
    if np.array_equal(linf["loss_perturbed"], sam["loss_perturbed"]):
        sys.exit("FAIL: sam-ball linf gave sam's results")
    print("sam-ball linf: ‖ε‖/ρ =", ratio.tolist(), "(sqrt of the nonzero gradient entries)")

    # The first epoch is one step (batch = the 32 images), its statistics taken at the seed's
    # weights, where the two forms differ only by float32 rounding (about 1e-7). After an update,
    # this unsettled training (lr 0.1, s = 64) amplifies that rounding: over four steps by 2e-3
    # with libtorch 2.6's kernels.
    arc, soft = runs["arcface"], runs["softmax"]
    for setup, head in (("angular", "angular-margin m = 0.5"), ("combined", "combined-margin (1, 0.5, 0)")):
        other = runs[setup]
        for k in ("loss", "grad_norm", "train_accuracy"):
            gap = abs(other[k][0] - arc[k][0]) / abs(arc[k][0])
            margin_effect = abs(soft[k][0] - arc[k][0]) / abs(arc[k][0])
            print(f"epoch 1 {k}: {setup} vs arcface {gap:.1e}, softmax vs arcface {margin_effect:.1e}")
            if not gap < 1e-4:
                sys.exit(f"FAIL: {head} is not ArcFace in {k}")
    if not abs(soft["loss"][0] - arc["loss"][0]) > 1e-2 * abs(arc["loss"][0]):
        sys.exit("FAIL: softmax and arcface agree: the comparison cannot tell heads apart")
    print("out-of-tree results: ok")


if __name__ == "__main__":
    if sys.argv[1:2] == ["plugins"] and len(sys.argv) == 3:
        plugins(sys.argv[2])
    elif sys.argv[1:2] == ["same"] and len(sys.argv) == 4:
        same(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
