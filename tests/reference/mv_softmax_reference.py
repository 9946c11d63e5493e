"""MV-Softmax reference numbers from FaceX-Zoo's head.

Run (Debian's python3-torch 1.13.1, CPU, float64):
    /usr/bin/python3 tests/reference/mv_softmax_reference.py \
        /work/.mirror/JDAI-CV+FaceX-Zoo/repo > tests/reference/data/mv-softmax.json
where the argument is a snapshot of github.com/JDAI-CV/FaceX-Zoo (a bare git directory or a
checkout); the numbers stored were made from commit 16b793a7564a4b9308cf94e62bdb2ffacb3a725a. The
script executes head/MV_Softmax.py from the snapshot unmodified and runs MV_Softmax(4, 5, is_am,
margin, mv_weight, scale=32) once on snapshot.py's fixed batch for both margins. FaceX-Zoo's hard
negatives are mv_weight cos + mv_weight − 1, flatface's adaptive form with t = mv_weight − 1; the
fixed form (cos + t) has no counterpart there. No shim was needed.
"""
import sys

import torch

import snapshot

repo = sys.argv[1]
module = snapshot.module_from(repo, "head/MV_Softmax.py")
x, w, y = snapshot.batch()
cases = []
for margin, m, mv_weight in (("am", 0.35, 1.12), ("arc", 0.5, 1.2)):
    head = module.MV_Softmax(4, 5, is_am=margin == "am", margin=m, mv_weight=mv_weight,
                             scale=32).double()
    snapshot.load_weight(head.weight, w, kernel_dxc=True)
    p = snapshot.pass_of(head, head.weight, x, y, kernel_dxc=True)
    p["options"] = {"margin": margin, "m": m, "t": mv_weight - 1.0, "adaptive": True, "s": 32.0}
    cases.append(p)
snapshot.emit({
    "source": "JDAI-CV/FaceX-Zoo head/MV_Softmax.py MV_Softmax, float64, one forward/backward pass "
              "per margin",
    "repository": "https://github.com/JDAI-CV/FaceX-Zoo",
    "commit": snapshot.commit_of(repo),
    "cases": cases,
})
