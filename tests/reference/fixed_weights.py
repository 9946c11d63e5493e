"""Shared by the backbone *_reference.py scripts: weights and images that C++ recomputes exactly
(tests/fixed_weights.hpp), so that a backbone's embeddings can be compared with its authors' model
without storing the weights. Entry k of a state dict (PyTorch's order), with n elements:

    v_i   = sin(0.37 i + 1.3 k), i = 0 … n−1, in float64
    ≥ 2-d tensors                     v · sqrt(3 / fan_in), fan_in = n / shape[0]
    1-d '…running_var'                1 + 0.25 v
    1-d '…running_mean'               0.1 v
    1-d '…weight' (BN, PReLU, LN)     1 + 0.1 v
    other 1-d ('…bias', …)            0.1 v
    integer ('…num_batches_tracked')  0

Images [N,3,S,S], already normalised to [−1, 1], with a different pattern in each channel (so a
channel-order mix-up changes the embedding):

    x[n,c,h,w] = sin(0.11 (c+1) h + 0.07 (3−c) w + 0.5 n + 0.9 c) · (0.9 − 0.2 c)
"""
import math

import torch


def fixed_value(k, name, shape, dtype):
    n = 1
    for s in shape:
        n *= s
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    v = torch.sin(torch.arange(n, dtype=torch.float64) * 0.37 + 1.3 * k)
    if len(shape) >= 2:
        v = v * math.sqrt(3.0 / (n // shape[0]))
    elif name.endswith("running_var"):
        v = 1 + 0.25 * v
    elif name.endswith("running_mean"):
        v = 0.1 * v
    elif name.endswith("weight"):
        v = 1 + 0.1 * v
    else:
        v = 0.1 * v
    return v.reshape(shape).to(dtype)


def fill_fixed(model):
    """Overwrites every entry of model.state_dict() in place; returns [[name, shape], ...]."""
    keys = []
    with torch.no_grad():
        for k, (name, t) in enumerate(model.state_dict().items()):
            t.copy_(fixed_value(k, name, list(t.shape), t.dtype))
            keys.append([name, list(t.shape)])
    return keys


def fixed_images(n, side):
    c = torch.arange(3, dtype=torch.float64).view(1, 3, 1, 1)
    h = torch.arange(side, dtype=torch.float64).view(1, 1, side, 1)
    w = torch.arange(side, dtype=torch.float64).view(1, 1, 1, side)
    b = torch.arange(n, dtype=torch.float64).view(n, 1, 1, 1)
    x = torch.sin(0.11 * (c + 1) * h + 0.07 * (3 - c) * w + 0.5 * b + 0.9 * c) * (0.9 - 0.2 * c)
    return x.to(torch.float32)
