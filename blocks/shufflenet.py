"""The ShuffleNetV2 unit (Ma et al. 2018; REFERENCE_MODELS.md s.2), with optional WeightNet convs
(s.4) and attention on the concatenated output (SE-ShuffleNetV2, s.3).

    stride 1: [identity | main] = split(route(x))           stride 2: identity = main = x
              main    = 1x1+BN+ReLU, dw kxk/s+BN, 1x1+BN+ReLU
              project = nothing (stride 1) | dw kxk/2+BN, 1x1+BN+ReLU (stride 2)
              out     = shuffle(attention(cat[project(identity), main(main)]))

Widths follow the official code: the main branch's middle width is out_ch // 2; its output and the
projection's come from ``ShuffleUnitSpec.branch_channels`` (megvii: the projection keeps C_in, main
gives out - C_in; torchvision: out/2 each).

Where the channel permutation sits is part of the layout, and it matters for function, not only for
the channel order:

- ``torchvision`` (torchvision's ``InvertedResidual``, PytorchInsight's SE-ShuffleNetV2): split
  contiguously, shuffle g=``shuffle_groups`` after the concat (``route`` is the identity).
- ``megvii`` (the official ShuffleNet-Series and WeightNet code): no shuffle after the concat; a
  stride-1 unit starts by de-interleaving its input (``route`` = ``channel_unshuffle(x, g)``: even
  channels to the identity, odd ones to the main branch for g=2). After a stride-2 unit
  ([projection C_in | main out-C_in]) the next main branch so reads C_in/2 projection channels and
  (out-C_in)/2 main ones: 12 + 46 at 1.0x. Shuffling after the concat instead would feed it 0 + 58,
  which no channel order turns into the official network (only at 0.5x are the two equivalent).

Submodules register as torchvision does (projection ``branch1`` before main ``branch2``), so a
torchvision state dict loads in order (``blocks.convert``).

With ``spec.weightnet`` every conv of the unit is generated per sample from one ``x_gap`` (GAP of
the main-branch input -> 1x1 -> max(16, C/16)), shared by the unit, as in the official WeightNet code.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from blocks.attention import create_attention
from blocks.layers import make_act
from blocks.registry import register_block
from blocks.shuffle import ChannelShuffle, ChannelUnshuffle
from blocks.weightnet import WeightNetConv, WeightNetDWConv, WeightNetGap
from space.spec import ShuffleUnitSpec, WeightNetSpec

__all__ = ["ShuffleUnit", "UnitBranch", "UnitConv"]


class UnitConv(nn.Module):
    """One conv + BN + act of a unit; the conv is static (bias-free) or WeightNet-generated."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        stride: int,
        act: str,
        *,
        depthwise: bool = False,
        weightnet: WeightNetSpec | None = None,
        gap_channels: int = 0,
    ) -> None:
        super().__init__()
        if depthwise and in_ch != out_ch:
            raise ValueError(f"a depthwise conv keeps its width, got {in_ch} -> {out_ch}")
        self.dynamic = weightnet is not None
        if weightnet is None:
            groups = in_ch if depthwise else 1
            self.conv: nn.Module = nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False)
        elif depthwise:
            self.conv = WeightNetDWConv(in_ch, kernel, stride, gap_channels, weightnet.M, weightnet.G)
        else:
            self.conv = WeightNetConv(in_ch, out_ch, kernel, stride, gap_channels, weightnet.M, weightnet.G)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor, x_gap: torch.Tensor | None = None) -> torch.Tensor:
        x = self.conv(x, x_gap) if self.dynamic else self.conv(x)
        return self.act(self.bn(x))


class UnitBranch(nn.ModuleList):
    """A chain of ``UnitConv``s that all see the unit's x_gap; an empty branch is the identity."""

    def forward(self, x: torch.Tensor, x_gap: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self:
            x = layer(x, x_gap)
        return x


class ShuffleUnit(nn.Module):
    def __init__(self, spec: ShuffleUnitSpec, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        proj_out, main_out = spec.branch_channels(in_ch, out_ch, stride)
        self.stride = stride
        self.keep = proj_out if stride == 1 else 0  # identity channels split off a stride-1 unit
        main_in = in_ch - self.keep
        mid = out_ch // 2  # official megvii and torchvision: mid_channels = out // 2
        k = spec.dw_kernel
        wn = spec.weightnet
        # WeightNet: one x_gap per unit, from the main branch's input (official code).
        self.gap = WeightNetGap(main_in) if wn is not None else None
        gap_ch = self.gap.out_channels if self.gap is not None else 0
        conv = dict(weightnet=wn, gap_channels=gap_ch)
        g = spec.shuffle_groups
        megvii = spec.layout == "megvii"
        # megvii routes the input of a stride-1 unit (see the module docstring); torchvision shuffles
        # the output of every unit.
        self.route = ChannelUnshuffle(g) if megvii and stride == 1 and g > 1 else nn.Identity()
        # The projection registers first, as torchvision's branch1 (state dicts load in order).
        if stride == 1:
            self.project = UnitBranch()
        else:
            self.project = UnitBranch([
                UnitConv(in_ch, in_ch, k, stride, "none", depthwise=True, **conv),
                UnitConv(in_ch, proj_out, 1, 1, "relu", **conv),
            ])
        self.main = UnitBranch([
            UnitConv(main_in, mid, 1, 1, "relu", **conv),
            UnitConv(mid, mid, k, stride, "none", depthwise=True, **conv),
            UnitConv(mid, main_out, 1, 1, "relu", **conv),
        ])
        self.attention = create_attention(spec.attention, out_ch)
        self.shuffle = ChannelShuffle(g) if not megvii and g > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x = self.route(x)
            identity, main = x[:, : self.keep], x[:, self.keep :]
        else:
            identity = main = x
        x_gap = self.gap(main) if self.gap is not None else None
        out = torch.cat([self.project(identity, x_gap), self.main(main, x_gap)], dim=1)
        return self.shuffle(self.attention(out))


@register_block("shuffle_unit")
def build_shuffle_unit(spec: ShuffleUnitSpec, in_ch: int, out_ch: int, stride: int) -> nn.Module:
    return ShuffleUnit(spec, in_ch, out_ch, stride)
