"""IR-SE50, the squeeze-and-excitation face-recognition backbone (the "IR-SE" ResNet-50 of
ArcFace / face.evoLVe: improved residual units, each ending in an SE block of reduction 16) on
112x112 faces, built on ReferenceChannelAttention so that fusedattn.nn.convert switches its SE
blocks to the fused op; public as fusedattn.models.ir_se50. Its SE blocks see 56x56x64,
28x28x128, 14x14x256 and 7x7x512 feature maps (the shapes the benchmarks read off it)."""

from __future__ import annotations

import torch
from torch import nn

from .nn import ReferenceChannelAttention

# (in channels, depth, units) of the four stages of IR-50; each stage's first unit has stride 2.
IR50_STAGES = ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3))
SE_REDUCTION = 16


class IRSEUnit(nn.Module):
    """BN, 3x3 conv, PReLU, 3x3 conv (stride), BN, SE; plus the shortcut."""

    def __init__(self, in_channels: int, depth: int, stride: int):
        super().__init__()
        self.shortcut = (nn.MaxPool2d(1, stride) if in_channels == depth else nn.Sequential(
            nn.Conv2d(in_channels, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)))
        self.residual = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth), nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
            ReferenceChannelAttention(depth, depth // SE_REDUCTION, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class IRSE50(nn.Module):
    """112x112 faces -> 512-d embeddings."""

    def __init__(self, embedding_size: int = 512):
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False),
                                         nn.BatchNorm2d(64), nn.PReLU(64))
        units = []
        for in_channels, depth, count in IR50_STAGES:
            units.append(IRSEUnit(in_channels, depth, 2))
            units += [IRSEUnit(depth, depth, 1) for _ in range(count - 1)]
        self.body = nn.Sequential(*units)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512), nn.Dropout(), nn.Flatten(),
            nn.Linear(512 * 7 * 7, embedding_size), nn.BatchNorm1d(embedding_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(self.body(self.input_layer(x)))


def ir_se50(embedding_size: int = 512) -> IRSE50:
    return IRSE50(embedding_size)
