#!/usr/bin/python3
"""MagFace's own head (MagLinear + MagLoss + SoftmaxBuilder._margin) on fixed inputs, as JSON.

Source: github.com/IrvingMeng/MagFace, models/magface.py at commit
99bae614ac2643b9694bf18e0c5645272ff6acfa, read from a snapshot (a checkout, or a bare git
directory read with `git show`); nothing of it is copied here.

How it was run (2026-12-07, Debian 12, python3-torch 1.13, CPU):

    /usr/bin/python3 tests/reference/magface_reference.py /work/.mirror/IrvingMeng+MagFace/repo \
        > tests/reference/data/magface.json

Shim: models/magface.py imports `models.iresnet` (the backbone) and `termcolor` at the top; both
are stubbed as empty modules, since the head does not use them. Everything runs in float64
(torch.set_default_dtype), so that their constants and ours round alike. The margin function
m(a) is their SoftmaxBuilder._margin, called on a stand-in `self` with the four bounds.
"""
import json
import sys
import types

import torch

from snapshot import source_of

COMMIT = "99bae614ac2643b9694bf18e0c5645272ff6acfa"


def load_magface(snapshot):
    for stub in ("termcolor", "models", "models.iresnet"):
        sys.modules.setdefault(stub, types.ModuleType(stub))
    sys.modules["termcolor"].cprint = print
    sys.modules["models"].iresnet = sys.modules["models.iresnet"]
    module = types.ModuleType("magface")
    exec(compile(source_of(snapshot, "models/magface.py", COMMIT), "models/magface.py", "exec"),
         module.__dict__)
    return module


def main():
    torch.set_default_dtype(torch.float64)
    magface = load_magface(sys.argv[1])
    s, l_a, u_a, l_m, u_m, lambda_g = 64.0, 10.0, 110.0, 0.45, 0.8, 35.0
    C, D = 5, 4
    gen = torch.Generator().manual_seed(20261207)
    weight = torch.randn(C, D, generator=gen)  # ours: [C, D]
    labels = torch.tensor([0, 1, 2, 3, 4, 2])
    directions = torch.randn(6, D, generator=gen)
    # Row 3 points almost opposite its class centre (θ + m > π); row 4 straight at it.
    w_unit = weight / weight.norm(dim=1, keepdim=True)
    directions[3] = -w_unit[3] + 0.05 * directions[3]
    directions[4] = w_unit[4] + 0.2 * directions[4]
    # Magnitudes below l_a, inside, at the bounds' neighbourhood and above u_a.
    norms = torch.tensor([5.0, 30.0, 60.0, 100.0, 150.0, 10.5])
    x = directions / directions.norm(dim=1, keepdim=True) * norms[:, None]

    bounds = types.SimpleNamespace(l_margin=l_m, u_margin=u_m, l_a=l_a, u_a=u_a)
    margin = lambda a: magface.SoftmaxBuilder._margin(bounds, a)
    out = {"source": f"IrvingMeng/MagFace {COMMIT} models/magface.py MagLinear, MagLoss, "
                     "SoftmaxBuilder._margin; loss = loss_id + lambda_g * loss_g (run/trainer.py)",
           "s": s, "l_a": l_a, "u_a": u_a, "l_m": l_m, "u_m": u_m, "lambda_g": lambda_g,
           "weight": weight.tolist(), "x": x.tolist(), "labels": labels.tolist(), "cases": []}
    for easy in (True, False):
        fc = magface.MagLinear(D, C, scale=s, easy_margin=easy)
        fc.weight.data = weight.t().clone()
        criterion = magface.MagLoss(l_a, u_a, l_m, u_m)
        xi = x.clone().requires_grad_(True)
        logits, x_norm = fc(xi, margin, l_a, u_a)
        loss_id, loss_g, one_hot = criterion(logits, labels, x_norm)
        loss = loss_id + lambda_g * loss_g
        loss.backward()
        cos_theta, cos_theta_m = logits
        output = one_hot * cos_theta_m + (1.0 - one_hot) * cos_theta
        out["cases"].append({
            "easy_margin": easy,
            "logits": output.detach().tolist(),
            "loss_id": loss_id.item(),
            "loss_g": loss_g.item(),
            "loss": loss.item(),
            "grad_x": xi.grad.tolist(),
            "grad_weight": fc.weight.grad.t().tolist(),  # ours: [C, D]
        })
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
