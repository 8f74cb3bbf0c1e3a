"""``build_model``: the one place where an ``ArchSpec`` becomes an ``nn.Module``.

Block modules register a builder per spec ``kind`` in ``blocks.registry``; this module imports
them all, then the network threads input channels and strides through the stages (timm's
two-stage build: architecture as data, then one builder). ``make_stem``, ``make_stage_units``
and ``make_head`` are the network's parts, shared with ``blocks.cost``, which counts them apart.
"""

from __future__ import annotations

import torch
import torch.nn as nn

# Importing the block modules registers their builders.
import blocks.inverted_residual  # noqa: F401
import blocks.resnet  # noqa: F401
import blocks.shufflenet  # noqa: F401
from blocks.attention import create_attention
from blocks.layers import ConvBNAct
from blocks.registry import build_block
from space.spec import ArchSpec, HeadSpec, StageSpec, StemSpec

__all__ = ["Network", "build_model", "make_head", "make_stage_units", "make_stem"]


def make_stem(stem: StemSpec, in_channels: int = 3) -> nn.Sequential:
    """conv kxk/s + BN + act, then the optional 3x3/2 max-pool."""
    layers: list[nn.Module] = [ConvBNAct(in_channels, stem.channels, stem.kernel, stem.stride, act=stem.act,
                                         bias=stem.conv_bias)]
    if stem.maxpool:
        layers.append(nn.MaxPool2d(3, 2, 1))
    return nn.Sequential(*layers)


def make_stage_units(stage: StageSpec, in_ch: int) -> list[nn.Module]:
    """The stage's blocks (and its post-stage attention), in forward order."""
    units: list[nn.Module] = []
    for block, stride in stage.blocks():
        units.append(build_block(block, in_ch, stage.out_channels, stride))
        in_ch = stage.out_channels
    if stage.post_attention is not None:
        units.append(create_attention(stage.post_attention, in_ch))
    return units


class Head(nn.Module):
    """conv1x1 + BN + act (or nothing) -> global average pool -> dropout -> FC. Submodule names
    stay those of ``Network`` (``head``, ``classifier``) so state-dict keys do not change."""

    def __init__(self, spec: HeadSpec, in_ch: int, num_classes: int) -> None:
        super().__init__()
        if spec.channels:
            self.head = ConvBNAct(in_ch, spec.channels, 1, act=spec.act, bias=spec.conv_bias)
            in_ch = spec.channels
        else:
            self.head = nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(spec.dropout) if spec.dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(in_ch, num_classes, bias=spec.classifier_bias)
        self.num_features = in_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.head(x)).flatten(1)
        return self.classifier(self.dropout(x))


def make_head(spec: HeadSpec, in_ch: int, num_classes: int) -> Head:
    return Head(spec, in_ch, num_classes)


class Network(nn.Module):
    """stem -> stages -> head (conv1x1) -> global average pool -> dropout -> FC."""

    def __init__(self, spec: ArchSpec, num_classes: int) -> None:
        super().__init__()
        self.stem = make_stem(spec.stem)
        in_ch = spec.stem.channels
        stages = []
        for stage in spec.stages:
            stages.append(nn.Sequential(*make_stage_units(stage, in_ch)))
            in_ch = stage.out_channels
        self.stages = nn.Sequential(*stages)
        head = make_head(spec.head, in_ch, num_classes)
        # Registered one by one (not as a Head child) to keep the keys head.*, classifier.*.
        self.head, self.pool, self.dropout, self.classifier = head.head, head.pool, head.dropout, head.classifier
        self.num_features = head.num_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.forward_features(x)).flatten(1)
        return self.classifier(self.dropout(x))


def build_model(spec: ArchSpec, num_classes: int) -> Network:
    """Validate ``spec`` and build its network (weights initialised, on the default device)."""
    spec.validate()
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return Network(spec, num_classes)
