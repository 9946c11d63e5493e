#!/usr/bin/env python3
# Why the Debian 13 check (cmake/check-debian13.sh) fails some tests intermittently: Debian 13's
# torch 2.6 (CPU, one thread) returns a non-finite loss or gradient on some training steps of a very
# narrow IResNet-18 (width 4, 56x56, stride-2 stem: the tests' tiny grid), and on different steps
# from one run to the next with the same seed and inputs. Debian 12's torch 1.13 never does. No
# flatface code is involved: this is the model written in plain PyTorch.
#
#   chroot /var/tmp/flatface-debian13 python3 /src/flatface/cmake/torch26_nan_repro.py   # torch 2.6
#   /usr/bin/python3 cmake/torch26_nan_repro.py                                         # torch 1.13
#
# Measured 2026-12-07 (the 2-core VM), this script as it is: torch 2.6, three runs: non-finite at
# steps [0], [0], [] of 80; torch 1.13: []. An earlier variant (80 steps, seed 1) gave 1, 1, 2, 0
# non-finite steps in four runs on 2.6 and none on 1.13. Each layer alone (BatchNorm2d, PReLU, 3x3 and
# 1x1 convolutions at these shapes) repeated its outputs and gradients bit for bit in 30 tries, so
# the fault shows only in the composition. Width 8: 0 of 40 steps in one run.
import sys

import torch
import torch.nn as nn

torch.set_num_threads(1)


def conv3x3(i, o, stride=1):
    return nn.Conv2d(i, o, 3, stride, 1, bias=False)


class Block(nn.Module):  # insightface's IBasicBlock: BN, conv, BN, PReLU, conv (stride), BN
    def __init__(self, i, o, stride):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(i), conv3x3(i, o), nn.BatchNorm2d(o), nn.PReLU(o),
                                  conv3x3(o, o, stride), nn.BatchNorm2d(o))
        self.down = (nn.Sequential(nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o))
                     if stride != 1 or i != o else nn.Identity())

    def forward(self, x):
        return self.body(x) + self.down(x)


def model(width):
    layers, channels = [conv3x3(3, width, 2), nn.BatchNorm2d(width), nn.PReLU(width)], width
    for mult in (1, 2, 4, 8):
        layers += [Block(channels, mult * width, 2), Block(mult * width, mult * width, 1)]
        channels = mult * width
    layers += [nn.BatchNorm2d(channels), nn.Flatten(), nn.Linear(channels * 2 * 2, 16)]
    return nn.Sequential(*layers)


width = int(sys.argv[1]) if len(sys.argv) > 1 else 4
torch.manual_seed(0)
m = model(width)
for mod in m.modules():
    if isinstance(mod, nn.Conv2d):
        nn.init.normal_(mod.weight, 0, 0.1)
torch.manual_seed(1)
bad = []
for step in range(80):
    x = torch.rand(16, 3, 56, 56) * 2 - 1
    loss = m(x).square().mean()
    m.zero_grad(set_to_none=True)
    loss.backward()
    g = torch.stack([p.grad.norm() for p in m.parameters()]).norm()
    if not (torch.isfinite(loss) and torch.isfinite(g)):
        bad.append(step)
print(f"torch {torch.__version__}, width {width}: non-finite at steps {bad} of 80")
