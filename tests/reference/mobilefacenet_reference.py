#!/usr/bin/python3
"""insightface's MobileFaceNet (arcface_torch `mbf` and `mbf_large`) on fixed weights and images.

Source: github.com/deepinsight/insightface, recognition/arcface_torch/backbones/mobilefacenet.py at
commit 7fadd420c2351d0ffa8cac403421c1a3ed733365, read from a snapshot (a checkout, or a bare git
directory read with `git show`) and executed unmodified; nothing of it is copied here. It imports
only torch, so nothing is stubbed. The models are built as their backbones/__init__.py builds them:
get_mbf(fp16=False, num_features=512) and get_mbf_large(fp16=False, num_features=512).

Two modes (Debian 12, python3-torch 1.13, CPU, float32):

  reference (2026-12-08):
    /usr/bin/python3 tests/reference/mobilefacenet_reference.py /work/.mirror/deepinsight+insightface/repo \
        > tests/reference/data/mobilefacenet.json
  Fills each model with tests/reference/fixed_weights.py's fixed_fill, embeds fixed_images(3, 112)
  in eval mode and prints, per model, the state-dict keys with shapes in order, the parameter
  count and the embeddings [3, 512] (17 significant digits).

  export check (the other direction):
    /usr/bin/python3 tests/reference/mobilefacenet_reference.py SNAPSHOT --check mbf STATE.pt EMB.json
  Loads STATE.pt (written by flatface: save_tensor_dict / `flatface export`) into their model with
  load_state_dict(strict=True), embeds fixed_images(N, 112) where N is the number of rows of
  EMB.json's "embeddings", and prints the largest |their − ours|.
"""
import argparse
import json
import sys

import torch

from fixed_weights import fill_fixed, fixed_images
from snapshot import commit_of, module_from

PATH = "recognition/arcface_torch/backbones/mobilefacenet.py"
IMAGES = 3
SIDE = 112


def build(mobilefacenet, name):
    if name == "mbf":
        return mobilefacenet.get_mbf(fp16=False, num_features=512)
    if name == "mbf_large":
        return mobilefacenet.get_mbf_large(fp16=False, num_features=512)
    raise SystemExit(f"unknown model {name!r} (mbf or mbf_large)")


def embed(model, n):
    model.eval()
    with torch.no_grad():
        return model(fixed_images(n, SIDE))


def reference(snapshot, mobilefacenet):
    out = {"repository": "github.com/deepinsight/insightface", "commit": commit_of(snapshot),
           "file": PATH,
           "run": "/usr/bin/python3 tests/reference/mobilefacenet_reference.py SNAPSHOT "
                  "> tests/reference/data/mobilefacenet.json",
           "torch": torch.__version__, "images": IMAGES, "side": SIDE, "models": {}}
    for name, blocks, scale in (("mbf", [1, 4, 6, 2], 2), ("mbf_large", [2, 8, 12, 4], 4)):
        model = build(mobilefacenet, name)
        keys = fill_fixed(model)
        out["models"][name] = {
            "call": f"get_{name}(fp16=False, num_features=512)", "blocks": blocks, "scale": scale,
            "parameters": sum(p.numel() for p in model.parameters()),
            "keys": keys,
            "embeddings": [[float(f"{v:.17g}") for v in row] for row in embed(model, IMAGES).tolist()],
        }
    json.dump(out, sys.stdout, indent=0)
    sys.stdout.write("\n")


def check(mobilefacenet, name, state_path, embeddings_path):
    model = build(mobilefacenet, name)
    state = torch.load(state_path)
    model.load_state_dict(state, strict=True)
    with open(embeddings_path) as f:
        ours = torch.tensor(json.load(f)["embeddings"], dtype=torch.float32)
    theirs = embed(model, ours.shape[0])
    diff = (theirs - ours).abs().max().item()
    scale = theirs.abs().max().item()
    print(f"{name}: loaded {state_path} with strict=True ({len(state)} entries); "
          f"max |theirs - ours| = {diff:.3g} (embedding max magnitude {scale:.3g}, "
          f"relative {diff / scale:.3g})")
    return diff / scale


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("snapshot")
    parser.add_argument("--check", nargs=3, metavar=("MODEL", "STATE_PT", "EMBEDDINGS_JSON"))
    args = parser.parse_args()
    mobilefacenet = module_from(args.snapshot, PATH)
    if args.check:
        relative = check(mobilefacenet, *args.check)
        sys.exit(0 if relative < 1e-5 else 1)
    reference(args.snapshot, mobilefacenet)


if __name__ == "__main__":
    main()
