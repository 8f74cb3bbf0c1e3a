"""Parameters and multiply-adds counted from the built modules, never from a formula.

MACs = ``FlopCounterMode`` total / 2 (it counts 2 FLOPs per multiply-add of conv, linear and
matmul), batch 1, on the meta device: exact and allocation-free. BN, activations, pooling and adds
are not counted (the papers' convention, see REFERENCE_MODELS.md).

``count_cost`` counts a network part by part (stem, each block, each post-stage attention, head):
a network is a chain of them, so the sum is the whole network's count (tested against
``count_module_cost`` of the whole network for every reference and samples of every space). Each
part is memoised by what determines it (its spec, channels, stride, input resolution), so the
repeats of a stage and the blocks that a search's networks share are built and counted once.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from blocks.attention import create_attention
from blocks.model import make_head, make_stem
from blocks.registry import build_block
from space.spec import ArchSpec, AttentionSpec, BlockSpec, HeadSpec, StemSpec

__all__ = ["Cost", "count_cost", "count_module_cost"]


class Cost(NamedTuple):
    params: int
    macs: int


class _PartCost(NamedTuple):
    params: int
    macs: int
    out_hw: tuple[int, int]  # the part's output resolution, the next part's input


def _run_counted(model: nn.Module, x: torch.Tensor) -> tuple[int, torch.Tensor]:
    """(MACs, output) of one eval-mode forward of ``model`` on ``x``; the training mode is kept."""
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            out = model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2, out


def count_module_cost(model: nn.Module, input_size: int, in_channels: int = 3) -> Cost:
    """Params and MACs of ``model`` for one ``input_size``x``input_size`` image.

    Works on real and meta-device modules; the module's training mode is kept.
    """
    params = sum(p.numel() for p in model.parameters())
    device = next(model.parameters()).device
    macs, _ = _run_counted(model, torch.zeros(1, in_channels, input_size, input_size, device=device))
    return Cost(params=params, macs=macs)


def _count_part(build, in_ch: int, hw: tuple[int, int]) -> _PartCost:
    with torch.device("meta"):
        module = build()
    params = sum(p.numel() for p in module.parameters())
    macs, out = _run_counted(module, torch.zeros(1, in_ch, *hw, device="meta"))
    return _PartCost(params, macs, tuple(out.shape[2:]) if out.dim() == 4 else hw)


@functools.lru_cache(maxsize=1 << 16)
def _stem_cost(stem: StemSpec, hw: tuple[int, int]) -> _PartCost:
    return _count_part(lambda: make_stem(stem), 3, hw)


@functools.lru_cache(maxsize=1 << 16)
def _block_cost(block: BlockSpec, in_ch: int, out_ch: int, stride: int, hw: tuple[int, int]) -> _PartCost:
    return _count_part(lambda: build_block(block, in_ch, out_ch, stride), in_ch, hw)


@functools.lru_cache(maxsize=1 << 16)
def _attention_cost(attention: AttentionSpec, channels: int, hw: tuple[int, int]) -> _PartCost:
    return _count_part(lambda: create_attention(attention, channels), channels, hw)


@functools.lru_cache(maxsize=1 << 16)
def _head_cost(head: HeadSpec, in_ch: int, num_classes: int, hw: tuple[int, int]) -> _PartCost:
    return _count_part(lambda: make_head(head, in_ch, num_classes), in_ch, hw)


@functools.lru_cache(maxsize=4096)
def count_cost(spec: ArchSpec, num_classes: int, input_size: int) -> Cost:
    """Params and MACs of the network ``spec`` builds, without allocating its weights.

    The sum of its parts' counts (see the module docstring); memoised per process (specs are
    frozen and hashable), and so are the parts.
    """
    spec.validate()
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    parts = [_stem_cost(spec.stem, (input_size, input_size))]
    in_ch = spec.stem.channels
    for stage in spec.stages:
        for block, stride in stage.blocks():
            parts.append(_block_cost(block, in_ch, stage.out_channels, stride, parts[-1].out_hw))
            in_ch = stage.out_channels
        if stage.post_attention is not None:
            parts.append(_attention_cost(stage.post_attention, in_ch, parts[-1].out_hw))
    parts.append(_head_cost(spec.head, in_ch, num_classes, parts[-1].out_hw))
    return Cost(params=sum(p.params for p in parts), macs=sum(p.macs for p in parts))
