"""Combined-margin reference numbers from insightface's arcface_torch CombinedMarginLoss.

Run (Debian's python3-torch 1.13.1, CPU, float64):
    /usr/bin/python3 tests/reference/combined_margin_reference.py \
        /work/.mirror/deepinsight+insightface/repo > tests/reference/data/combined-margin.json
where the argument is a snapshot of github.com/deepinsight/insightface with its history (a bare git
directory or a checkout); the numbers stored were made from commit
7fadd420c2351d0ffa8cac403421c1a3ed733365. The script executes recognition/arcface_torch/losses.py
unmodified at two commits: HEAD (ArcFace (1, 0.5, 0) straight through: cos(θ + m) without
autograd, gradient 1; CosFace (1, 0, 0.35)) and 5ef98047542b18d911cef1e10c6c02273c4adff3, the last
before the straight-through change (ArcFace differentiable, cos θ − m sin m where θ + m > π). The
cosines come in as partial_fc_v2.py makes them: normalize(x) normalize(W)ᵀ clamped to [−1, 1].
arcface_torch cannot compute (1, 0.3, 0.2): any m3 > 0 takes its CosFace branch, which ignores m1
and m2 (the full form is arcface_mxnet/train.py's, in MXNet); that setting is checked against the
formula only. No shim was needed.
"""
import sys

import torch
import torch.nn.functional as F

import snapshot

repo = sys.argv[1]
LOSSES = "recognition/arcface_torch/losses.py"
BEFORE_STRAIGHT_THROUGH = "5ef98047542b18d911cef1e10c6c02273c4adff3"
x, w, y = snapshot.batch()
cases = []
for commit, (m1, m2, m3), straight_through in (
        ("HEAD", (1.0, 0.5, 0.0), True),
        ("HEAD", (1.0, 0.0, 0.35), False),
        (BEFORE_STRAIGHT_THROUGH, (1.0, 0.5, 0.0), False)):
    margin = snapshot.module_from(repo, LOSSES, commit).CombinedMarginLoss(64.0, m1, m2, m3)
    weight = torch.nn.Parameter(w.clone())

    def head(embeddings, labels):
        logits = F.linear(F.normalize(embeddings), F.normalize(weight)).clamp(-1, 1)
        return margin(logits, labels)

    p = snapshot.pass_of(head, weight, x, y, kernel_dxc=False)
    p["options"] = {"s": 64.0, "m1": m1, "m2": m2, "m3": m3, "straight_through": straight_through}
    p["losses_py_commit"] = snapshot.commit_of(repo) if commit == "HEAD" else commit
    cases.append(p)
snapshot.emit({
    "source": "deepinsight/insightface recognition/arcface_torch/losses.py CombinedMarginLoss on "
              "partial_fc_v2's clamped cosines, float64, one forward/backward pass per setting",
    "repository": "https://github.com/deepinsight/insightface",
    "commit": snapshot.commit_of(repo),
    "cases": cases,
})
