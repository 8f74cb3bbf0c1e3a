"""Inverted-residual references: MobileNetV2, IGCV3 and Seesaw-Net (REFERENCE_MODELS.md section 1).

One skeleton: stem conv3x3 32ch + BN + ReLU6, seven stages of inverted-residual blocks (the
MobileNetV2 table, or IGCV3-D's doubled depth), head conv1x1 -> 1280 + BN + ReLU6, pool, FC.
The families differ only in the block each position gets, which ``mobile_skeleton`` asks of a
``BlockRule`` given the block's input channels (Seesaw-Net switches block at 160 input channels).

Sources: MobileNetV2 (Sandler et al. 2018), IGCV3 (Sun et al. 2018) and its project README,
Seesaw-Net (Zhang 2019, arXiv:1905.03672v4) and its CIFAR/ImageNet code. The stage tables, blocks
and rules are public so that search spaces can reuse them.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Sequence

from space.references import Published, register
from space.spec import ArchSpec, HeadSpec, InvertedResidualSpec, Split, StageSpec, StemSpec

__all__ = [
    "BlockRule",
    "CIFAR_IGCV3_STRIDES",
    "CIFAR_SEESAW_STRIDES",
    "DENSE",
    "DEPTHS",
    "EVEN",
    "IGCV3_D_STAGES",
    "IMAGENET_STRIDES",
    "MOBILENETV2_STAGES",
    "MobileStage",
    "SEESAW_EVEN_FROM_CHANNELS",
    "UNEVEN",
    "igcv3_block",
    "igcv3_rule",
    "mobile_skeleton",
    "mobilenetv2_block",
    "mobilenetv2_rule",
    "seesaw",
    "seesaw_block",
    "seesaw_rule",
]

# ----------------------------------------------------------------------------- stage tables


@dataclass(frozen=True)
class MobileStage:
    """One row (t, c, n) of the MobileNetV2 table; the stride comes from a separate stride list."""

    expansion: int
    channels: int
    repeats: int


MOBILENETV2_STAGES = (  # MobileNetV2 repeats, Seesaw-Net's "0.5D"
    MobileStage(1, 16, 1),
    MobileStage(6, 24, 2),
    MobileStage(6, 32, 3),
    MobileStage(6, 64, 4),
    MobileStage(6, 96, 3),
    MobileStage(6, 160, 3),
    MobileStage(6, 320, 1),
)
IGCV3_D_STAGES = (  # IGCV3-D's doubled depth, Seesaw-Net's "1.0D"
    MobileStage(1, 16, 1),
    MobileStage(6, 24, 4),
    MobileStage(6, 32, 6),
    MobileStage(6, 64, 8),
    MobileStage(6, 96, 6),
    MobileStage(6, 160, 6),
    MobileStage(6, 320, 1),
)
DEPTHS = {"1.0d": IGCV3_D_STAGES, "0.5d": MOBILENETV2_STAGES}

# Stage strides (stem stride separate): ImageNet 224 -> 7x7; Seesaw paper CIFAR 32 -> 8x8;
# IGCV3 project CIFAR 32 -> 4x4.
IMAGENET_STRIDES = (1, 2, 2, 2, 1, 2, 1)
CIFAR_SEESAW_STRIDES = (1, 1, 2, 2, 1, 1, 1)
CIFAR_IGCV3_STRIDES = (1, 1, 2, 2, 1, 2, 1)

STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
CIFAR_DROPOUT = 0.5  # Seesaw/IGCV3 CIFAR code: nn.Dropout() before the FC
MOBILENETV2_IMAGENET_DROPOUT = 0.2  # official MobileNetV2 classifier

# ----------------------------------------------------------------------------- blocks

DENSE: Split = (Fraction(1),)
EVEN: Split = (Fraction(1, 2), Fraction(1, 2))  # IGCV3's groups=2
UNEVEN: Split = (Fraction(1, 4), Fraction(3, 4))  # Seesaw-Net's uneven groups
SEESAW_EVEN_FROM_CHANNELS = 160  # Seesaw-Net: blocks whose input has >= 160 channels are even


def mobilenetv2_block(expansion: int, *, keep_pw1: bool = True) -> InvertedResidualSpec:
    """MobileNetV2: dense 1x1s, ReLU6 after pw1 and dw, linear pw2."""
    return InvertedResidualSpec(expansion=expansion, pw1_act="relu6", keep_pw1=keep_pw1)


def igcv3_block(expansion: int, *, pw1_act: str = "none") -> InvertedResidualSpec:
    """IGCV3: 1/2:1/2 group 1x1s, g=2 shuffle after pw1, its inverse after pw2.

    pw1_act: "none" in the official IGCV3 and the Seesaw paper's baseline; the IGCV3 PyTorch
    project adds ReLU6.
    """
    return InvertedResidualSpec(
        expansion=expansion, pw1_split=EVEN, pw2_split=EVEN, pw1_act=pw1_act,
        shuffle="pw1", shuffle_groups=2, unshuffle_pw2=True,
    )


def seesaw_block(expansion: int, *, uneven: bool) -> InvertedResidualSpec:
    """Seesaw-Net: uneven (1/4:3/4) or even (1/2:1/2) group 1x1s, no act after pw1, g=2 shuffle
    after pw1 only."""
    split = UNEVEN if uneven else EVEN
    return InvertedResidualSpec(
        expansion=expansion, pw1_split=split, pw2_split=split, pw1_act="none",
        shuffle="pw1", shuffle_groups=2, unshuffle_pw2=False,
    )


BlockRule = Callable[[int, int], InvertedResidualSpec]
"""``rule(in_channels, expansion) -> block spec`` for a block whose input has ``in_channels``."""


def mobilenetv2_rule(*, keep_pw1: bool = True) -> BlockRule:
    return lambda in_ch, t: mobilenetv2_block(t, keep_pw1=keep_pw1)


def igcv3_rule(*, pw1_act: str = "none") -> BlockRule:
    return lambda in_ch, t: igcv3_block(t, pw1_act=pw1_act)


def seesaw_rule(even_from: int = SEESAW_EVEN_FROM_CHANNELS) -> BlockRule:
    """Uneven blocks where the input has < ``even_from`` channels, even blocks elsewhere."""
    return lambda in_ch, t: seesaw_block(t, uneven=in_ch < even_from)


# ----------------------------------------------------------------------------- skeleton


def mobile_skeleton(
    stages: Sequence[MobileStage],
    strides: Sequence[int],
    block_rule: BlockRule,
    *,
    stem_stride: int,
    dropout: float = 0.0,
    stem_channels: int = STEM_CHANNELS,
    head_channels: int = HEAD_CHANNELS,
) -> ArchSpec:
    """The MobileNetV2 skeleton with the block ``block_rule`` picks for each block's input width.

    A stage whose first block (input = previous width) gets a different block than its other
    blocks (input = the stage width) records it as ``first_block``.
    """
    if len(stages) != len(strides):
        raise ValueError(f"need one stride per stage, got {len(stages)} stages and {len(strides)} strides")
    in_ch = stem_channels
    specs = []
    for stage, stride in zip(stages, strides):
        specs.append(StageSpec(
            out_channels=stage.channels,
            repeats=stage.repeats,
            stride=stride,
            block=block_rule(stage.channels, stage.expansion),
            first_block=block_rule(in_ch, stage.expansion),
        ))
        in_ch = stage.channels
    return ArchSpec(
        stem=StemSpec(channels=stem_channels, kernel=3, stride=stem_stride, act="relu6"),
        stages=tuple(specs),
        head=HeadSpec(channels=head_channels, act="relu6", dropout=dropout),
    )


def seesaw(depth: str, dataset: str) -> ArchSpec:
    """Seesaw-Net "1.0d" / "0.5d" (width 1.0) for "cifar" (paper strides) or "imagenet"."""
    if depth not in DEPTHS:
        raise ValueError(f"unknown Seesaw-Net depth {depth!r}; valid: {', '.join(DEPTHS)}")
    if dataset not in ("cifar", "imagenet"):
        raise ValueError(f"unknown dataset {dataset!r}; valid: cifar, imagenet")
    if dataset == "imagenet":
        return mobile_skeleton(DEPTHS[depth], IMAGENET_STRIDES, seesaw_rule(), stem_stride=2)
    return mobile_skeleton(DEPTHS[depth], CIFAR_SEESAW_STRIDES, seesaw_rule(), stem_stride=1, dropout=CIFAR_DROPOUT)


# ----------------------------------------------------------------------------- registrations

SEESAW_SRC = "Seesaw-Net, Zhang 2019 (arXiv:1905.03672v4), CIFAR / ImageNet tables"
SEESAW_PUBLISHED = {
    ("1.0d", "cifar10"): Published("2.4", "181", 95.28, source=SEESAW_SRC),
    ("1.0d", "cifar100"): Published("2.5", "181", 79.26, source=SEESAW_SRC),
    ("0.5d", "cifar10"): Published("1.5", "108", 95.10, source=SEESAW_SRC),
    ("0.5d", "cifar100"): Published("1.6", "108", 77.82, source=SEESAW_SRC),
    ("1.0d", "imagenet"): Published("3.6", "361", 72.9, source=SEESAW_SRC),
    # 0.5D ImageNet: read off the paper's accuracy-vs-MAdds plot.
    ("0.5d", "imagenet"): Published("2.7", "210", 69.5, tolerance=0.05, gap="read off the paper's plot", source=SEESAW_SRC + " (plot)"),
}
IGCV3_SEESAW_SRC = "Seesaw-Net paper's IGCV3 baseline (even blocks everywhere, Seesaw CIFAR strides)"
IGCV3_SEESAW_PUBLISHED = {
    ("1.0d", "cifar10"): Published("2.2", "166", 95.01, source=IGCV3_SEESAW_SRC),
    ("1.0d", "cifar100"): Published("2.3", "166", 78.24, source=IGCV3_SEESAW_SRC),
    ("0.5d", "cifar10"): Published("1.4", "100", 94.75, source=IGCV3_SEESAW_SRC),
    ("0.5d", "cifar100"): Published("1.5", "100", 77.65, source=IGCV3_SEESAW_SRC),
}


def _register_seesaw(depth: str, dataset: str) -> None:
    register(f"seesaw_{depth}_{dataset}", dataset, SEESAW_PUBLISHED[depth, dataset])(
        lambda: seesaw(depth, "imagenet" if dataset == "imagenet" else "cifar")
    )


def _register_igcv3_seesaw_baseline(depth: str, dataset: str) -> None:
    # The Seesaw author's IGCV3 code: no act after pw1, inverse shuffle after pw2.
    register(f"igcv3_{depth}_{dataset}", dataset, IGCV3_SEESAW_PUBLISHED[depth, dataset])(
        lambda: mobile_skeleton(DEPTHS[depth], CIFAR_SEESAW_STRIDES, igcv3_rule(), stem_stride=1, dropout=CIFAR_DROPOUT)
    )


for _depth in DEPTHS:
    for _dataset in ("cifar10", "cifar100", "imagenet"):
        _register_seesaw(_depth, _dataset)
    for _dataset in ("cifar10", "cifar100"):
        _register_igcv3_seesaw_baseline(_depth, _dataset)


@register("igcv3_d_imagenet", "imagenet", Published(
    "3.5", "318", 72.2, tolerance=0.02, source="IGCV3, Sun et al. 2018, ImageNet (after retrain)",
    gap="313.0M MACs from the official structure (MXNet code and released model); the 5M gap is about "
        "the number of ReLU6 outputs (4.9M), so the paper's counter likely counted clips"))
def igcv3_d_imagenet() -> ArchSpec:
    return mobile_skeleton(IGCV3_D_STAGES, IMAGENET_STRIDES, igcv3_rule(), stem_stride=2)


MOBILENETV2_CIFAR_SRC = "IGCV3 paper/project, MobileNetV2 (our impl.) on CIFAR"


def mobilenetv2_cifar() -> ArchSpec:
    """The IGCV3 project's CIFAR MobileNetV2: the t=1 block keeps pw1, final map 4x4."""
    return mobile_skeleton(MOBILENETV2_STAGES, CIFAR_IGCV3_STRIDES, mobilenetv2_rule(keep_pw1=True),
                           stem_stride=1, dropout=CIFAR_DROPOUT)


