"""CurricularFace reference numbers from the authors' own head.

Run (Debian's python3-torch 1.13.1, CPU, float64):
    /usr/bin/python3 tests/reference/curricularface_reference.py \
        /work/.mirror/HuangYG123+CurricularFace/repo > tests/reference/data/curricularface.json
where the argument is a snapshot of github.com/HuangYG123/CurricularFace (a bare git directory or a
checkout); the numbers stored were made from commit 68c8727fb7cd2243ecbfd7e09c35efc87c6e2de4. The
script executes head/metrics.py from the snapshot unmodified and runs its CurricularFace(4, 5,
m=0.5, s=64) twice on snapshot.py's fixed batch: its t starts at 0 and is updated on each forward,
before the hard negatives are modulated. No shim was needed.
"""
import sys

import torch

import snapshot

repo = sys.argv[1]
metrics = snapshot.module_from(repo, "head/metrics.py")
x, w, y = snapshot.batch()
head = metrics.CurricularFace(4, 5, m=0.5, s=64.0).double()
snapshot.load_weight(head.kernel, w, kernel_dxc=True)
passes = []
for _ in range(2):
    t_before = head.t.item()
    p = snapshot.pass_of(head, head.kernel, x, y, kernel_dxc=True)
    p.update({"t_before": t_before, "t_after": head.t.item()})
    passes.append(p)
snapshot.emit({
    "source": "HuangYG123/CurricularFace head/metrics.py CurricularFace (m = 0.5, s = 64), float64, "
              "two forward/backward passes at the same weights",
    "repository": "https://github.com/HuangYG123/CurricularFace",
    "commit": snapshot.commit_of(repo),
    "options": {"s": 64.0, "m": 0.5},
    "passes": passes,
})
