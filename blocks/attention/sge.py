"""Spatial Group-wise Enhance (Li et al., "Spatial Group-wise Enhance: Improving Semantic
Feature Learning in Convolutional Networks", 2019), as in PytorchInsight's ``resnet_sge``.

Channels split into G groups. Per group: s = sum over the group's channels of x * GAP(x), then s
is normalised over H*W (subtract the mean, divide by std + 1e-5), a = sigmoid(w_g * s + b_g),
out = x * a. Only 2G parameters; w starts at 0 and b at 1, so a fresh module scales every
position by sigmoid(1).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from blocks.attention.registry import register_attention
from space.spec import AttentionSpec


class SGE(nn.Module):
    def __init__(self, channels: int, groups: int = 64, eps: float = 1e-5) -> None:
        super().__init__()
        if groups < 1 or channels % groups:
            raise ValueError(f"SGE groups must divide channels, but got channels={channels}, groups={groups}")
        self.groups = groups
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(1, groups, 1, 1))
        self.bias = nn.Parameter(torch.ones(1, groups, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        xg = x.reshape(n * self.groups, c // self.groups, h, w)
        s = (xg * xg.mean(dim=(2, 3), keepdim=True)).sum(dim=1).view(n, self.groups, h * w)
        s = s - s.mean(dim=2, keepdim=True)
        # Unbiased std as in the original code; a 1x1 map has no spread (and would give NaN).
        std = s.std(dim=2, keepdim=True, correction=1 if h * w > 1 else 0)
        s = (s / (std + self.eps)).view(n, self.groups, h, w)
        a = torch.sigmoid(s * self.weight + self.bias)
        return (xg * a.view(n * self.groups, 1, h, w)).view(n, c, h, w)


@register_attention("sge")
def _sge(channels: int, spec: AttentionSpec) -> nn.Module:
    return SGE(channels, spec.groups)
