"""Bottleneck Attention Module (Park et al., "BAM: Bottleneck Attention Module", BMVC 2018).

Placed at stage boundaries, not in every block: out = x * (1 + sigmoid(Mc(x) * Ms(x))).
  Mc: GAP -> Linear(C, C/r) + BN1d + ReLU -> Linear(C/r, C)                      (N, C, 1, 1)
  Ms: 1x1 C->C/r + BN + ReLU -> 2 x [3x3 dilation 4 + BN + ReLU] -> 1x1 C/r->1   (N, 1, H, W)
Every conv and Linear has a bias (BAM-ResNet-50: 25.92M parameters). The two maps are combined by
a broadcast product, as the seed code does (PytorchInsight's ``resnet_bam.py`` and the authors'
official code: ``1 + sigmoid(channel_att(x) * spatial_att(x))``). The paper and REFERENCE_MODELS.md
write a sum; the parameter count is the same either way, the function is not, and the published
BAM-ResNet numbers come from the code.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from blocks.attention.registry import register_attention
from blocks.attention.se import reduced_channels
from space.spec import AttentionSpec


def _conv_bn_relu(in_ch: int, out_ch: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=padding, dilation=dilation, bias=True),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class BAM(nn.Module):
    def __init__(self, channels: int, reduction: int = 16, dilation: int = 4, num_dilated: int = 2) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction)
        self.channel = nn.Sequential(
            nn.Linear(channels, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels),
        )
        self.spatial = nn.Sequential(
            _conv_bn_relu(channels, hidden, 1),
            *(_conv_bn_relu(hidden, hidden, 3, dilation) for _ in range(num_dilated)),
            nn.Conv2d(hidden, 1, 1, bias=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mc = self.channel(x.mean(dim=(2, 3)))[:, :, None, None]
        ms = self.spatial(x)
        return x * (1 + torch.sigmoid(mc * ms))


@register_attention("bam")
def _bam(channels: int, spec: AttentionSpec) -> nn.Module:
    return BAM(channels, spec.reduction)
