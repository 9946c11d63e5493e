#!/usr/bin/python3
"""insightface's own VisionTransformer (arcface_torch backbones/vit.py) with fixed weights, as JSON.

Source: github.com/deepinsight/insightface, recognition/arcface_torch/backbones/vit.py at commit
7fadd420c2351d0ffa8cac403421c1a3ed733365, read from a snapshot (a checkout, or a bare git
directory read with `git show`); nothing of it is copied here. The configurations are the vit_*
entries of backbones/__init__.py at that commit.

How it was run (2026-12-08, Debian 12, python3-torch 1.13.1, CPU, float32):

    /usr/bin/python3 tests/reference/vit_reference.py /work/.mirror/deepinsight+insightface/repo \
        > tests/reference/data/vit.json

For each configuration it builds their model, fills every state-dict entry with
fixed_weights.fill_fixed, and (where "images" > 0) embeds fixed_weights.fixed_images in eval
mode. The JSON lists, per configuration, the state-dict names with shapes in order, the number of
parameters, and the embeddings [N, D].

The other direction (weights written by flatface):

    /usr/bin/python3 tests/reference/vit_reference.py SNAPSHOT --check STATE_DICT.pt EMBEDDINGS.json

loads flatface's state dict into their model with strict=True, embeds the images named in the
JSON file ({"config": ..., "images": n, "side": s, "embeddings": [[...]]}) in eval mode and prints
the largest absolute difference; it exits 1 if that exceeds 1e-5 of the largest magnitude.

Shim: vit.py imports DropPath, to_2tuple and trunc_normal_ from timm, which is not installed.
They are stubbed: DropPath as the identity (it is one in eval mode, the only mode run here),
to_2tuple as (x, x), and trunc_normal_ as torch.nn.init.trunc_normal_ (it only initialises, and
fill_fixed overwrites every value). Their attention's torch.cuda.amp.autocast does nothing on the
CPU.
"""
import json
import sys
import types
import warnings

import torch

from fixed_weights import fill_fixed, fixed_images
from snapshot import commit_of, source_of

PATH = "recognition/arcface_torch/backbones/vit.py"

# backbones/__init__.py: vit_t, vit_s, vit_b and vit_l_dp005_mask_005 (all 112x112, patch 9,
# 8 heads, layer norm; num_features 512). Last, two small ones for flatface's options: its
# CPU-sized entry `vit-cpu` and the batch-norm variant.
CONFIGS = [
    ("vit_t", dict(img_size=112, patch_size=9, num_classes=512, embed_dim=256, depth=12,
                   num_heads=8, drop_path_rate=0.1, norm_layer="ln", mask_ratio=0.1), 2),
    ("vit_s", dict(img_size=112, patch_size=9, num_classes=512, embed_dim=512, depth=12,
                   num_heads=8, drop_path_rate=0.1, norm_layer="ln", mask_ratio=0.1), 0),
    ("vit_b", dict(img_size=112, patch_size=9, num_classes=512, embed_dim=512, depth=24,
                   num_heads=8, drop_path_rate=0.1, norm_layer="ln", mask_ratio=0.1), 0),
    ("vit_l", dict(img_size=112, patch_size=9, num_classes=512, embed_dim=768, depth=24,
                   num_heads=8, drop_path_rate=0.05, norm_layer="ln", mask_ratio=0.05), 0),
    ("vit-cpu", dict(img_size=56, patch_size=7, num_classes=128, embed_dim=128, depth=4,
                     num_heads=4, drop_path_rate=0.1, norm_layer="ln", mask_ratio=0.1), 2),
    ("vit-cpu-bn", dict(img_size=56, patch_size=7, num_classes=128, embed_dim=128, depth=4,
                        num_heads=4, drop_path_rate=0.1, norm_layer="bn", mask_ratio=0.0), 2),
]


def load_vit(snapshot):
    timm = types.ModuleType("timm")
    models = types.ModuleType("timm.models")
    layers = types.ModuleType("timm.models.layers")
    layers.DropPath = lambda p: torch.nn.Identity()
    layers.to_2tuple = lambda x: (x, x)
    layers.trunc_normal_ = torch.nn.init.trunc_normal_
    timm.models, models.layers = models, layers
    sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers})
    module = types.ModuleType("vit")
    exec(compile(source_of(snapshot, PATH), PATH, "exec"), module.__dict__)
    return module


def embed(model, images, side):
    model.eval()
    with torch.no_grad():
        return model(fixed_images(images, side))


def check(vit, config_name, weights_path, embeddings_path):
    with open(embeddings_path) as f:
        theirs = json.load(f)  # written by flatface's test: ours
    kwargs = {n: k for n, k, _ in CONFIGS}[config_name]
    model = vit.VisionTransformer(**kwargs)
    model.load_state_dict(torch.load(weights_path), strict=True)
    out = embed(model, theirs["images"], theirs["side"])
    ours = torch.tensor(theirs["embeddings"], dtype=torch.float32)
    diff = (out - ours).abs().max().item()
    scale = ours.abs().max().item()
    print(f"{config_name}: strict load ok; max |diff| {diff:.3g}, max |embedding| {scale:.3g}")
    return diff <= 1e-5 * scale


def main():
    warnings.filterwarnings("ignore", message="User provided device_type of 'cuda'")  # autocast
    snapshot = sys.argv[1]
    vit = load_vit(snapshot)
    if len(sys.argv) == 5 and sys.argv[2] == "--check":
        with open(sys.argv[4]) as f:
            config_name = json.load(f)["config"]
        sys.exit(0 if check(vit, config_name, sys.argv[3], sys.argv[4]) else 1)
    document = {"repository": "github.com/deepinsight/insightface", "commit": commit_of(snapshot),
                "path": PATH, "torch": torch.__version__,
                "run": "/usr/bin/python3 tests/reference/vit_reference.py SNAPSHOT "
                       "> tests/reference/data/vit.json",
                "configs": []}
    for name, kwargs, images in CONFIGS:
        model = vit.VisionTransformer(**kwargs)
        entry = {"name": name, "kwargs": kwargs, "keys": fill_fixed(model),
                 "parameters": sum(p.numel() for p in model.parameters()),
                 "images": images, "side": kwargs["img_size"]}
        if images:
            entry["embeddings"] = embed(model, images, kwargs["img_size"]).double().tolist()
        document["configs"].append(entry)
        del model
    json.dump(document, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
