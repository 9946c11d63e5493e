#!/usr/bin/env python3
# Why flatface checks oneDNN's convolution gradient before it builds a backbone
# (runtime/src/kernels/convolution_check.hpp), shown in plain PyTorch: Debian 13's oneDNN 3.7.2
# (libdnnl3.6, under its torch 2.6) returns a wrong input gradient for 3x3 stride-1 convolutions
# with 4 to 24 channels and a batch of two or more; off by O(1), sometimes NaN, different from call
# to call. This is what made the tests' tiny IResNets (width 4) lose their loss to NaN at random
# steps on Debian 13 (cmake/check-debian13.sh). The forward pass and 32 or more channels are right.
#
#   chroot /var/tmp/flatface-debian13 python3 /src/flatface/cmake/onednn_convolution_repro.py
#   /usr/bin/python3 cmake/onednn_convolution_repro.py       # Debian 12's torch 1.13: all right
#
# Measured 2026-12-08 on the 2-core VM, torch 2.6.0+debian (10 tries each, relative error over
# 1e-3 counted wrong): batch 2 with 4, 12 or 24 channels at 8x8 and batch 16 with 4 channels at
# 28x28 wrong 10 of 10; batch 1 (4 or 8 channels), 32, 64 or 128 channels right 10 of 10.
# torch 1.13.1 (Debian 12): right in every case.
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
torch.manual_seed(0)
for n, c, hw in [(1, 4, 8), (2, 4, 8), (16, 4, 28), (1, 8, 8), (2, 12, 8), (2, 24, 8), (1, 32, 8),
                 (4, 64, 14), (4, 128, 7)]:
    wrong = 0
    for _ in range(10):
        x, w, g = torch.randn(n, c, hw, hw), torch.randn(c, c, 3, 3), torch.randn(n, c, hw, hw)
        grads = []
        for onednn in (False, True):
            torch.backends.mkldnn.enabled = onednn
            leaf = x.clone().requires_grad_()
            F.conv2d(leaf, w, padding=1).backward(g)
            grads.append(leaf.grad)
        if not torch.allclose(grads[1], grads[0], rtol=0, atol=1e-3 * float(grads[0].abs().max())):
            wrong += 1
    print(f"torch {torch.__version__}: input [{n}, {c}, {hw}, {hw}]: oneDNN's input gradient "
          f"wrong {wrong} of 10")
