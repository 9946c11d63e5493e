"""Writes a tiny face-like data set twice: as numpy stacks for the out-of-tree `npy-stack`
plugin and as an image folder of PNGs (lossless) for the in-tree `image-folder`. Both hold the
same pixels in the same order (identity by identity, image by image), so training on either must
give the same run, bit for bit. Also writes verification pairs as stacks. Each stack's companion
sits beside it (x.npy: x.labels.npy; pairs.npy: pairs.issame.npy), so npy-stack claims the
stacks when given on the command line.

    make_npy_faces.py OUT_DIR
"""
import os
import sys

import numpy as np
from PIL import Image

out = sys.argv[1]
rng = np.random.default_rng(7)
identities, per_identity, side = 8, 4, 56

images, labels = [], []
for i in range(identities):
    # An identity: a coarse 8x8 colour pattern; its images: the pattern under pixel noise.
    face = np.kron(rng.integers(0, 256, size=(8, 8, 3)), np.ones((side // 8, side // 8, 1)))
    folder = os.path.join(out, "folder", f"id{i:02d}")
    os.makedirs(folder, exist_ok=True)
    for k in range(per_identity):
        img = np.clip(face + rng.normal(0, 24, size=face.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(os.path.join(folder, f"{k:02d}.png"))
        images.append(img)
        labels.append(i)
x = np.stack(images)
np.save(os.path.join(out, "x.npy"), x)
np.save(os.path.join(out, "x.labels.npy"), np.array(labels, dtype=np.int64))

# 20 pairs, same and different alternating, drawn from the same images.
pairs, same = [], []
for p in range(20):
    a = int(rng.integers(len(x)))
    if p % 2 == 0:
        first = a - a % per_identity  # another image of a's identity
        b = first + (a - first + int(rng.integers(1, per_identity))) % per_identity
    else:
        b = (a + per_identity * int(rng.integers(1, identities))) % len(x)
    pairs += [x[a], x[b]]
    same.append(p % 2 == 0)
np.save(os.path.join(out, "pairs.npy"), np.stack(pairs))
np.save(os.path.join(out, "pairs.issame.npy"), np.array(same, dtype=bool))
