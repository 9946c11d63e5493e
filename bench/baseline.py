#!/usr/bin/env python3
"""Plain-PyTorch baseline of flatface's training step, for `flatface bench` to be compared with.

The same work as one flatface step, written from the paper's formulas the way a researcher would
in Python: IResNet, MobileFaceNet, IR or ViT backbone, cosine margin head (ArcFace, AdaFace, CosFace,
softmax), SGD with momentum and weight decay, and a perturbation strategy (none, SAM, AACE, ASAM).
Every setup of the config is built and kept in memory; rounds time one step per setup in turn, so
machine noise hits all setups alike and the ratios stay meaningful.

    python3 bench/baseline.py --config FLATFACE_BENCH.json [--json OUT.json] [--steps N] [--warmup N]
"""
import argparse
import datetime
import inspect
import json
import math
import platform
import resource
import socket
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------
# Backbone: IResNet (BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN, conv1x1+BN shortcut;
# output head BN2d -> dropout -> FC -> BN1d with its scale fixed to 1).

STAGE_BLOCKS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 14, 3], 100: [3, 13, 30, 3],
                200: [6, 26, 60, 6]}
BACKBONE_DEFAULTS = {
    "iresnet": dict(depth=50, width=64, input=112, embedding=512, stem_stride=1, dropout=0.0,
                    zero_init_residual=False),
    "iresnet-small": dict(depth=18, width=16, input=56, embedding=128, stem_stride=2, dropout=0.0,
                          zero_init_residual=False),
    "mobilefacenet": dict(blocks=[1, 4, 6, 2], scale=2, embedding=512, input=112),
    "mobilefacenet-large": dict(blocks=[2, 8, 12, 4], scale=4, embedding=512, input=112),
    "mobilefacenet-small": dict(blocks=[1, 4, 6, 2], scale=1, embedding=128, input=56),
    # The ViTs take no `size`: write dim, depth, heads ... out in full.
    "vit": dict(dim=256, depth=12, heads=8, mlp_ratio=4.0, patch=9, input=112, embedding=512,
                drop_path=0.1, mask_ratio=0.1, norm="ln"),
    "vit-cpu": dict(dim=128, depth=4, heads=4, mlp_ratio=4.0, patch=7, input=56, embedding=128,
                    drop_path=0.1, mask_ratio=0.1, norm="ln"),
}


def conv3x3(cin, cout, stride):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def bn2d(channels):
    return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)


class IBasicBlock(nn.Module):
    def __init__(self, cin, channels, stride):
        super().__init__()
        self.bn1 = bn2d(cin)
        self.conv1 = conv3x3(cin, channels, 1)
        self.bn2 = bn2d(channels)
        self.prelu = nn.PReLU(channels)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn3 = bn2d(channels)
        self.downsample = None
        if stride != 1 or cin != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, channels, 1, stride=stride, bias=False), bn2d(channels))

    def forward(self, x):
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    def __init__(self, depth, width, input, embedding, stem_stride, dropout, zero_init_residual):
        super().__init__()
        blocks = STAGE_BLOCKS[depth]
        self.conv1 = conv3x3(3, width, stem_stride)
        self.bn1 = bn2d(width)
        self.prelu = nn.PReLU(width)
        stages, cin = [], width
        for i, n in enumerate(blocks):  # every stage halves the resolution in its first block
            c = width * 2 ** i
            stages.append(nn.Sequential(IBasicBlock(cin, c, 2),
                                        *[IBasicBlock(c, c, 1) for _ in range(n - 1)]))
            cin = c
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn2 = bn2d(cin)
        self.dropout = nn.Dropout(dropout)
        side = (input - 1) // stem_stride + 1
        for _ in range(4):
            side = (side - 1) // 2 + 1
        self.fc = nn.Linear(cin * side * side, embedding)
        self.features = nn.BatchNorm1d(embedding, eps=1e-5, momentum=0.1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, IBasicBlock):
                    nn.init.zeros_(m.bn2.weight)
        nn.init.ones_(self.features.weight)  # the embedding BN only centres and shifts
        self.features.weight.requires_grad_(False)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.bn2(x), 1)
        return self.features(self.fc(self.dropout(x)))


