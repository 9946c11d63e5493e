#!/usr/bin/python3
"""Wraps a state dict the way published checkpoints do, for tests/test_state_dict_python.cpp.

    published_checkpoint.py lightning|lightning-legacy|insightface STATE_DICT OUT

lightning: what PyTorch Lightning 1.8 saves for AdaFace (`Trainer` in their train_val.py keeps
the backbone as `self.model` and the margin head as `self.head`): a dict with 'epoch',
'global_step', 'pytorch-lightning_version', 'state_dict' (the LightningModule's OrderedDict with
its `_metadata`, names "model.<name>" and "head.kernel"), 'loops', 'callbacks',
'optimizer_states' (SGD with momentum), 'lr_schedulers' (MultiStepLR, whose milestones are a
collections.Counter), 'hparams_name' and 'hyper_parameters' (Lightning's AttributeDict, a dict
subclass; defined here under its own module name, since Lightning is not installed).
lightning-legacy: the same in torch.save's legacy (non-zip) format.
insightface: arcface_torch's train_v2.py checkpoint: 'epoch', 'global_step',
'state_dict_backbone', 'state_dict_softmax_fc', 'state_optimizer', 'state_lr_scheduler'.
"""
import collections
import sys
import types

import torch


def attribute_dict_class():
    module = types.ModuleType("pytorch_lightning.utilities.parsing")

    class AttributeDict(dict):
        def __getattr__(self, key):
            return self[key]

    AttributeDict.__module__ = module.__name__
    AttributeDict.__qualname__ = "AttributeDict"
    module.AttributeDict = AttributeDict
    for name in ("pytorch_lightning", "pytorch_lightning.utilities", module.__name__):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules[module.__name__] = module
    return AttributeDict


def training_state(tensors, classes=10):
    params = [t.clone().requires_grad_(True) for t in tensors if t.is_floating_point()]
    head = torch.randn(tensors[0].numel() % 7 + 4, classes, requires_grad=True)
    optimizer = torch.optim.SGD(params + [head], lr=0.1, momentum=0.9, weight_decay=5e-4)
    (sum((p * p).sum() for p in params) + head.sum()).backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[12, 20, 24], gamma=0.1)
    return head.detach(), optimizer.state_dict(), scheduler.state_dict()


def main():
    layout, source, out = sys.argv[1:4]
    backbone = torch.load(source)
    head, optimizer, scheduler = training_state(list(backbone.values()))
    if layout == "insightface":
        torch.save({"epoch": 19, "global_step": 1000, "state_dict_backbone": backbone,
                    "state_dict_softmax_fc": {"weight_activated": head.t()},
                    "state_optimizer": optimizer, "state_lr_scheduler": scheduler}, out)
        return
    state = collections.OrderedDict(("model." + k, v) for k, v in backbone.items())
    state["head.kernel"] = head
    state._metadata = collections.OrderedDict([("", {"version": 1}), ("model", {"version": 1}),
                                               ("head", {"version": 1})])
    AttributeDict = attribute_dict_class()
    checkpoint = {
        "epoch": 25, "global_step": 1000, "pytorch-lightning_version": "1.8.6",
        "state_dict": state,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_loop.state_dict": {"_batches_that_stepped": 1000},
                               "epoch_progress": {"total": {"ready": 26, "completed": 25}}}},
        "callbacks": {"ModelCheckpoint{'monitor': 'val_acc', 'mode': 'max'}": {
            "monitor": "val_acc", "best_model_score": torch.tensor(0.97),
            "best_model_path": "epoch=24.ckpt", "best_k_models": {"epoch=24.ckpt": torch.tensor(0.97)},
            "kth_value": torch.tensor(0.97), "dirpath": "experiments/run"}},
        "optimizer_states": [optimizer],
        "lr_schedulers": [scheduler],
        "hparams_name": "kwargs",
        "hyper_parameters": AttributeDict(arch="ir_50", head="adaface", m=0.4, h=0.333, s=64.0,
                                          t_alpha=0.01, lr_milestones="12,20,24", batch_size=512),
    }
    torch.save(checkpoint, out, _use_new_zipfile_serialization=(layout != "lightning-legacy"))


if __name__ == "__main__":
    main()
