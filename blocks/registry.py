"""The block-builder registry: spec ``kind`` -> ``builder(block_spec, in_ch, out_ch, stride)``.

Block modules register here (``@register_block("kind")``); ``blocks.model`` imports the block
modules, so the registry is full once ``blocks.model`` is imported (as every torch name of the
``blocks`` package and ``blocks.counting`` do) and nothing imports in a circle.
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from space.spec import BlockSpec

__all__ = ["BLOCK_BUILDERS", "BlockBuilder", "build_block", "register_block"]

BlockBuilder = Callable[[BlockSpec, int, int, int], nn.Module]
BLOCK_BUILDERS: dict[str, BlockBuilder] = {}


def register_block(kind: str) -> Callable[[BlockBuilder], BlockBuilder]:
    """Decorator: ``builder(block_spec, in_ch, out_ch, stride) -> nn.Module`` for a block kind.

    A kind registered twice is a ValueError naming it (a second builder would silently win).
    """

    def deco(fn: BlockBuilder) -> BlockBuilder:
        if kind in BLOCK_BUILDERS:
            raise ValueError(f"block kind {kind!r} is already registered (by {BLOCK_BUILDERS[kind].__qualname__})")
        BLOCK_BUILDERS[kind] = fn
        return fn

    return deco


def build_block(spec: BlockSpec, in_ch: int, out_ch: int, stride: int) -> nn.Module:
    try:
        builder = BLOCK_BUILDERS[spec.kind]
    except KeyError:
        raise ValueError(f"no builder for block kind {spec.kind!r}; registered: {', '.join(BLOCK_BUILDERS)}") from None
    return builder(spec, in_ch, out_ch, stride)
