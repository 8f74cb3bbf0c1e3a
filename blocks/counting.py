"""The torch side of counting: ``count_module_cost`` (a whole module, ``FlopCounterMode``) and
``count_part`` (one network part, built and run once on the CPU inside ``_MacCount``).

``blocks.cost`` imports this module only when a part is missing from the machine's part-count file,
so that a warm ``--references`` or ``--describe`` never imports torch (1.6-2.5 s of start-up here).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from blocks.attention import create_attention
from blocks.cost import Cost, PartCost
from blocks.model import make_head, make_stem
from blocks.registry import build_block

__all__ = ["count_module_cost", "count_part"]


def count_module_cost(model: nn.Module, input_size: int, in_channels: int = 3) -> Cost:
    """Params and MACs of ``model`` for one ``input_size``x``input_size`` image, by ``FlopCounterMode``.

    Works on real and meta-device modules; the module's training mode is kept.
    """
    from torch.utils.flop_counter import FlopCounterMode  # imports triton (0.15 s): only here

    params = sum(p.numel() for p in model.parameters())
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(1, in_channels, input_size, input_size, device=device))
    finally:
        model.train(was_training)
    return Cost(params=params, macs=counter.get_total_flops() // 2)


class _MacCount(TorchFunctionMode):
    """Multiply-adds of the conv, linear and matmul calls run inside, at the function level.

    Hand-rolled over ``FlopCounterMode`` (40 ms per part: it tracks the module hierarchy and
    decomposes, in Python, every op it does not count) and over any dispatch-level mode (it makes
    the first conv import ``torch._dynamo``, 1.4 s of every command's start). The formulas
    are those of ``torch.utils.flop_counter`` divided by 2; ``tests/blocks/test_cost_parts.py``
    checks the sums equal ``FlopCounterMode`` on every reference and on samples of every space,
    and a counted op without a formula here fails loudly instead of counting 0.
    """

    def __init__(self) -> None:
        super().__init__()
        self.macs = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 (mode protocol)
        kwargs = kwargs or {}
        shape = _conv2d_out_shape(*args, **kwargs) if func is F.conv2d else None
        # a count needs the output's shape, not its values: skip the arithmetic (a third of the time
        # to count every reference); the tests check the counts against FlopCounterMode's
        out = args[0].new_zeros(shape) if shape is not None else func(*args, **kwargs)
        if func in _CONVS:  # each output element: in_channels / groups x kernel taps
            weight = args[1] if len(args) > 1 else kwargs["weight"]
            self.macs += out.numel() * weight[0].numel()
        elif func is F.linear:
            self.macs += out.numel() * args[0].shape[-1]
        elif func in _MATMULS:  # each output element: a dot product over the inner dimension
            self.macs += out.numel() * args[0].shape[-1]
        elif func in _UNCOUNTED:
            raise NotImplementedError(f"blocks.counting has no MAC formula for {func.__name__}; add one")
        return out


def _conv2d_out_shape(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002, ANN001
    """``F.conv2d``'s output shape by the formula of ``torch.nn.Conv2d``'s documentation; None where
    it does not apply (string padding, an unbatched input)."""
    if isinstance(padding, str) or input.dim() != 4:
        return None
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    kh, kw = weight.shape[2:]
    h = (input.shape[2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w = (input.shape[3] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    return (input.shape[0], weight.shape[0], h, w)


_MATMULS = {torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm, torch.Tensor.bmm,
            torch.mm, torch.Tensor.mm}
_CONVS = {F.conv1d, F.conv2d, F.conv3d}
_UNCOUNTED = {F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d, torch.einsum,
              torch.addmm, torch.baddbmm, F.bilinear, F.scaled_dot_product_attention}



class _NoRandomInit(TorchFunctionMode):
    """Weights drawn at random while building are left unfilled instead: a count needs their shapes
    only, and drawing them was 1.7 of the 3 s that counting every reference took (cProfile)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 (mode protocol)
        if func in _RANDOM_FILLS:  # left as allocated: not even zeroed, so its pages are never touched
            return args[0] if args else kwargs["tensor"]
        return func(*args, **(kwargs or {}))


# torch.nn.init's functions reach the mode as themselves (they dispatch __torch_function__ before
# drawing), tensor methods as methods.
_RANDOM_FILLS = {torch.nn.init.uniform_, torch.nn.init.normal_, torch.nn.init.trunc_normal_,
                 torch.nn.init.kaiming_uniform_, torch.nn.init.kaiming_normal_, torch.nn.init.xavier_uniform_,
                 torch.nn.init.xavier_normal_, torch.nn.init.orthogonal_, torch.nn.init.sparse_,
                 torch.Tensor.uniform_, torch.Tensor.normal_, torch.Tensor.bernoulli_, torch.Tensor.random_,
                 torch.Tensor.exponential_, torch.Tensor.geometric_, torch.Tensor.log_normal_, torch.Tensor.cauchy_}


def count_part(kind: str, args: tuple[Any, ...], in_ch: int, hw: tuple[int, int]) -> PartCost:
    """Params, MACs and output resolution of one part of a network (``blocks.cost`` names the kinds)."""
    build = {
        "stem": make_stem,
        "block": lambda block, out_ch, stride: build_block(block, in_ch, out_ch, stride),
        "attention": lambda attention: create_attention(attention, in_ch),
        "head": lambda head, num_classes: make_head(head, in_ch, num_classes),
    }[kind]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batch-1 tensors: more threads only spin (5-30x slower on a busy CPU)
    try:
        with torch.random.fork_rng(devices=[]), _NoRandomInit():  # the caller's random stream stays as it was
            module = build(*args).eval()
        params = sum(p.numel() for p in module.parameters())
        with _MacCount() as counter, torch.no_grad():
            out = module(torch.zeros(1, in_ch, *hw))
    finally:
        torch.set_num_threads(threads)
    return PartCost(params, counter.macs, tuple(out.shape[2:]) if out.dim() == 4 else hw)
