"""Shared by the *_reference.py scripts: the authors' source read from a fetched snapshot (a bare
git directory, as the `fetch` tool leaves it, or a checkout), the fixed batch, and one forward and
backward pass of a head written out as JSON. Their code is executed from the snapshot, never copied
into this repository."""
import json
import os
import subprocess
import sys
import types

import torch
import torch.nn.functional as F


def commit_of(snapshot):
    git_dir = snapshot if os.path.isdir(os.path.join(snapshot, "objects")) else os.path.join(snapshot, ".git")
    return subprocess.check_output(["git", "--git-dir", git_dir, "rev-parse", "HEAD"], text=True).strip()


def source_of(snapshot, path, commit="HEAD"):
    """The text of `path` at `commit` in the snapshot."""
    git_dir = snapshot if os.path.isdir(os.path.join(snapshot, "objects")) else os.path.join(snapshot, ".git")
    return subprocess.check_output(["git", "--git-dir", git_dir, "show", f"{commit}:{path}"], text=True)


def module_from(snapshot, path, commit="HEAD"):
    """The file `path` of the snapshot, executed as a module of its own."""
    module = types.ModuleType(os.path.splitext(os.path.basename(path))[0])
    module.__file__ = f"{snapshot}@{commit}:{path}"
    exec(compile(source_of(snapshot, path, commit), module.__file__, "exec"), module.__dict__)
    return module


# The fixed batch: 5 class weights [C, D] and 6 unnormalised embeddings [N, D] with labels. Row 2
# points away from its class (θ_y + 0.5 > π), row 3 is nearer another class than its own, row 5
# lies between classes; the others are near their class.
WEIGHT = [[1.0, 0.2, -0.3, 0.1],
          [-0.2, 1.0, 0.4, -0.3],
          [0.3, -0.5, 1.0, 0.2],
          [0.1, 0.3, -0.2, 1.0],
          [-0.6, -0.4, 0.2, -0.5]]
EMBEDDINGS = [[2.3, 0.2, -0.1, 0.3],
              [0.5, 0.9, 0.7, 0.2],
              [-0.95, 1.6, -3.0, -0.5],
              [0.2, -0.1, 0.3, 0.9],
              [-0.5, -0.6, 0.1, -0.2],
              [0.9, -0.3, 0.6, 0.4]]
LABELS = [0, 1, 2, 0, 4, 3]


def batch():
    x = torch.tensor(EMBEDDINGS, dtype=torch.float64)
    w = torch.tensor(WEIGHT, dtype=torch.float64)
    y = torch.tensor(LABELS, dtype=torch.int64)
    return x, w, y


def pass_of(head, weight, x, y, kernel_dxc):
    """One forward and backward pass of `head` (called as head(x, y)) whose class-weight parameter
    is `weight` ([D, C] when kernel_dxc): logits, mean cross-entropy, ∂L/∂x and ∂L/∂W ([C, D])."""
    x = x.clone().requires_grad_(True)
    out = head(x, y)
    logits = out[0] if isinstance(out, tuple) else out
    loss = F.cross_entropy(logits, y)
    gx, gw = torch.autograd.grad(loss, [x, weight])
    if kernel_dxc:
        gw = gw.t()
    return {"logits": logits.tolist(), "loss": loss.item(), "grad_embeddings": gx.tolist(),
            "grad_weight": gw.tolist()}


def load_weight(parameter, w, kernel_dxc):
    with torch.no_grad():
        parameter.copy_(w.t() if kernel_dxc else w)


def cosines(x, w):
    return (F.normalize(x) @ F.normalize(w).t()).tolist()


def emit(document):
    x, w, y = batch()
    document.update({"embeddings": EMBEDDINGS, "weight_CxD": WEIGHT, "labels": LABELS,
                     "cosines": cosines(x, w), "torch": torch.__version__})
    json.dump(document, sys.stdout, indent=1)
    sys.stdout.write("\n")
