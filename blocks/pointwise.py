"""1x1 convolutions whose groups are channel fractions: dense, IGCV3's even and Seesaw-Net's uneven.

A split ``(f_1, ..., f_g)`` cuts the input and the output into contiguous slices of
``f_i * channels`` each; slice i of the input feeds only slice i of the output (a block-diagonal
weight). ``(1,)`` is a plain dense conv, ``(1/2, 1/2)`` is IGCV3's groups=2 conv (Sun et al. 2018),
``(1/4, 3/4)`` is Seesaw-Net's uneven group conv (Zhang 2019), outputs concatenated small-first.

Equal slices run as one grouped ``nn.Conv2d`` (one kernel launch); unequal ones split, convolve
each slice and concatenate, like timm's ``MixedConv2d``. Either way the weights live in
``convs.<i>.weight``, so state-dict keys depend only on the number of distinct convs.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from space.spec import Split, format_split, split_channels

__all__ = ["UnevenPointwise"]


class UnevenPointwise(nn.Module):
    """Bias-free 1x1 conv ``in_ch -> out_ch`` grouped by the channel fractions ``split``."""

    def __init__(self, in_ch: int, out_ch: int, split: Split) -> None:
        super().__init__()
        in_sizes = split_channels(in_ch, split)
        out_sizes = split_channels(out_ch, split)
        if in_sizes is None or out_sizes is None:
            raise ValueError(
                f"split {format_split(split)} must cut {in_ch} input and {out_ch} output channels into "
                f"whole, non-empty slices; choose channel counts divisible by "
                f"{max(f.denominator for f in split)}"
            )
        self.in_sizes = in_sizes
        self.out_sizes = out_sizes
        if len(set(in_sizes)) == 1 and len(set(out_sizes)) == 1:
            # Even (or dense) split: a single grouped conv computes the same block-diagonal map.
            self.convs = nn.ModuleList([nn.Conv2d(in_ch, out_ch, 1, groups=len(split), bias=False)])
        else:
            self.convs = nn.ModuleList(nn.Conv2d(i, o, 1, bias=False) for i, o in zip(in_sizes, out_sizes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.convs) == 1:
            return self.convs[0](x)
        slices = torch.split(x, self.in_sizes, dim=1)
        return torch.cat([conv(s) for conv, s in zip(self.convs, slices)], dim=1)

    def extra_repr(self) -> str:
        return f"in_sizes={self.in_sizes}, out_sizes={self.out_sizes}"
