"""Squeeze-and-Excitation (Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018).

GAP -> Linear(C, C/r) -> ReLU -> Linear(C/r, C) -> sigmoid -> per-channel scale; both Linear
layers carry a bias, as in the paper and PytorchInsight's ``SELayer`` (r = 16 gives SE-ResNet-50's
28.09M parameters).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from blocks.attention.registry import register_attention
from space.spec import AttentionSpec


def reduced_channels(channels: int, reduction: int) -> int:
    """``channels // reduction``, the hidden width of SE-style bottlenecks; must be >= 1."""
    hidden = channels // reduction
    if hidden < 1:
        raise ValueError(
            f"channels // reduction must be >= 1, but got channels={channels}, reduction={reduction}; "
            "use a smaller reduction"
        )
    return hidden


class SE(nn.Module):
    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(channels, hidden)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, channels)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The per-channel gate in (0, 1), shaped (N, C, 1, 1)."""
        y = self.pool(x).flatten(1)
        y = self.fc2(self.act(self.fc1(y)))
        return torch.sigmoid(y)[:, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


@register_attention("se")
def _se(channels: int, spec: AttentionSpec) -> nn.Module:
    return SE(channels, spec.reduction)
