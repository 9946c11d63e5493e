#!/usr/bin/env python3
"""A second, independent IResNet written from DESIGN.md ("Backbones") in plain PyTorch.

check:   loads weights written by the C++ plugin with load_state_dict(strict=True), requires the
         same key order, runs the saved input in eval mode and compares with the C++ output.
export:  writes torch.save(model.state_dict()) (an OrderedDict; --format zip or legacy, the
         pre-1.6 non-zip format) and {input, output} for the C++ side to load.
pairs:   writes the weights as export does, a verification .bin (insightface's layout: a pickle of
         (list of 2N PNG images, list of N bools)) of random images, and {embeddings, issame}:
         normalise(f(x) + f(flip(x))) per image, as insightface's eval/verification.py computes.
compare: compares the embeddings of a `flatface embed` HDF5 file with those of `pairs`.
Exits non-zero on any mismatch.
"""
import argparse
import pickle
import struct
import sys
import zlib

import numpy as np

import torch
from torch import nn

# DESIGN.md: blocks per stage.
STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3),
          200: (6, 26, 60, 6)}


def norm(channels):
    return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)


class Residual(nn.Module):
    """BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN, plus a conv1x1+BN shortcut."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = norm(cout)
        self.prelu = nn.PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn3 = norm(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False), norm(cout))

    def forward(self, x):
        branch = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return branch + shortcut


class Reference(nn.Module):
    def __init__(self, depth, width, side, embedding, stem_stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=stem_stride, padding=1, bias=False)
        self.bn1 = norm(width)
        self.prelu = nn.PReLU(width)
        cin = width
        for i, blocks in enumerate(STAGES[depth]):
            cout = width * 2 ** i
            stage = [Residual(cin, cout, 2)] + [Residual(cout, cout, 1) for _ in range(blocks - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
            cin = cout
        self.bn2 = norm(cin)
        self.dropout = nn.Dropout(p=0.0)
        # The FC's input size comes from running the trunk, not from a formula.
        with torch.no_grad():
            flat = self.trunk(torch.zeros(1, 3, side, side)).numel()
        self.fc = nn.Linear(flat, embedding)
        self.features = nn.BatchNorm1d(embedding, eps=1e-5)

    def trunk(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.bn2(x)

    def forward(self, x):
        return self.features(self.fc(self.dropout(torch.flatten(self.trunk(x), 1))))


def fail(message):
    print("iresnet_reference: " + message, file=sys.stderr)
    sys.exit(1)


def check(args, model):
    weights = torch.load(args.weights, weights_only=True)  # what torch >= 2.6 does by default
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        fail(f"{args.weights}: {err}")
    if list(weights.keys()) != list(model.state_dict().keys()):
        fail("key order differs from PyTorch's module order")
    io = torch.load(args.io)
    model.eval()
    with torch.no_grad():
        out = model(io["input"])
    expected = io["output"]
    if out.shape != expected.shape:
        fail(f"output shape {tuple(out.shape)} != {tuple(expected.shape)}")
    err = (out - expected).abs().max().item()
    scale = expected.abs().max().item()
    print(f"max |python - c++| = {err:.3g} (output scale {scale:.3g})")
    if not err <= 1e-4 * max(1.0, scale):
        fail(f"outputs differ by {err}")


def randomise(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():  # non-trivial statistics and affine terms so every tensor matters
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 1.5)
            elif name.endswith("running_mean") or (name.endswith("bias") and t.dim() == 1):
                t.uniform_(-0.2, 0.2)
            elif name.endswith("weight") and t.dim() == 1 and not name.startswith("features"):
                t.uniform_(0.5, 1.5)
    model.eval()


def save_weights(args, model):
    torch.save(model.state_dict(), args.weights,
               _use_new_zipfile_serialization=args.format == "zip")


def export(args, model):
    randomise(model, args.seed)
    x = torch.randn(3, 3, args.input, args.input)
    with torch.no_grad():
        y = model(x)
    save_weights(args, model)
    torch.save({"input": x, "output": y}, args.io)


def png(rgb):
    """A minimal 8-bit RGB PNG (no filter on any row), so that no imaging library is needed."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    height, width, _ = rgb.shape
    rows = b"".join(b"\x00" + row.tobytes() for row in rgb)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def pairs(args, model):
    randomise(model, args.seed)
    save_weights(args, model)
    rng = np.random.default_rng(args.seed)
    images = rng.integers(0, 256, size=(2 * args.pairs, args.input, args.input, 3), dtype=np.uint8)
    encoded = [png(image) for image in images]
    issame = [i % 2 == 0 for i in range(args.pairs)]
    with open(args.bin, "wb") as f:
        pickle.dump((encoded, issame), f, protocol=pickle.HIGHEST_PROTOCOL)
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        f = model(x).double() + model(torch.flip(x, [3])).double()
    embeddings = (f / f.norm(dim=1, keepdim=True)).float()
    torch.save({"embeddings": embeddings, "issame": torch.tensor(issame, dtype=torch.int64)},
               args.io)


def compare(args):
    import h5py

    expected = torch.load(args.io)
    with h5py.File(args.h5, "r") as f:
        got = torch.from_numpy(f["embeddings"][:])
        issame = torch.from_numpy(f["issame"][:]).long()
    if got.shape != expected["embeddings"].shape:
        fail(f"embeddings {tuple(got.shape)} != {tuple(expected['embeddings'].shape)}")
    if not torch.equal(issame, expected["issame"]):
        fail("issame differs")
    err = (got - expected["embeddings"]).abs().max().item()
    print(f"max |python - flatface| = {err:.3g}")
    if not err <= 1e-5:
        fail(f"embeddings differ by {err}")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", choices=["check", "export", "pairs", "compare"])
    p.add_argument("--weights")
    p.add_argument("--io", required=True)
    p.add_argument("--format", choices=["zip", "legacy"], default="zip")
    p.add_argument("--bin", help="pairs: the .bin to write")
    p.add_argument("--pairs", type=int, default=20)
    p.add_argument("--h5", help="compare: the HDF5 file of flatface embed")
    p.add_argument("--depth", type=int, default=18)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--input", type=int, default=56)
    p.add_argument("--embedding", type=int, default=128)
    p.add_argument("--stem-stride", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(2)
    if args.mode == "compare":
        compare(args)
        return
    model = Reference(args.depth, args.width, args.input, args.embedding, args.stem_stride)
    {"check": check, "export": export, "pairs": pairs}[args.mode](args, model)


if __name__ == "__main__":
    main()
