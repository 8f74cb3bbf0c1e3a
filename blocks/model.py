"""``build_model``: the one place where an ``ArchSpec`` becomes an ``nn.Module``.

Block modules register a builder per spec ``kind`` with ``register_block``; the network threads
input channels and strides through the stages (timm's two-stage build: architecture as data,
then one builder).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from blocks.attention import create_attention
from blocks.layers import ConvBNAct, make_act
from space.spec import ArchSpec, BlockSpec

BlockBuilder = Callable[[BlockSpec, int, int, int], nn.Module]
BLOCK_BUILDERS: dict[str, BlockBuilder] = {}


def register_block(kind: str) -> Callable[[BlockBuilder], BlockBuilder]:
    """Decorator: ``builder(block_spec, in_ch, out_ch, stride) -> nn.Module`` for a block kind."""

    def deco(fn: BlockBuilder) -> BlockBuilder:
        BLOCK_BUILDERS[kind] = fn
        return fn

    return deco


def build_block(spec: BlockSpec, in_ch: int, out_ch: int, stride: int) -> nn.Module:
    try:
        builder = BLOCK_BUILDERS[spec.kind]
    except KeyError:
        raise ValueError(f"no builder for block kind {spec.kind!r}; registered: {', '.join(BLOCK_BUILDERS)}") from None
    return builder(spec, in_ch, out_ch, stride)


class Network(nn.Module):
    """stem -> stages -> head (conv1x1) -> global average pool -> dropout -> FC."""

    def __init__(self, spec: ArchSpec, num_classes: int) -> None:
        super().__init__()
        stem = spec.stem
        layers: list[nn.Module] = [ConvBNAct(3, stem.channels, stem.kernel, stem.stride, act=stem.act)]
        if stem.maxpool:
            layers.append(nn.MaxPool2d(3, 2, 1))
        self.stem = nn.Sequential(*layers)
        in_ch = stem.channels
        stages = []
        for stage in spec.stages:
            units: list[nn.Module] = []
            for block, stride in stage.blocks():
                units.append(build_block(block, in_ch, stage.out_channels, stride))
                in_ch = stage.out_channels
            if stage.post_attention is not None:
                units.append(create_attention(stage.post_attention, in_ch))
            stages.append(nn.Sequential(*units))
        self.stages = nn.Sequential(*stages)
        if spec.head.channels:
            self.head = ConvBNAct(in_ch, spec.head.channels, 1, act=spec.head.act)
            in_ch = spec.head.channels
        else:
            self.head = nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(spec.head.dropout) if spec.head.dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(in_ch, num_classes)
        self.num_features = in_ch

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.forward_features(x)).flatten(1)
        return self.classifier(self.dropout(x))


def build_model(spec: ArchSpec, num_classes: int) -> Network:
    """Validate ``spec`` and build its network (weights initialised, on the default device)."""
    import blocks.inverted_residual, blocks.resnet, blocks.shufflenet  # noqa: F401,E401 register builders

    spec.validate()
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return Network(spec, num_classes)
