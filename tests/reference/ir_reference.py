#!/usr/bin/python3
"""AdaFace's own IR backbones (net.py: Backbone, BasicBlockIR(SE), BottleneckIR(SE), SEModule) with
the fixed weights of fixed_weights.py, as JSON; or, with --check, a state dict written by flatface
loaded into their model.

Source: github.com/mk-minchul/AdaFace, net.py at commit c60eaa786a42c03444f3df7096dbaf9d57ae010d,
read from a snapshot (a checkout, or a bare git directory read with `git show`); nothing of it is
copied here. net.py imports only torch, so nothing is stubbed.

How it was run (2026-12-08, Debian 12, python3-torch 1.13.1, CPU, float32):

    /usr/bin/python3 tests/reference/ir_reference.py /work/.mirror/mk-minchul+AdaFace/repo \
        > tests/reference/data/ir.json

For each model below: Backbone(input_size, num_layers, mode) as their build_model and IR_* build
it, its state-dict keys and shapes in order (fill_fixed), and for some of them the embeddings of
fixed_images(2, side) in eval mode. Their forward returns (x / ‖x‖, ‖x‖); flatface's backbone
returns x, the output of `output_layer` (BN1d), which is taken here with a forward hook on
output_layer during their own forward, not recomputed from the pair.

Export direction:

    /usr/bin/python3 tests/reference/ir_reference.py SNAPSHOT --check WEIGHTS.pt EMBEDDINGS.json

reads a state dict that flatface wrote (flatface::save_tensor_dict) and the embeddings that
flatface computed with it (JSON: {"model": name, "images": [n, side], "embeddings": [[...]]}, the
model named as in MODELS), loads the weights into their model with strict=True, embeds the same
images and prints the largest |difference|.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixed_weights import fill_fixed, fixed_images  # noqa: E402
from snapshot import module_from  # noqa: E402

COMMIT = "c60eaa786a42c03444f3df7096dbaf9d57ae010d"
IMAGES = 2

# name -> (input side, num_layers, mode, embed the fixed images?). ir_101 is their name for the
# 100-layer model (IR_101 builds num_layers=100). The forwards are the two cheapest that cover
# the plain and the SE block; the others check names and shapes only.
MODELS = {
    "ir_18": (112, 18, "ir", True),
    "ir_se_50": (112, 50, "ir_se", True),
    "ir_34": (112, 34, "ir", False),
    "ir_50": (112, 50, "ir", False),
    "ir_101": (112, 100, "ir", False),
    "ir_18_224": (224, 18, "ir", False),
    "ir_se_152": (112, 152, "ir_se", False),
}


def build(net, name):
    side, layers, mode, _ = MODELS[name]
    return net.Backbone((side, side), layers, mode)


def embed(model, images):
    """Their forward in eval mode; returns output_layer's output (the unnormalised embedding)."""
    captured = {}
    hook = model.output_layer.register_forward_hook(lambda m, i, o: captured.setdefault("x", o))
    model.eval()
    with torch.no_grad():
        unit, norm = model(images)
    hook.remove()
    x = captured["x"]
    assert torch.allclose(unit * norm, x, rtol=1e-5, atol=1e-6 * x.abs().max().item())
    return x


def reference(net):
    models = {}
    for name, (side, layers, mode, forward) in MODELS.items():
        torch.manual_seed(0)  # their initialisation draws; fill_fixed overwrites every entry
        model = build(net, name)
        entry = {"build": f"net.Backbone(({side}, {side}), {layers}, '{mode}')", "input": side,
                 "parameters": sum(p.numel() for p in model.parameters()),
                 "keys": fill_fixed(model)}
        if forward:
            entry["embeddings"] = embed(model, fixed_images(IMAGES, side)).double().tolist()
        models[name] = entry
        print(f"{name}: {len(entry['keys'])} keys, {entry['parameters']} parameters",
              file=sys.stderr)
    return {"repository": "github.com/mk-minchul/AdaFace", "commit": COMMIT, "file": "net.py",
            "torch": torch.__version__,
            "how": "fill_fixed(model); model.eval(); output_layer's output (forward hook) on "
                   f"fixed_images({IMAGES}, side), float32 on the CPU",
            "images": IMAGES, "models": models}


def write_compact(document, out):
    """JSON with one line per key and per embedding row (the file stays readable and diffable)."""
    out.write("{\n")
    head = {k: v for k, v in document.items() if k != "models"}
    for k, v in head.items():
        out.write(f" {json.dumps(k)}: {json.dumps(v)},\n")
    out.write(' "models": {\n')
    for i, (name, entry) in enumerate(document["models"].items()):
        out.write(f"  {json.dumps(name)}: {{\n")
        fields = list(entry.items())
        for j, (k, v) in enumerate(fields):
            comma = "," if j + 1 < len(fields) else ""
            if isinstance(v, list):
                rows = ",\n".join("    " + json.dumps(row) for row in v)
                out.write(f"   {json.dumps(k)}: [\n{rows}\n   ]{comma}\n")
            else:
                out.write(f"   {json.dumps(k)}: {json.dumps(v)}{comma}\n")
        out.write("  }" + ("," if i + 1 < len(document["models"]) else "") + "\n")
    out.write(" }\n}\n")


def check(net, weights_path, embeddings_path):
    with open(embeddings_path) as f:
        ours = json.load(f)
    name = ours["model"]
    n, side = ours["images"]
    model = build(net, name)
    model.load_state_dict(torch.load(weights_path), strict=True)
    theirs = embed(model, fixed_images(n, side)).double()
    mine = torch.tensor(ours["embeddings"], dtype=torch.float64)
    diff = (theirs - mine).abs().max().item()
    scale = theirs.abs().max().item()
    print(f"{name}: flatface's state dict loads into net.Backbone with strict=True; "
          f"max |diff| {diff:.3g} (max |x| {scale:.3g}, relative {diff / scale:.3g})")
    return diff <= 1e-5 * scale


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("snapshot", help="AdaFace snapshot (bare git directory or checkout)")
    ap.add_argument("--check", nargs=2, metavar=("WEIGHTS", "EMBEDDINGS"),
                    help="compare flatface's export instead of printing the reference JSON")
    args = ap.parse_args()
    torch.set_num_threads(2)
    net = module_from(args.snapshot, "net.py", COMMIT)
    if args.check:
        sys.exit(0 if check(net, *args.check) else 1)
    write_compact(reference(net), sys.stdout)


if __name__ == "__main__":
    main()