# ---------------------------------------------------------------------------------------------
# Backbone: MobileFaceNet (MobileFaceNets, Chen et al. 2018, with insightface's widths): inverted
# bottlenecks 1x1 expand -> depthwise 3x3 -> 1x1 linear, conv_sep 1x1 to 512, and the GDC output
# (depthwise conv over the whole last map, bias-free FC, BN1d).

def conv_bn(cin, cout, kernel, stride=1, groups=1, prelu=True, padding=None):
    padding = (kernel - 1) // 2 if padding is None else padding
    layers = [nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, groups=groups,
                        bias=False), bn2d(cout)]
    if prelu:
        layers.append(nn.PReLU(cout))
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    def __init__(self, cin, width, cout, stride, residual):
        super().__init__()
        self.residual = residual
        self.body = nn.Sequential(conv_bn(cin, width, 1), conv_bn(width, width, 3, stride, width),
                                  conv_bn(width, cout, 1, prelu=False))

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileFaceNet(nn.Module):
    def __init__(self, blocks, scale, embedding, input):
        super().__init__()
        c, wide = 64 * scale, 128 * scale
        repeat = lambda n, ch, width: [Bottleneck(ch, width, ch, 1, True) for _ in range(n)]
        stem2 = [conv_bn(c, c, 3, groups=64)] if blocks[0] == 1 else repeat(blocks[0], c, 128)
        self.body = nn.Sequential(
            conv_bn(3, c, 3, stride=2), *stem2,
            Bottleneck(c, 128, c, 2, False), *repeat(blocks[1], c, 128),
            Bottleneck(c, 256, wide, 2, False), *repeat(blocks[2], wide, 256),
            Bottleneck(wide, 512, wide, 2, False), *repeat(blocks[3], wide, 256),
            conv_bn(wide, 512, 1))
        side = input
        for _ in range(4):  # the stem and three bottlenecks halve: s -> ceil(s / 2)
            side = (side + 1) // 2
        self.gdc = conv_bn(512, 512, side, groups=512, prelu=False, padding=0)
        self.fc = nn.Linear(512, embedding, bias=False)
        self.bn = nn.BatchNorm1d(embedding, eps=1e-5, momentum=0.1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.bn(self.fc(torch.flatten(self.gdc(self.body(x)), 1)))



# Backbone: AdaFace's IR (Kim et al. 2022): units BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride)
# -> BN (bottleneck 1x1/3x3/1x1 from depth 152), optional squeeze-and-excitation, a strided
# identity shortcut where the channels stay; output BN2d -> dropout -> FC -> BN1d(affine=False).

IR_STAGES = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 14, 3], 100: [3, 13, 30, 3],
             101: [3, 13, 30, 3], 152: [3, 8, 36, 3], 200: [3, 24, 36, 3]}
BACKBONE_DEFAULTS["ir"] = dict(depth=50, se=False, input=112, embedding=512, dropout=0.4, width=64)
BACKBONE_DEFAULTS["ir-se"] = dict(BACKBONE_DEFAULTS["ir"], se=True)


