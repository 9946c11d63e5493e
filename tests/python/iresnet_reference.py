#!/usr/bin/env python3
"""A second, independent IResNet written from DESIGN.md ("Backbones") in plain PyTorch.

check:  loads weights written by the C++ plugin with load_state_dict(strict=True), requires the
        same key order, runs the saved input in eval mode and compares with the C++ output.
export: writes torch.save(model.state_dict()) (an OrderedDict) and {input, output} for the C++
        side to load.
Exits non-zero on any mismatch.
"""
import argparse
import sys

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
    weights = torch.load(args.weights)
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


def export(args, model):
    torch.manual_seed(args.seed)
    with torch.no_grad():  # non-trivial statistics and affine terms so every tensor matters
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 1.5)
            elif name.endswith("running_mean") or (name.endswith("bias") and t.dim() == 1):
                t.uniform_(-0.2, 0.2)
            elif name.endswith("weight") and t.dim() == 1 and not name.startswith("features"):
                t.uniform_(0.5, 1.5)
    x = torch.randn(3, 3, args.input, args.input)
    model.eval()
    with torch.no_grad():
        y = model(x)
    torch.save(model.state_dict(), args.weights)
    torch.save({"input": x, "output": y}, args.io)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", choices=["check", "export"])
    p.add_argument("--weights", required=True)
    p.add_argument("--io", required=True)
    p.add_argument("--depth", type=int, default=18)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--input", type=int, default=56)
    p.add_argument("--embedding", type=int, default=128)
    p.add_argument("--stem-stride", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(2)
    model = Reference(args.depth, args.width, args.input, args.embedding, args.stem_stride)
    if args.mode == "check":
        check(args, model)
    else:
        export(args, model)


if __name__ == "__main__":
    main()
