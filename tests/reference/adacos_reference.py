"""AdaCos reference numbers from FaceX-Zoo's head (dynamic scale).

Run (Debian's python3-torch 1.13.1, CPU, float64):
    /usr/bin/python3 tests/reference/adacos_reference.py \
        /work/.mirror/JDAI-CV+FaceX-Zoo/repo > tests/reference/data/adacos.json
where the argument is a snapshot of github.com/JDAI-CV/FaceX-Zoo (a bare git directory or a
checkout); the numbers stored were made from commit 16b793a7564a4b9308cf94e62bdb2ffacb3a725a. The
script executes head/AdaCos.py from the snapshot unmodified and runs AdaCos(4, 5) twice on
snapshot.py's fixed batch for two labelings: the given labels (median target angle 0.778 < π/4)
and labels [1, 2, 3, 4, 0, 1] (median 1.719, capped at π/4). Its scale starts at √2 log(C − 1) and
is updated on each forward before the logits are scaled. No shim was needed.
"""
import sys

import torch

import snapshot

repo = sys.argv[1]
module = snapshot.module_from(repo, "head/AdaCos.py")
x, w, _ = snapshot.batch()
cases = []
for labels in (snapshot.LABELS, [1, 2, 3, 4, 0, 1]):
    y = torch.tensor(labels, dtype=torch.int64)
    head = module.AdaCos(4, 5).double()
    snapshot.load_weight(head.W, w, kernel_dxc=False)
    passes = []
    for _ in range(2):
        before = float(head.scale)
        p = snapshot.pass_of(head, head.W, x, y, kernel_dxc=False)
        p.update({"scale_before": before, "scale_after": float(head.scale)})
        passes.append(p)
    cases.append({"labels": labels, "passes": passes})
snapshot.emit({
    "source": "JDAI-CV/FaceX-Zoo head/AdaCos.py AdaCos (dynamic scale), float64, two "
              "forward/backward passes at the same weights per labeling",
    "repository": "https://github.com/JDAI-CV/FaceX-Zoo",
    "commit": snapshot.commit_of(repo),
    "options": {"dynamic": True},
    "cases": cases,
})
