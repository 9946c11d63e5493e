"""Circle loss (classification form) reference numbers from FaceX-Zoo's head.

Run (Debian's python3-torch 1.13.1, CPU, float64):
    /usr/bin/python3 tests/reference/circle_reference.py \
        /work/.mirror/JDAI-CV+FaceX-Zoo/repo > tests/reference/data/circle.json
where the argument is a snapshot of github.com/JDAI-CV/FaceX-Zoo (a bare git directory or a
checkout); the numbers stored were made from commit 16b793a7564a4b9308cf94e62bdb2ffacb3a725a. The
script executes head/CircleLoss.py from the snapshot unmodified and runs CircleLoss(4, 5) with its
defaults (margin 0.25, gamma 256) and with margin 0.4, gamma 32 once on snapshot.py's fixed batch.
No shim was needed.
"""
import sys

import snapshot

repo = sys.argv[1]
module = snapshot.module_from(repo, "head/CircleLoss.py")
x, w, y = snapshot.batch()
cases = []
for m, gamma in ((0.25, 256.0), (0.4, 32.0)):
    head = module.CircleLoss(4, 5, margin=m, gamma=gamma).double()
    snapshot.load_weight(head.weight, w, kernel_dxc=True)
    p = snapshot.pass_of(head, head.weight, x, y, kernel_dxc=True)
    p["options"] = {"m": m, "gamma": gamma}
    cases.append(p)
snapshot.emit({
    "source": "JDAI-CV/FaceX-Zoo head/CircleLoss.py CircleLoss, float64, one forward/backward pass "
              "per setting",
    "repository": "https://github.com/JDAI-CV/FaceX-Zoo",
    "commit": snapshot.commit_of(repo),
    "cases": cases,
})
