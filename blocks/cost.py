"""Parameters and multiply-adds counted from the built module, never from a formula.

MACs = ``FlopCounterMode`` total / 2 (it counts 2 FLOPs per multiply-add of conv, linear and
matmul), batch 1, on the meta device: exact, allocation-free and fast. BN, activations, pooling
and adds are not counted (the papers' convention, see REFERENCE_MODELS.md).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from space.spec import ArchSpec


class Cost(NamedTuple):
    params: int
    macs: int


def count_module_cost(model: nn.Module, input_size: int, in_channels: int = 3) -> Cost:
    """Params and MACs of ``model`` for one ``input_size``x``input_size`` image.

    Works on real and meta-device modules; the module's training mode is kept.
    """
    params = sum(p.numel() for p in model.parameters())
    device = next(model.parameters()).device
    x = torch.zeros(1, in_channels, input_size, input_size, device=device)
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
    return Cost(params=params, macs=counter.get_total_flops() // 2)


@functools.lru_cache(maxsize=4096)
def count_cost(spec: ArchSpec, num_classes: int, input_size: int) -> Cost:
    """Params and MACs of the network ``spec`` builds, without allocating its weights.

    Memoised per process (specs are frozen and hashable): a search counts the same network in
    several places (the pre-screen, ``propose``, duplicates, the proxy's width) and each meta
    build takes 0.3-1 s.
    """
    from blocks.model import build_model

    with torch.device("meta"):
        model = build_model(spec, num_classes)
    return count_module_cost(model, input_size)
