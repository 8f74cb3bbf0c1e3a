"""The inverted-residual family: MobileNetV2, IGCV3 and Seesaw-Net blocks (REFERENCE_MODELS.md s.1).

    x -> pw1 (grouped 1x1, BN, act) -> [shuffle] -> dw kxk/s (BN, act) -> [shuffle]
      -> pw2 (grouped 1x1, BN) -> attention -> [shuffle] -> [inverse shuffle] -> (+ x)

MobileNetV2 (Sandler et al. 2018): dense pw1/pw2, ReLU6 after pw1. IGCV3 (Sun et al. 2018): pw1/pw2
split 1/2:1/2, a g=2 shuffle after pw1 and its inverse after pw2. Seesaw-Net (Zhang 2019): uneven
1/4:3/4 splits, the shuffle after pw1 only. All knobs come from ``InvertedResidualSpec``; absent
parts are ``nn.Identity`` so ``forward`` reads straight.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from blocks.attention import create_attention
from blocks.layers import ConvBNAct, make_act
from blocks.registry import register_block
from blocks.pointwise import UnevenPointwise
from blocks.shuffle import ChannelShuffle, ChannelUnshuffle
from space.spec import InvertedResidualSpec, Split

__all__ = ["InvertedResidual", "PointwiseBNAct"]


class PointwiseBNAct(nn.Sequential):
    """``UnevenPointwise`` + BatchNorm2d + activation (``"none"`` for the linear bottleneck)."""

    def __init__(self, in_ch: int, out_ch: int, split: Split, act: str) -> None:
        super().__init__(UnevenPointwise(in_ch, out_ch, split), nn.BatchNorm2d(out_ch), make_act(act))


class InvertedResidual(nn.Module):
    def __init__(self, spec: InvertedResidualSpec, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        hidden = in_ch * spec.expansion
        g = spec.shuffle_groups
        self.pw1 = PointwiseBNAct(in_ch, hidden, spec.pw1_split, spec.pw1_act) if spec.has_pw1() else nn.Identity()
        self.shuffle_pw1 = ChannelShuffle(g) if spec.shuffle == "pw1" else nn.Identity()
        self.dw = ConvBNAct(hidden, hidden, spec.dw_kernel, stride, groups=hidden, act=spec.dw_act)
        self.shuffle_dw = ChannelShuffle(g) if spec.shuffle == "dw" else nn.Identity()
        self.pw2 = PointwiseBNAct(hidden, out_ch, spec.pw2_split, "none")
        # Attention sits right after the last BN (REFERENCE_MODELS.md s.3), before any permutation,
        # like SE-ShuffleNetV2's SE before its shuffle.
        self.attention = create_attention(spec.attention, out_ch)
        self.shuffle_pw2 = ChannelShuffle(g) if spec.shuffle == "pw2" else nn.Identity()
        self.unshuffle_pw2 = ChannelUnshuffle(g) if spec.unshuffle_pw2 else nn.Identity()
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.shuffle_pw1(self.pw1(x))
        out = self.shuffle_dw(self.dw(out))
        out = self.attention(self.pw2(out))
        out = self.unshuffle_pw2(self.shuffle_pw2(out))
        return x + out if self.use_residual else out

    def extra_repr(self) -> str:
        return f"use_residual={self.use_residual}"


@register_block("inverted_residual")
def build_inverted_residual(spec: InvertedResidualSpec, in_ch: int, out_ch: int, stride: int) -> nn.Module:
    return InvertedResidual(spec, in_ch, out_ch, stride)