class SqueezeExcite(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.squeeze = nn.Conv2d(channels, channels // 16, 1, bias=False)
        self.excite = nn.Conv2d(channels // 16, channels, 1, bias=False)

    def forward(self, x):
        gate = self.excite(F.relu(self.squeeze(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class IRUnit(nn.Module):
    def __init__(self, cin, cout, stride, bottleneck, se):
        super().__init__()
        if bottleneck:
            mid = cout // 4
            layers = [bn2d(cin), nn.Conv2d(cin, mid, 1, bias=False), bn2d(mid), nn.PReLU(mid),
                      conv3x3(mid, mid, 1), bn2d(mid), nn.PReLU(mid),
                      nn.Conv2d(mid, cout, 1, stride=stride, bias=False), bn2d(cout)]
        else:
            layers = [bn2d(cin), conv3x3(cin, cout, 1), bn2d(cout), nn.PReLU(cout),
                      conv3x3(cout, cout, stride), bn2d(cout)]
        if se:
            layers.append(SqueezeExcite(cout))
        self.branch = nn.Sequential(*layers)
        self.stride = stride
        self.projection = None
        if cin != cout:
            self.projection = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                            bn2d(cout))

    def forward(self, x):
        if self.projection is None:
            shortcut = x[:, :, ::self.stride, ::self.stride]
        else:
            shortcut = self.projection(x)
        return self.branch(x) + shortcut


class IR(nn.Module):
    def __init__(self, depth, se, input, embedding, dropout, width):
        super().__init__()
        bottleneck = depth >= 152
        self.stem = nn.Sequential(conv3x3(3, width, 1), bn2d(width), nn.PReLU(width))
        units, cin, side = [], width, input
        for i, n in enumerate(IR_STAGES[depth]):  # each stage's first unit has stride 2
            cout = width * 2 ** i * (4 if bottleneck else 1)
            for u in range(n):
                units.append(IRUnit(cin, cout, 2 if u == 0 else 1, bottleneck, se))
                cin = cout
            side = (side - 1) // 2 + 1
        self.units = nn.Sequential(*units)
        self.head = nn.Sequential(bn2d(cin), nn.Dropout(dropout), nn.Flatten(),
                                  nn.Linear(cin * side * side, embedding),
                                  nn.BatchNorm1d(embedding, affine=False))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.head(self.units(self.stem(x)))



# Backbone: the ViT of insightface's arcface_torch (patch tokens + position embedding, no class
# token; pre-norm blocks with a bias-free qkv and a ReLU6 MLP; flatten -> FC -> BN1d -> FC -> BN1d
# with eps 2e-5). Training drops whole residual branches per sample (stochastic depth, linear in
# depth) and swaps a random share of the patches for a learned token after the final norm.

class TokenBatchNorm(nn.Module):  # "bn": BatchNorm1d whose channels are the patches
    def __init__(self, patches):
        super().__init__()
        self.bn = nn.BatchNorm1d(patches)

    def forward(self, x):
        return self.bn(x)


def token_norm(norm, dim, patches):
    return nn.LayerNorm(dim) if norm == "ln" else TokenBatchNorm(patches)


def drop_branch(x, rate, training):
    if not training or rate == 0.0:
        return x
    keep = torch.empty(x.shape[0], 1, 1, device=x.device).bernoulli_(1.0 - rate)
    return x * keep / (1.0 - rate)


class VitBlock(nn.Module):
    def __init__(self, dim, heads, hidden, patches, norm, drop_path):
        super().__init__()
        self.heads, self.drop_path = heads, drop_path
        self.norm1 = token_norm(norm, dim, patches)
        self.norm2 = token_norm(norm, dim, patches)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def attention(self, x):
        n, length, dim = x.shape
        q, k, v = self.qkv(x).view(n, length, 3, self.heads, dim // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [n, heads, length, dim / heads]
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dim // self.heads), dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(n, length, dim))

    def forward(self, x):
        x = x + drop_branch(self.attention(self.norm1(x)), self.drop_path, self.training)
        mlp = self.fc2(F.relu6(self.fc1(self.norm2(x))))
        return x + drop_branch(mlp, self.drop_path, self.training)


class VisionTransformer(nn.Module):
    def __init__(self, dim, depth, heads, mlp_ratio, patch, input, embedding, drop_path, mask_ratio,
                 norm):
        super().__init__()
        self.patches, self.mask_ratio = (input // patch) ** 2, mask_ratio
        self.patch_conv = nn.Conv2d(3, dim, patch, stride=patch)
        self.position = nn.Parameter(torch.randn(1, self.patches, dim) * 0.02)
        self.mask_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(VitBlock(dim, heads, int(dim * mlp_ratio), self.patches, norm, r)
                                    for r in rates)
        self.norm = token_norm(norm, dim, self.patches)
        self.head = nn.Sequential(nn.Linear(dim * self.patches, dim, bias=False),
                                  nn.BatchNorm1d(dim, eps=2e-5),
                                  nn.Linear(dim, embedding, bias=False),
                                  nn.BatchNorm1d(embedding, eps=2e-5))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, images):
        x = self.patch_conv(images).flatten(2).transpose(1, 2) + self.position
        n, length, dim = x.shape
        masking = self.training and self.mask_ratio > 0
        if masking:
            order = torch.rand(n, length, device=x.device).argsort(dim=1)
            kept = int(length * (1 - self.mask_ratio))
            x = x.gather(1, order[:, :kept, None].expand(-1, -1, dim))
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        if masking:
            full = self.mask_token.expand(n, length, dim).clone()
            full.scatter_(1, order[:, :kept, None].expand(-1, -1, dim), x)
            x = full
        return self.head(x.flatten(1))


# The class of each backbone plugin above (plugin name -> class taking BACKBONE_DEFAULTS' keys).
BACKBONE_CLASSES = {"iresnet": IResNet, "iresnet-small": IResNet, "mobilefacenet": MobileFaceNet,
                    "mobilefacenet-large": MobileFaceNet, "mobilefacenet-small": MobileFaceNet,
                    "ir": IR, "ir-se": IR, "vit": VisionTransformer, "vit-cpu": VisionTransformer}

# ---------------------------------------------------------------------------------------------
# Margin heads over W [C, D]: cos θ_ij = <x_i/‖x_i‖, W_j/‖W_j‖> (paper eq. 2).

class CosineHead(nn.Module):
    def __init__(self, classes, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(classes, dim).normal_(0.0, 0.01))
        self.update_statistics = True  # AdaFace's running norm statistics: first pass only

    def cosine(self, x):
        return F.normalize(x, dim=1).mm(F.normalize(self.weight, dim=1).t()).clamp(-1.0, 1.0)

    def with_target(self, cos, labels, target):  # column y_i of row i replaced, out of place
        return cos.scatter(1, labels.view(-1, 1), target)


class Softmax(CosineHead):
    def __init__(self, classes, dim, s=64.0):
        super().__init__(classes, dim)
        self.s = s

    def forward(self, x, labels):
        return self.s * self.cosine(x)  # eq. 2


class CosFace(CosineHead):
    def __init__(self, classes, dim, s=64.0, m=0.35):
        super().__init__(classes, dim)
        self.s, self.m = s, m

    def forward(self, x, labels):
        cos = self.cosine(x)
        return self.s * self.with_target(cos, labels, cos.gather(1, labels.view(-1, 1)) - self.m)


class ArcFace(CosineHead):
    def __init__(self, classes, dim, s=64.0, m=0.5, straight_through=False):
        super().__init__(classes, dim)
        self.s, self.m, self.straight_through = s, m, straight_through

    def forward(self, x, labels):
        cos = self.cosine(x)
        c = cos.gather(1, labels.view(-1, 1))
        if self.straight_through:  # value cos(θ + m), gradient 1 in cos θ
            with torch.no_grad():
                cos_theta_m = (c.acos() + self.m).cos()
            target = cos_theta_m + (c - c.detach())
        else:  # cos(θ + m) = cos θ cos m − sin θ sin m; cos θ − m sin m beyond θ + m > π
            sin = (1.0 - c * c).clamp_min(1e-12).sqrt()
            target = torch.where(c > math.cos(math.pi - self.m),
                                 c * math.cos(self.m) - sin * math.sin(self.m),
                                 c - self.m * math.sin(self.m))
        return self.s * self.with_target(cos, labels, target)  # eq. 3


class AdaFace(CosineHead):
    EPS = 1e-3

    def __init__(self, classes, dim, s=64.0, m=0.4, h=0.333, t_alpha=0.01):
        super().__init__(classes, dim)
        self.s, self.m, self.h, self.t_alpha = s, m, h, t_alpha
        self.register_buffer("batch_mean", torch.full((1,), 20.0))
        self.register_buffer("batch_std", torch.full((1,), 100.0))

    def forward(self, x, labels):
        norms = x.detach().norm(2, 1, keepdim=True).clamp(0.001, 100.0)
        if self.update_statistics:
            with torch.no_grad():
                a = self.t_alpha
                self.batch_mean.mul_(1 - a).add_(a * norms.mean())
                if norms.size(0) > 1:
                    self.batch_std.mul_(1 - a).add_(a * norms.std())
        scaler = (self.h * (norms - self.batch_mean) / (self.batch_std + self.EPS)).clamp(-1, 1)
        cos = self.cosine(x).clamp(-1 + self.EPS, 1 - self.EPS)
        theta = cos.gather(1, labels.view(-1, 1)).acos()
        theta_m = (theta - self.m * scaler).clamp(self.EPS, math.pi - self.EPS)  # g_angle
        target = theta_m.cos() - (self.m + self.m * scaler)  # g_add (eq. 4)
        return self.s * self.with_target(cos, labels, target)


HEADS = {"softmax": Softmax, "cosface": CosFace, "arcface": ArcFace, "adaface": AdaFace}


# ---------------------------------------------------------------------------------------------
# One training step's plumbing: forward passes, BN policy of the second pass, w ↔ w + ε.

def global_norm(tensors):
    return torch.stack(torch._foreach_norm(tensors)).norm()


class TrainStep:
    def __init__(self, backbone, head, optimizer, images, labels, bf16, bn_second_pass):
        self.backbone, self.head, self.optimizer = backbone, head, optimizer
        self.images, self.labels, self.bf16 = images, labels, bf16
        self.freeze_bn = bn_second_pass == "freeze"
        self.params = [p for m in (backbone, head) for p in m.parameters() if p.requires_grad]
        self.saved = [torch.empty_like(p) for p in self.params]  # w_saved, allocated once
        self.bns = [m for mod in (backbone, head) for m in mod.modules()
                    if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
        self.correct = None

    def embed(self):
        if not self.bf16:
            return self.backbone(self.images)
        with torch.autocast("cuda", dtype=torch.bfloat16):  # backbone only; head in fp32
            return self.backbone(self.images).float()

    def forward_first(self):  # BN running stats and AdaFace statistics update here
        self.head.update_statistics = True
        emb = self.embed()
        with torch.no_grad():  # training accuracy, kept on the device
            self.correct = self.head.cosine(emb.detach()).argmax(1).eq(self.labels).sum()
        return self.head(emb, self.labels)

    def forward_second(self):  # gradients only: no statistics change
        self.head.update_statistics = False
        if self.freeze_bn:  # momentum 0 leaves the running stats; the counter is stepped back
            momenta = [m.momentum for m in self.bns]
            for m in self.bns:
                m.momentum = 0.0
            emb = self.embed()
            for m, mom in zip(self.bns, momenta):
                m.momentum = mom
            with torch.no_grad():
                torch._foreach_sub_([m.num_batches_tracked for m in self.bns], 1)
        else:
            emb = self.embed()
        logits = self.head(emb, self.labels)
        self.head.update_statistics = True
        return logits

    def gradients(self):  # a parameter the loss did not reach counts as zero
        return [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]

    def descend_from_perturbed(self, eps):
        """w_saved ← w, w ← w + ε; ∇L_margin(w + ε); w ← w_saved; SGD step (eqs. 18, 19)."""
        with torch.no_grad():
            for s, p in zip(self.saved, self.params):
                s.copy_(p)
            torch._foreach_add_(self.params, eps)
        del eps[:]  # ε lives in the first pass's gradients: free it before the second backward
        self.optimizer.zero_grad(set_to_none=True)
        loss_perturbed = F.cross_entropy(self.forward_second(), self.labels)
        loss_perturbed.backward()
        with torch.no_grad():  # copied back, not ε subtracted, so w returns bit-exactly
            for s, p in zip(self.saved, self.params):
                p.copy_(s)
        self.optimizer.step()
        return loss_perturbed


# ---------------------------------------------------------------------------------------------
# Perturbation strategies. Each step returns its statistics as 0-dim device tensors.

class NoPerturbation:
    two_pass = False

    def step(self, ctx):  # w ← SGD(w, ∇L_margin(w)) (eq. 15)
        ctx.optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(ctx.forward_first(), ctx.labels)  # eq. 16
        loss.backward()
        grad_norm = global_norm(ctx.gradients())
        ctx.optimizer.step()
        return [loss, grad_norm]


class Sam:
    two_pass = True

    def __init__(self, rho=0.05):
        self.rho = rho

    def step(self, ctx):
        ctx.optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(ctx.forward_first(), ctx.labels)
        loss.backward()
        eps = ctx.gradients()  # ε formed in place in the gradient buffers
        grad_norm = global_norm(eps)
        with torch.no_grad():
            scale = self.rho / (grad_norm + 1e-12)
            for e in eps:
                e.mul_(scale)  # ε = ρ g / ‖g‖ (eq. 17)
        eps_norm = global_norm(eps)
        loss_perturbed = ctx.descend_from_perturbed(eps)  # eq. 18
        return [loss, loss_perturbed, grad_norm, eps_norm]


def aace_loss(logits, labels, normalized):
    """mean_i KL(τ_i ‖ softmax(z_i)) with τ detached, no mass on y (eqs. 11-14, 21)."""
    z, y = logits.detach(), labels.view(-1, 1)
    if normalized:  # τ_j = q_j / Σ_{k≠y} q_k
        tau = z.scatter(1, y, -math.inf).softmax(1)
    else:  # literal eq. 13: τ_j = q_j, τ_y = 0
        tau = z.softmax(1).scatter(1, y, 0.0)
    return (torch.xlogy(tau, tau) - tau * logits.log_softmax(1)).sum(1).mean()


class Aace:
    two_pass = True

    def __init__(self, rho=0.05, normalize_target=True):
        self.rho, self.normalize_target = rho, normalize_target

    def step(self, ctx):
        ctx.optimizer.zero_grad(set_to_none=True)
        z = ctx.forward_first()
        with torch.no_grad():
            loss = F.cross_entropy(z, ctx.labels)  # logged only
        loss_aace = aace_loss(z, ctx.labels, self.normalize_target)  # eq. 21
        loss_aace.backward()
        eps = ctx.gradients()
        with torch.no_grad():
            torch._foreach_mul_(eps, -self.rho)  # ε = −ρ ∇L_AACE, not normalised (eq. 20)
        eps_norm = global_norm(eps)
        loss_perturbed = ctx.descend_from_perturbed(eps)  # eq. 19
        return [loss, loss_aace, loss_perturbed, eps_norm]


class Asam:
    two_pass = True

    def __init__(self, rho=0.5, eta=0.01):
        self.rho, self.eta = rho, eta

    def step(self, ctx):
        ctx.optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(ctx.forward_first(), ctx.labels)
        loss.backward()
        eps = ctx.gradients()
        grad_norm = global_norm(eps)
        with torch.no_grad():
            t = ctx.saved  # scratch for T = |w| + η on weight tensors until w is saved
            for i, p in enumerate(ctx.params):
                if p.dim() > 1:
                    torch.abs(p, out=t[i]).add_(self.eta)
                    eps[i].mul_(t[i])  # T g
            scale = self.rho / (global_norm(eps) + 1e-12)
            for i, p in enumerate(ctx.params):
                if p.dim() > 1:
                    eps[i].mul_(t[i])  # T² g
                eps[i].mul_(scale)  # ε = ρ T² g / ‖T g‖
        eps_norm = global_norm(eps)
        loss_perturbed = ctx.descend_from_perturbed(eps)
        return [loss, loss_perturbed, grad_norm, eps_norm]


PERTURBATIONS = {"none": NoPerturbation, "sam": Sam, "aace": Aace, "asam": Asam}


def run_step(ctx, strategy):
    stats = strategy.step(ctx)
    # One host synchronisation per step, as flatface reads its step statistics.
    return torch.stack([s.detach().double().reshape(()) for s in stats]).tolist()


# ---------------------------------------------------------------------------------------------
# The benchmark: configuration, interleaved timing, report.

def construct(cls, cfg, *args):
    """cls(*args, **options) with the options cls takes; other keys are reported and ignored."""
    accepted = inspect.signature(cls).parameters
    ignored = [k for k in cfg if k != "plugin" and k not in accepted]
    if ignored:
        print(f"baseline: {cfg['plugin']}: ignoring options {ignored}", file=sys.stderr)
    return cls(*args, **{k: v for k, v in cfg.items() if k in accepted and k != "plugin"})


def percentile(xs, q):  # linear interpolation between closest ranks
    xs = sorted(xs)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def machine_name(device):
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    name = f"{socket.gethostname()}, {cpu}"
    if device.type == "cuda":
        name += f", {torch.cuda.get_device_name(device)}"
    return name


def resolve_config(raw, args):
    c = dict(device="cpu", threads=torch.get_num_threads(), batch_size=64, classes=1000,
             precision="fp32", steps=20, warmup=3, seed=0)
    c.update(raw)
    if args.steps is not None:
        c["steps"] = args.steps
    if args.warmup is not None:
        c["warmup"] = args.warmup
    backbone = dict(raw.get("backbone", {}))
    backbone.setdefault("plugin", "iresnet")
    if backbone["plugin"] not in BACKBONE_DEFAULTS:
        sys.exit(f"baseline: unknown backbone plugin '{backbone['plugin']}'")
    c["backbone"] = {**BACKBONE_DEFAULTS[backbone["plugin"]], **backbone}
    c["train"] = {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "decay_bn_and_bias": True,
                  **raw.get("train", {})}
    if c["device"] == "auto":
        c["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    if c["precision"] == "bf16" and not c["device"].startswith("cuda"):
        sys.exit("baseline: precision \"bf16\" needs a CUDA device")
    if not c.get("setups"):
        sys.exit("baseline: the config has no setups")
    # The cheaper strategies (looksam, ae-sam, esam, gsam) have no Python twin here: left out.
    known = [s for s in c["setups"]
             if s.get("perturbation", {"plugin": "none"})["plugin"] in PERTURBATIONS]
    for s in c["setups"]:
        if s not in known:
            print(f"baseline: no Python version of '{s['perturbation']['plugin']}'; "
                  f"setup '{s.get('name')}' left out", file=sys.stderr)
    c["setups"] = known
    if not known:
        sys.exit("baseline: no setup with a perturbation this baseline implements")
    if c["steps"] < 1 or c["warmup"] < 0:
        sys.exit("baseline: steps must be >= 1 and warmup >= 0")
    return c


def build_setup(setup, c, device):
    b = c["backbone"]
    model_class = BACKBONE_CLASSES[b["plugin"]]
    backbone = model_class(**{k: b[k] for k in BACKBONE_DEFAULTS[b["plugin"]]})
    head_cfg = setup.get("head", {"plugin": "arcface"})
    head = construct(HEADS[head_cfg["plugin"]], head_cfg, c["classes"], b["embedding"])
    pert_cfg = dict(setup.get("perturbation", {"plugin": "none"}))
    bn_second_pass = pert_cfg.pop("bn_second_pass", "freeze")
    strategy = construct(PERTURBATIONS[pert_cfg["plugin"]], pert_cfg)
    backbone.to(device)
    head.to(device)
    if device.type == "cuda":
        backbone.to(memory_format=torch.channels_last)
    t = c["train"]
    params = [p for m in (backbone, head) for p in m.parameters() if p.requires_grad]
    if t["decay_bn_and_bias"]:
        groups = [{"params": params}]
    else:
        groups = [{"params": [p for p in params if p.dim() > 1]},
                  {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0}]
    optimizer = torch.optim.SGD(groups, lr=t["lr"], momentum=t["momentum"],
                                weight_decay=t["weight_decay"])
    return backbone, head, optimizer, strategy, bn_second_pass


def measure(steps, rounds, warmup, device):
    """Times one step per setup per round, setups interleaved; the first `warmup` rounds untimed."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    samples, losses = [[] for _ in steps], [[] for _ in steps]
    for r in range(warmup + rounds):
        for i, (ctx, strategy) in enumerate(steps):
            sync()
            t0 = time.perf_counter()
            stats = run_step(ctx, strategy)
            sync()
            t1 = time.perf_counter()
            if r >= warmup:
                samples[i].append((t1 - t0) * 1e3)
                losses[i].append(stats[0])
    return samples, losses


def summarise(c, steps, samples, losses):
    results = []
    for s, xs, ls, (_, strategy) in zip(c["setups"], samples, losses, steps):
        med = percentile(xs, 0.5)
        perturbation = s.get("perturbation", {"plugin": "none"})["plugin"]
        results.append({
            "setup": s.get("name", perturbation),
            "head": s.get("head", {"plugin": "arcface"})["plugin"],
            "perturbation": perturbation,
            "two_pass": strategy.two_pass, "median_ms": med, "p10_ms": percentile(xs, 0.1),
            "p90_ms": percentile(xs, 0.9), "min_ms": min(xs),
            "images_per_second": c["batch_size"] / (med / 1e3), "ratio_to_plain": None,
            "loss_first": ls[0], "loss_last": ls[-1], "samples_ms": xs})
    for r in results:  # relative to the one-pass step with the same head
        plain = [p for p in results if p["perturbation"] == "none" and p["head"] == r["head"]]
        if plain:
            r["ratio_to_plain"] = r["median_ms"] / plain[0]["median_ms"]
    return results


def print_table(c, results):
    print(f"pytorch-baseline, torch {torch.__version__}, {c['device']}, {c['threads']} threads, "
          f"batch {c['batch_size']}, {c['steps']} steps")
    print(f"{'setup':<16}{'perturbation':<14}{'median ms':>10}{'p10':>9}{'p90':>9}"
          f"{'img/s':>9}{'ratio':>7}")
    for r in results:
        ratio = "-" if r["ratio_to_plain"] is None else f"{r['ratio_to_plain']:.2f}"
        print(f"{r['setup']:<16}{r['perturbation']:<14}{r['median_ms']:>10.1f}"
              f"{r['p10_ms']:>9.1f}{r['p90_ms']:>9.1f}{r['images_per_second']:>9.1f}{ratio:>7}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="JSON written by `flatface bench`")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--steps", type=int, help="timed rounds (overrides the config)")
    ap.add_argument("--warmup", type=int, help="untimed rounds (overrides the config)")
    args = ap.parse_args()
    with open(args.config) as f:
        raw = json.load(f)
    c = resolve_config(raw.get("config", raw), args)

    # The same protocol as `flatface bench`: seed, every setup built, then one fixed batch.
    device = torch.device(c["device"])
    torch.set_num_threads(int(c["threads"]))
    torch.manual_seed(int(c["seed"]))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    built = [build_setup(s, c, device) for s in c["setups"]]
    side = c["backbone"]["input"]
    images = torch.randn(c["batch_size"], 3, side, side).to(device)
    labels = torch.randint(0, c["classes"], (c["batch_size"],)).to(device)
    if device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    bf16 = c["precision"] == "bf16"
    steps = [(TrainStep(bb, hd, opt, images, labels, bf16, bn), strategy)
             for bb, hd, opt, strategy, bn in built]

    samples, losses = measure(steps, c["steps"], c["warmup"], device)
    results = summarise(c, steps, samples, losses)
    print_table(c, results)
    if args.json:
        out = {"tool": "pytorch-baseline", "torch_version": torch.__version__,
               "python_version": platform.python_version(),
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": machine_name(device), "config": c, "steps": results,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