MOBILENETV2_CIFAR_GAP = (
    "the paper prints one 2.3M for CIFAR-10 and -100, whose FCs differ by 0.115M, so no network rounds to "
    "2.3 for both; the IGCV3 project's structure gives 2.24M / 2.35M")
register("mobilenetv2_cifar10", "cifar10", Published("2.3", None, 94.56, tolerance=0.03, gap=MOBILENETV2_CIFAR_GAP,
                                                    source=MOBILENETV2_CIFAR_SRC))(mobilenetv2_cifar)
register("mobilenetv2_cifar100", "cifar100", Published("2.3", None, 77.09, tolerance=0.03, gap=MOBILENETV2_CIFAR_GAP,
                                                      source=MOBILENETV2_CIFAR_SRC))(mobilenetv2_cifar)


# REFERENCE_MODELS.md prints "3.4-3.5M": the paper's 3.4M is TensorFlow's 3.47M (BN parameters not
# counted) cut to one decimal; the module has 3.50M parameters as counted here.
@register("mobilenetv2_imagenet", "imagenet", Published(
    "3.5", "300", 72.0, tolerance=0.01, source="MobileNetV2, Sandler et al. 2018, Table 4",
    gap="300.77M MACs, the standard count of this network (torchvision's too); the paper truncates "
        "(its 3.4M params is TensorFlow's 3.47M cut to one decimal; REFERENCE_MODELS.md allows 3.4-3.5M)"))
def mobilenetv2_imagenet() -> ArchSpec:
    """Official MobileNetV2 1.0: the t=1 block drops pw1; dropout 0.2."""
    return mobile_skeleton(MOBILENETV2_STAGES, IMAGENET_STRIDES, mobilenetv2_rule(keep_pw1=False),
                           stem_stride=2, dropout=MOBILENETV2_IMAGENET_DROPOUT)
