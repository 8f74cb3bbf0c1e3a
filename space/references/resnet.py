"""ResNet-50/101 (torchvision v1.5 bottleneck) with PytorchInsight's attention modules, ImageNet 224.

Stem conv7x7/2 64 + BN + ReLU + maxpool 3x3/2; four bottleneck stages to 256/512/1024/2048
channels with strides 1, 2, 2, 2; global pool and FC (no head conv, no dropout). SE, CBAM, SGE
(64 groups) and GC sit in every block; SK* replaces every 3x3; BAM follows each of the first
three stages. Numbers from PytorchInsight's README (REFERENCE_MODELS.md section 3); GC-ResNet
has no published row there.
"""

from __future__ import annotations

from functools import partial

from space.references import Published, register
from space.spec import ArchSpec, AttentionSpec, BottleneckSpec, HeadSpec, StageSpec, StemSpec

DEPTH_REPEATS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
STAGE_CHANNELS = (256, 512, 1024, 2048)
STAGE_STRIDES = (1, 2, 2, 2)
BAM_STAGES = 3  # BAM sits after each of the first three stages only
SOURCE = "PytorchInsight README, SGENet results table (ImageNet-1k, single 224 crop)"

# variant -> ResNet-50 (params_m, top1), ResNet-101 (params_m, top1), as printed.
PUBLISHED: dict[str, dict[int, tuple[str | None, float | None]]] = {
    "": {50: ("25.56", 76.38), 101: ("44.55", 78.20)},
    "se": {50: ("28.09", 77.18), 101: ("49.33", 78.47)},
    "cbam": {50: ("28.09", 77.63), 101: ("49.33", 78.35)},
    "bam": {50: ("25.92", 76.90), 101: ("44.91", 78.22)},
    "sk": {50: ("26.15", 77.54), 101: ("45.68", 78.79)},
    "sge": {50: ("25.56", 77.58), 101: ("44.55", 78.80)},
    "gc": {50: (None, None), 101: (None, None)},
}

BLOCK_ATTENTION = {
    "se": AttentionSpec("se", reduction=16),
    "cbam": AttentionSpec("cbam", reduction=16),
    "sge": AttentionSpec("sge", groups=64),
    "gc": AttentionSpec("gc", reduction=16),
}


def resnet(depth: int, variant: str = "") -> ArchSpec:
    """ResNet-``depth`` with attention ``variant`` ("" plain, se, cbam, bam, sk, sge, gc)."""
    if depth not in DEPTH_REPEATS:
        raise ValueError(f"depth must be one of {sorted(DEPTH_REPEATS)}, got {depth}")
    if variant not in PUBLISHED:
        raise ValueError(f"unknown ResNet variant {variant!r}; valid: {', '.join(repr(v) for v in PUBLISHED)}")
    block = BottleneckSpec(
        conv="sk" if variant == "sk" else "dense",
        attention=BLOCK_ATTENTION.get(variant),
    )
    bam = AttentionSpec("bam", reduction=16) if variant == "bam" else None
    stages = tuple(
        StageSpec(
            out_channels=channels,
            repeats=repeats,
            stride=stride,
            block=block,
            post_attention=bam if i < BAM_STAGES else None,
        )
        for i, (channels, repeats, stride) in enumerate(zip(STAGE_CHANNELS, DEPTH_REPEATS[depth], STAGE_STRIDES))
    )
    return ArchSpec(
        stem=StemSpec(channels=64, kernel=7, stride=2, act="relu", maxpool=True),
        stages=stages,
        head=HeadSpec(channels=0, act="relu", dropout=0.0),
    )


# Rows with no seed network to compare against, and why.
GAPS = {
    "gc": "no seed network: PytorchInsight has neither GC-ResNet code nor numbers; GCNet's ContextBlock "
          "(attention pooling, channel_add, r=16, LayerNorm eps 1e-5) sits after the last BN of every bottleneck "
          "as PytorchInsight places SE; the block equals timm's GlobalContext configured alike",
}


def _register_all() -> None:
    for variant, rows in PUBLISHED.items():
        for depth, (params_m, top1) in rows.items():
            prefix = f"{variant}_" if variant else ""
            source = SOURCE if params_m is not None else "no published numbers (not in PytorchInsight's table)"
            published = Published(params_m=params_m, top1=top1, source=source, gap=GAPS.get(variant, ""))
            register(f"{prefix}resnet{depth}_imagenet", "imagenet", published)(partial(resnet, depth, variant))


_register_all()
