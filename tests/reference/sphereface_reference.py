#!/usr/bin/python3
"""SphereFace's A-Softmax (sphereface_pytorch's AngleLinear + AngleLoss) on fixed inputs, as JSON.

Source: github.com/clcarwin/sphereface_pytorch, net_sphere.py at commit
e2f11f0b0f394cf75b9f65ce8d353e4390b0948c, read from a snapshot (a checkout, or a bare git
directory read with `git show`); nothing of it is copied here. (The original Caffe layer,
github.com/wy1iu/sphereface margin_inner_product_layer.cpp, computes the same target logit; its
λ schedule has base 1000, γ 0.12 where AngleLoss has 1500, 0.1.)

How it was run (2026-12-07, Debian 12, python3-torch 1.13, CPU):

    /usr/bin/python3 tests/reference/sphereface_reference.py \
        /work/.mirror/clcarwin+sphereface_pytorch/repo > tests/reference/data/sphereface.json

Shim: AngleLoss does not return its logits, so the module's `F` is a proxy that records the input
of log_softmax (and passes dim=1, the implicit dimension torch 1.13 picks for 2-d input, to avoid
its warning); everything else is torch.nn.functional. AngleLoss counts its calls in `it` and uses
it after incrementing, so `it` is set to (iteration − 1) before each call. Float64 throughout.
AngleLinear's k uses 3.14159265 for π; no input here lies within 1e-8 of a branch boundary.
"""
import json
import sys
import types
import warnings

import torch
import torch.nn.functional

from snapshot import source_of

COMMIT = "e2f11f0b0f394cf75b9f65ce8d353e4390b0948c"


class RecordingF:
    """torch.nn.functional, except that log_softmax keeps its input."""

    def __init__(self):
        self.logits = None

    def log_softmax(self, x, dim=1):
        self.logits = x
        return torch.nn.functional.log_softmax(x, dim=dim)

    def __getattr__(self, name):
        return getattr(torch.nn.functional, name)


def main():
    warnings.simplefilter("ignore")  # their uint8 masks are deprecated, not wrong
    torch.set_default_dtype(torch.float64)
    net = types.ModuleType("net_sphere")
    exec(compile(source_of(sys.argv[1], "net_sphere.py", COMMIT), "net_sphere.py", "exec"), net.__dict__)
    recorder = RecordingF()
    net.F = recorder

    C, D, m = 5, 4, 4
    gen = torch.Generator().manual_seed(20261207)
    weight = torch.randn(C, D, generator=gen)
    w_unit = weight / weight.norm(dim=1, keepdim=True)
    # One row per branch k = 0..3 of ψ for m = 4 (θ in [kπ/4, (k+1)π/4)), and one more.
    labels = torch.tensor([0, 1, 2, 3, 4])
    target_cos = torch.tensor([0.9, 0.5, -0.3, -0.9, 0.2])
    rows = []
    for i, y in enumerate(labels.tolist()):
        u = torch.randn(D, generator=gen)
        u = u - (u @ w_unit[y]) * w_unit[y]
        u = u / u.norm()
        c = target_cos[i]
        rows.append((c * w_unit[y] + (1 - c * c).sqrt() * u) * (3.0 + 2 * i))
    x = torch.stack(rows)

    out = {"source": f"clcarwin/sphereface_pytorch {COMMIT} net_sphere.py AngleLinear(m=4), "
                     "AngleLoss(gamma=0): lambda = max(5, 1500 / (1 + 0.1 it))",
           "m": m, "base": 1500.0, "gamma": 0.1, "power": 1.0, "lambda_min": 5.0,
           "weight": weight.tolist(), "x": x.tolist(), "labels": labels.tolist(), "cases": []}
    for iteration in (1, 2, 10, 100, 5000):
        fc = net.AngleLinear(D, C, m=m)
        fc.weight.data = weight.t().clone()
        criterion = net.AngleLoss()
        criterion.it = iteration - 1
        xi = x.clone().requires_grad_(True)
        loss = criterion(fc(xi), labels)
        loss.backward()
        out["cases"].append({
            "iteration": iteration,
            "lambda": criterion.lamb,
            "logits": recorder.logits.detach().tolist(),
            "loss": loss.item(),
            "grad_x": xi.grad.tolist(),
            "grad_weight": fc.weight.grad.t().tolist(),
        })
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
