"""Convolutional Block Attention Module (Woo et al., "CBAM: Convolutional Block Attention
Module", ECCV 2018), as in PytorchInsight's ``resnet_cbam``.

Channel gate: one MLP (Linear C->C/r, ReLU, Linear C/r->C, with biases) shared by the average-
and max-pooled descriptors, summed, sigmoid. Then the spatial gate on the channel-gated map:
[max over C, mean over C] -> conv 7x7 (2->1, no bias) + BN -> sigmoid.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from blocks.attention.registry import register_attention
from blocks.attention.se import reduced_channels
from blocks.layers import ConvBNAct
from space.spec import AttentionSpec


class CBAM(nn.Module):
    def __init__(self, channels: int, reduction: int = 16, spatial_kernel: int = 7) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))
        # 2 input channels: the max and the mean over C (in that order).
        self.spatial = ConvBNAct(2, 1, spatial_kernel, act="none")

    def channel_gate(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=(2, 3)))
        mx = self.mlp(x.amax(dim=(2, 3)))
        return torch.sigmoid(avg + mx)[:, :, None, None]

    def spatial_gate(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.spatial(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.channel_gate(x)
        return x * self.spatial_gate(x)


@register_attention("cbam")
def _cbam(channels: int, spec: AttentionSpec) -> nn.Module:
    return CBAM(channels, spec.reduction)
