"""Global Context block (Cao et al., "GCNet: Non-local Networks Meet Squeeze-Excitation
Networks and Beyond", ICCV-W 2019), the ``att`` pooling + ``channel_add`` fusion variant.

Context: 1x1 conv C->1 -> softmax over H*W -> attention-weighted sum of x (N, C, 1, 1).
Transform: 1x1 C->C/r -> LayerNorm -> ReLU -> 1x1 C/r->C, added to every position of x.
All convs have a bias, as in the official code. The last conv starts at zero (weight and bias),
so a fresh block is the identity.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from blocks.attention.registry import register_attention
from blocks.attention.se import reduced_channels
from space.spec import AttentionSpec


class GC(nn.Module):
    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction)
        self.mask = nn.Conv2d(channels, 1, 1)
        self.transform = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.LayerNorm([hidden, 1, 1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
        )
        nn.init.kaiming_normal_(self.mask.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.mask.bias)
        nn.init.zeros_(self.transform[-1].weight)
        nn.init.zeros_(self.transform[-1].bias)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        weights = torch.softmax(self.mask(x).view(n, 1, h * w), dim=-1)  # (N, 1, HW)
        return torch.matmul(x.view(n, c, h * w), weights.transpose(1, 2)).view(n, c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.transform(self.context(x))


@register_attention("gc")
def _gc(channels: int, spec: AttentionSpec) -> nn.Module:
    return GC(channels, spec.reduction)
