"""Style-based Recalibration Module (Lee et al., "SRM: A Style-based Recalibration Module for
Convolutional Neural Networks", ICCV 2019). Listed by PytorchInsight but never implemented
there; this follows the authors' code.

Style pooling: per-channel mean and std over H*W (N, C, 2) -> channel-wise fully connected
layer (each channel weighs its own two statistics: a grouped Conv1d, 2 weights per channel, no
bias) -> BN -> sigmoid -> per-channel scale.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from blocks.attention.registry import register_attention
from space.spec import AttentionSpec


class SRM(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.cfc = nn.Conv1d(channels, channels, kernel_size=2, groups=channels, bias=False)
        self.bn = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        flat = x.reshape(n, c, h * w)
        # Unbiased std as in the authors' code; a 1x1 map has no spread (and would give NaN).
        std = flat.std(dim=2, correction=1 if h * w > 1 else 0)
        style = torch.stack([flat.mean(dim=2), std], dim=2)  # (N, C, 2)
        g = torch.sigmoid(self.bn(self.cfc(style)))  # (N, C, 1)
        return x * g.view(n, c, 1, 1)


@register_attention("srm")
def _srm(channels: int, spec: AttentionSpec) -> nn.Module:
    return SRM(channels)
