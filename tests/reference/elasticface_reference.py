#!/usr/bin/python3
"""ElasticFace's own heads (ElasticArcFace, ElasticCosFace, plain and plus) on fixed inputs, as JSON.

Source: github.com/fdbtrs/ElasticFace, utils/losses.py at commit
5496ec0643bfdcd5e6b53b885aa4e919e26ce442, read from a snapshot (a checkout, or a bare git
directory read with `git show`); nothing of it is copied here.

How it was run (2026-12-07, Debian 12, python3-torch 1.13, CPU):

    /usr/bin/python3 tests/reference/elasticface_reference.py \
        /work/.mirror/fdbtrs+ElasticFace/repo > tests/reference/data/elasticface.json

Shim: their heads draw the margins with torch.normal; the module's `torch` is replaced by a proxy
whose `normal` returns the margins flatface draws for (seed, step, row) (SplitMix64 and
Box-Muller, written out below from plugins/heads/elasticface), and is torch for everything else.
So the numbers check their margin arithmetic, their plus sorting and our draws together. Float64
throughout (torch.set_default_dtype), so that m_hot does not round the margins to float32.

Their plus indexes the sorted margins by the argsort of the target cosines (margin[argsort]),
which equals pairing by rank (what flatface does) only when that permutation is its own inverse;
the plus batch below is chosen so (descending order of its target cosines: rows 1, 0, 3, 2).
"""
import json
import math
import sys
import types

import torch

from snapshot import source_of

COMMIT = "5496ec0643bfdcd5e6b53b885aa4e919e26ce442"
MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
MARGIN_TAG = 0x656C617374696346  # "elasticF"


def mix64(x):
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def hash_words(a, b, c):
    h = mix64((a + GOLDEN) & MASK)
    h = mix64(h ^ ((b + GOLDEN) & MASK))
    return mix64(h ^ ((c + GOLDEN) & MASK))


def standard_normal(seed, step, row):
    state = hash_words(seed ^ MARGIN_TAG, step, row)
    state = (state + GOLDEN) & MASK
    r1 = mix64(state)
    state = (state + GOLDEN) & MASK
    r2 = mix64(state)
    u1 = ((r1 >> 11) + 1) * 2.0 ** -53
    u2 = (r2 >> 11) * 2.0 ** -53
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


class TorchWithMargins:
    """torch, except that normal() hands out the given margins."""

    def __init__(self):
        self.margins = None

    def normal(self, mean, std, size, device=None):
        assert tuple(size) == tuple(self.margins.shape), (size, self.margins.shape)
        return self.margins.clone()

    def __getattr__(self, name):
        return getattr(torch, name)


def main():
    torch.set_default_dtype(torch.float64)
    losses = types.ModuleType("losses")
    exec(compile(source_of(sys.argv[1], "utils/losses.py", COMMIT), "utils/losses.py", "exec"),
         losses.__dict__)
    proxy = TorchWithMargins()
    losses.torch = proxy

    C, D, seed, step = 5, 4, 7, 3
    gen = torch.Generator().manual_seed(20261207)
    weight = torch.randn(C, D, generator=gen)
    w_unit = weight / weight.norm(dim=1, keepdim=True)
    # Rows with chosen target cosines: x = c w_y + sqrt(1 - c²) u, u ⟂ w_y, times a norm.
    # 0.5, 0.8, -0.3, 0.1: descending order 1, 0, 3, 2 (an involution); -0.95 has θ + m > π.
    labels = torch.tensor([0, 1, 2, 3, 4])
    target_cos = torch.tensor([0.5, 0.8, -0.3, 0.1, -0.95])
    rows = []
    for i, y in enumerate(labels.tolist()):
        u = torch.randn(D, generator=gen)
        u = u - (u @ w_unit[y]) * w_unit[y]
        u = u / u.norm()
        c = target_cos[i]
        rows.append((c * w_unit[y] + (1 - c * c).sqrt() * u) * (2.0 + i))
    x = torch.stack(rows)
    n = x.shape[0]

    out = {"source": f"fdbtrs/ElasticFace {COMMIT} utils/losses.py ElasticArcFace, "
                     "ElasticCosFace (torch.normal replaced by flatface's draws)",
           "seed": seed, "step": step, "weight": weight.tolist(), "x": x.tolist(),
           "labels": labels.tolist(), "cases": []}
    for variant, cls, m, plain_std, plus_std in (("arc", losses.ElasticArcFace, 0.5, 0.05, 0.0175),
                                                 ("cos", losses.ElasticCosFace, 0.35, 0.05, 0.02)):
        for plus in (False, True):
            std = plus_std if plus else plain_std
            # The plus batch is the first four rows (their argsort there is an involution).
            rows_used = 4 if plus else n
            margins = torch.tensor([[m + std * standard_normal(seed, step, r)]
                                    for r in range(rows_used)])
            proxy.margins = margins
            head = cls(D, C, s=64.0, m=m, std=std, plus=plus)
            head.kernel.data = weight.t().clone()
            xi = x[:rows_used].clone().requires_grad_(True)
            logits = head(xi, labels[:rows_used])
            loss = torch.nn.functional.cross_entropy(logits, labels[:rows_used])
            loss.backward()
            out["cases"].append({
                "variant": variant, "plus": plus, "m": m, "sigma": std, "rows": rows_used,
                "margins_drawn": margins.view(-1).tolist(),
                "logits": logits.detach().tolist(),
                "loss": loss.item(),
                "grad_x": xi.grad.tolist(),
                "grad_weight": head.kernel.grad.t().tolist(),
            })
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
