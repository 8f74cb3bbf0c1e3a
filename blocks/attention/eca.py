"""Efficient Channel Attention (Wang et al., "ECA-Net: Efficient Channel Attention for Deep
Convolutional Neural Networks", CVPR 2020).

GAP -> 1-D conv (no bias) across the pooled channel vector -> sigmoid -> per-channel scale: local
cross-channel interaction without dimensionality reduction. Kernel k: given, or adaptive
k = |log2(C)/gamma + b/gamma| rounded to the odd number at or above it (gamma=2, b=1).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from blocks.attention.registry import register_attention
from space.spec import AttentionSpec


def eca_kernel(channels: int, gamma: int = 2, b: int = 1) -> int:
    """The ECA paper's adaptive kernel size: the odd integer from |(log2(C) + b) / gamma|."""
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Module):
    def __init__(self, channels: int, kernel: int = 0) -> None:
        super().__init__()
        k = kernel or eca_kernel(channels)
        if k % 2 == 0:
            raise ValueError(f"ECA's kernel must be odd (or 0 for adaptive), got {kernel}")
        self.kernel = k
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.mean(dim=(2, 3))[:, None, :])  # (N, 1, C)
        return x * torch.sigmoid(y).transpose(1, 2)[:, :, :, None]


@register_attention("eca")
def _eca(channels: int, spec: AttentionSpec) -> nn.Module:
    return ECA(channels, spec.kernel)
