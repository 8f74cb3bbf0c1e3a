"""ResNet blocks (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016), in the
torchvision "v1.5" form: the bottleneck's stride sits on the 3x3 conv, not on the first 1x1.

Both blocks take an optional attention module (any registered kind) after their last BN, before
the residual add. ``conv="sk"`` turns the bottleneck's 3x3 into PytorchInsight's SK* selective-
kernel conv (Li et al., "Selective Kernel Networks", CVPR 2019, modified for a fair comparison
with the ResNet backbone: two 3x3 branches instead of 3x3 + dilated 3x3).

Weights start as torchvision initialises ResNets (convs kaiming-normal fan_out, BN 1/0); the
attention modules keep their own initialisation (GC's zero-init, SGE's w=0/b=1, ...).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from blocks.attention import create_attention
from blocks.attention.se import reduced_channels
from blocks.layers import ConvBNAct
from blocks.registry import register_block
from space.spec import BasicBlockSpec, BottleneckSpec

SK_GROUPS = 32  # groups of SK*'s second 3x3 branch
SK_REDUCTION = 16  # fuse bottleneck C -> C/16


def init_resnet_weights(*modules: nn.Module) -> None:
    """torchvision's ResNet init: convs kaiming-normal (fan_out, relu), BN weight 1 and bias 0."""
    for module in modules:
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def make_downsample(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    """The projection shortcut (1x1 conv + BN) where the shape changes, else the identity."""
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return ConvBNAct(in_ch, out_ch, 1, stride, act="none")


class SKConv(nn.Module):
    """SK*: two 3x3 branches of the same stride (the block's own 3x3 and a 32-group 3x3), each
    + BN + ReLU, mixed per channel by weights selected from their fused global context:
    sum -> GAP -> 1x1 C->C/16 (no bias) + BN + ReLU -> 1x1 C/16->2C (no bias) -> softmax over
    the two branches -> weighted sum."""

    def __init__(self, channels: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        if channels % SK_GROUPS:
            raise ValueError(f"SK*'s grouped branch needs channels divisible by {SK_GROUPS}, got {channels}")
        hidden = reduced_channels(channels, SK_REDUCTION)
        self.channels = channels
        self.branch_dense = ConvBNAct(channels, channels, 3, stride, groups=groups, act="relu")
        self.branch_grouped = ConvBNAct(channels, channels, 3, stride, groups=SK_GROUPS, act="relu")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fuse = ConvBNAct(channels, hidden, 1, act="relu")
        self.select = nn.Conv2d(hidden, 2 * channels, 1, bias=False)

    def branch_weights(self, fused: torch.Tensor) -> torch.Tensor:
        """Per-channel weights of the two branches, (N, 2, C, 1, 1), summing to 1 over dim 1."""
        z = self.select(self.fuse(self.pool(fused)))
        return torch.softmax(z.view(z.shape[0], 2, self.channels, 1, 1), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch_dense(x)
        b = self.branch_grouped(x)
        w = self.branch_weights(a + b)
        return a * w[:, 0] + b * w[:, 1]


class Bottleneck(nn.Module):
    """1x1 (in -> mid) -> 3x3 or SK* (mid -> mid, stride) -> 1x1 (mid -> out) + BN -> attention,
    plus the shortcut, then ReLU."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        stride: int = 1,
        mid_ch: int | None = None,
        groups: int = 1,
        conv: str = "dense",
        attention: nn.Module | None = None,
    ) -> None:
        super().__init__()
        mid_ch = mid_ch or out_ch // 4
        self.conv1 = ConvBNAct(in_ch, mid_ch, 1, act="relu")
        if conv == "dense":
            self.conv2 = ConvBNAct(mid_ch, mid_ch, 3, stride, groups=groups, act="relu")
        elif conv == "sk":
            self.conv2 = SKConv(mid_ch, stride, groups=groups)
        else:
            raise ValueError(f"unknown bottleneck conv {conv!r}; valid: dense, sk")
        self.conv3 = ConvBNAct(mid_ch, out_ch, 1, act="none")
        downsample = make_downsample(in_ch, out_ch, stride)
        init_resnet_weights(self.conv1, self.conv2, self.conv3, downsample)
        # Registered before the shortcut, as timm's ``se`` (torchvision's blocks have none): a
        # timm or torchvision state dict then loads in order (blocks.convert).
        self.attention = attention if attention is not None else nn.Identity()
        self.downsample = downsample
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.attention(self.conv3(self.conv2(self.conv1(x))))
        return self.act(out + self.downsample(x))


class BasicBlock(nn.Module):
    """3x3 (in -> out, stride) + BN + ReLU -> 3x3 (out -> out) + BN -> attention, plus the
    shortcut, then ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, attention: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_ch, out_ch, 3, stride, act="relu")
        self.conv2 = ConvBNAct(out_ch, out_ch, 3, act="none")
        downsample = make_downsample(in_ch, out_ch, stride)
        init_resnet_weights(self.conv1, self.conv2, downsample)
        self.attention = attention if attention is not None else nn.Identity()  # before the shortcut, as timm
        self.downsample = downsample
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.attention(self.conv2(self.conv1(x)))
        return self.act(out + self.downsample(x))


@register_block("bottleneck")
def build_bottleneck(spec: BottleneckSpec, in_ch: int, out_ch: int, stride: int) -> Bottleneck:
    return Bottleneck(
        in_ch,
        out_ch,
        stride,
        mid_ch=spec.mid_channels(out_ch),
        groups=spec.groups,
        conv=spec.conv,
        attention=create_attention(spec.attention, out_ch),
    )


@register_block("basic")
def build_basic(spec: BasicBlockSpec, in_ch: int, out_ch: int, stride: int) -> BasicBlock:
    return BasicBlock(in_ch, out_ch, stride, attention=create_attention(spec.attention, out_ch))
