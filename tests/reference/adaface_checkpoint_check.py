#!/usr/bin/python3
"""End to end: an AdaFace model saved as their Lightning training saves it, embedded by
`flatface embed --weights ... --weights-prefix model.` with `channels = "bgr"`, against their own
model run on the same faces with their own preprocessing (inference.py's to_input: RGB -> BGR,
(x/255 - 0.5)/0.5) and insightface's flip-sum protocol.

    tests/reference/adaface_checkpoint_check.py SNAPSHOT/mk-minchul+AdaFace build/bin/flatface WORKDIR

Their net.py is executed from the snapshot (nothing copied). IR-18 at 112x112 with their own
initialisation (seed 0), its BN statistics moved by three training-mode batches; the checkpoint
is written by tests/python/published_checkpoint.py (Lightning 1.8's layout). The faces: the first
20 pairs of ../shared/data/kz25/test600.bin, decoded with PIL. Prints the largest difference of
the normalised embeddings with channels = "bgr" (their input) and with "rgb" (the mix-up).
Run once, 2026-12-08, Debian 12, python3-torch 1.13.1, CPU; the numbers are in the issue note.
"""
import io
import os
import pickle
import subprocess
import sys

import h5py
import numpy as np
import torch
from PIL import Image

from snapshot import module_from

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    snapshot, flatface, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    torch.manual_seed(0)
    net = module_from(snapshot, "net.py")
    model = net.build_model("ir_18")
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 3, 112, 112))
    model.eval()
    backbone = os.path.join(work, "backbone.pt")
    torch.save(model.state_dict(), backbone)
    ckpt = os.path.join(work, "adaface_ir18.ckpt")
    subprocess.check_call([sys.executable, os.path.join(HERE, "..", "python", "published_checkpoint.py"),
                           "lightning", backbone, ckpt])

    shared = os.path.join(HERE, "..", "..", "..", "shared", "data", "kz25", "test600.bin")
    images, issame = pickle.load(open(shared, "rb"), encoding="bytes")
    small = os.path.join(work, "small.bin")
    pickle.dump((images[:40], issame[:20]), open(small, "wb"), protocol=4)

    def theirs():
        rows = []
        for jpeg in images[:40]:
            rgb = np.array(Image.open(io.BytesIO(jpeg)).convert("RGB"))
            bgr = ((rgb[:, :, ::-1] / 255.0) - 0.5) / 0.5
            x = torch.tensor(np.ascontiguousarray(bgr.transpose(2, 0, 1)), dtype=torch.float32)[None]
            with torch.no_grad():
                f = sum(out * norm for out, norm in (model(x), model(torch.flip(x, [3]))))
            rows.append(torch.nn.functional.normalize(f.double(), dim=1)[0])
        return torch.stack(rows).numpy()

    reference = theirs()
    for channels in ("bgr", "rgb"):
        out = os.path.join(work, f"emb-{channels}.h5")
        subprocess.check_call([flatface, "embed", "--weights", ckpt, "--weights-prefix", "model.",
                               "--backbone", f'{{ plugin = "ir", depth = 18, channels = "{channels}" }}',
                               small, "--out", out], stdout=subprocess.DEVNULL)
        ours = h5py.File(out)["embeddings"][()]
        cos = (ours * reference).sum(1)
        print(f"channels = {channels}: max |diff| {np.abs(ours - reference).max():.3g}, "
              f"cosine to theirs min {cos.min():.6f} mean {cos.mean():.6f}")


if __name__ == "__main__":
    main()
