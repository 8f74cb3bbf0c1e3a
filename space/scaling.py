"""Width scaling of a spec: the proxy trains a thinner copy of a network to rank it cheaply.

``scale_width(spec, factor)`` multiplies the stem, every stage and the head conv by ``factor`` and
rounds each width to the nearest value that keeps every group split, channel shuffle and attention
of the spec valid (MobileNet's width multiplier, with rounding to the spec's own divisors instead
of a fixed 8). The result is validated; no torch here.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

from space.spec import (
    ArchSpec,
    AttentionSpec,
    BlockSpec,
    BottleneckSpec,
    InvertedResidualSpec,
    ShuffleUnitSpec,
    SpecError,
)

__all__ = ["scale_width"]

# How far (in multiples of a width's divisor) the search for a valid width may stray from the
# target before giving up; bounds the loop for specs that no width near the target can satisfy.
_MAX_CANDIDATES = 64


def _split_divisor(split: tuple[Fraction, ...]) -> int:
    """Smallest channel count step for which every fraction of ``split`` is a whole number."""
    return math.lcm(*(f.denominator for f in split))


def _attention_divisor(attention: AttentionSpec | None) -> int:
    return attention.groups if attention is not None and attention.kind == "sge" else 1


def _block_divisors(block: BlockSpec, stride: int) -> tuple[int, int]:
    """(divisor of the block's input width, divisor of its output width)."""
    d_in, d_out = 1, _attention_divisor(block.attention)
    if isinstance(block, InvertedResidualSpec):
        d_hidden = _split_divisor(block.pw2_split)
        if block.has_pw1():
            d_in = _split_divisor(block.pw1_split)
            d_hidden = math.lcm(d_hidden, _split_divisor(block.pw1_split))
        if block.shuffle in ("pw1", "dw"):
            d_hidden = math.lcm(d_hidden, block.shuffle_groups)
        # hidden = input * expansion, so the input carries the part the expansion does not supply.
        d_in = math.lcm(d_in, d_hidden // math.gcd(d_hidden, block.expansion))
        d_out = math.lcm(d_out, _split_divisor(block.pw2_split))
        if block.shuffle == "pw2" or block.unshuffle_pw2:
            d_out = math.lcm(d_out, block.shuffle_groups)
    elif isinstance(block, ShuffleUnitSpec):
        if stride == 1:
            d_in = _split_divisor(block.split)
        if block.shuffle_groups > 1:
            d_out = math.lcm(d_out, block.shuffle_groups)
    elif isinstance(block, BottleneckSpec):
        d_out = math.lcm(d_out, block.expansion)
    return d_in, d_out


def _candidates(target: float, divisor: int):
    """Multiples of ``divisor`` nearest to ``target`` first (ties go up), all >= ``divisor``."""
    centre = max(1, math.floor(target / divisor + 0.5))
    multiples = [centre]
    for step in range(1, _MAX_CANDIDATES):
        multiples += [centre + step, centre - step]
    return [m * divisor for m in multiples if m >= 1][:_MAX_CANDIDATES]


def scale_width(spec: ArchSpec, factor: float) -> ArchSpec:
    """A copy of ``spec`` with stem, stage and head widths scaled by ``factor`` and rounded valid.

    Each width goes to the nearest multiple of the step its blocks need (the denominators of the
    group splits, shuffle groups, SGE groups, bottleneck expansion); where that is still invalid
    (a stride-1 ShuffleNet unit must keep its width, a reduction needs enough channels) the next
    nearest multiple is tried. ``factor == 1`` returns ``spec`` itself.
    """
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor <= 0:
        raise SpecError(f"width factor: expected a finite number > 0, got {factor!r}")
    spec.validate()
    if factor == 1:
        return spec

    widths = [spec.stem.channels] + [s.out_channels for s in spec.stages]
    divisors = [1] * len(widths)
    for i, stage in enumerate(spec.stages):
        for j, (block, stride) in enumerate(stage.blocks()):
            d_in, d_out = _block_divisors(block, stride)
            in_var = i if j == 0 else i + 1
            divisors[in_var] = math.lcm(divisors[in_var], d_in)
            divisors[i + 1] = math.lcm(divisors[i + 1], d_out)
        divisors[i + 1] = math.lcm(divisors[i + 1], _attention_divisor(stage.post_attention))

    stem = dataclasses.replace(spec.stem, channels=_candidates(widths[0] * factor, divisors[0])[0])
    stages: list = []
    for i, stage in enumerate(spec.stages):
        # Greedy, stage by stage: validating the prefix checks this stage against the width just
        # chosen for its input; the divisors above keep every later choice open.
        for width in _candidates(widths[i + 1] * factor, divisors[i + 1]):
            trial = stages + [dataclasses.replace(stage, out_channels=width)]
            try:
                ArchSpec(stem=stem, stages=tuple(trial), head=spec.head).validate()
            except SpecError:
                continue
            stages = trial
            break
        else:
            raise SpecError(
                f"stages[{i}].out_channels: no width near {widths[i + 1]} x {factor} = "
                f"{widths[i + 1] * factor:.1f} keeps its blocks valid; try another width factor"
            )
    head = spec.head
    if head.channels:
        head = dataclasses.replace(head, channels=max(1, math.floor(head.channels * factor + 0.5)))
    return ArchSpec(stem=stem, stages=tuple(stages), head=head).validate()
