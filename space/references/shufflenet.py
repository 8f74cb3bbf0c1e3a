"""ShuffleNetV2 references: the official megvii networks, WeightNet and its baselines, SE-ShuffleNetV2
(REFERENCE_MODELS.md sections 2-4).

Stem conv3x3/2 24ch + BN + ReLU + maxpool 3x3/2, three stages of 4/8/4 units (the first of each
with stride 2), conv1x1 to the last width + BN + ReLU, global pool, FC; ImageNet 224.

Sources: ShuffleNetV2 (Ma et al. 2018) and megvii's ShuffleNet-Series code (widths, last conv, 2.0x
dropout 0.2); WeightNet (Ma et al. 2020) and its MegEngine code (reduced widths, last conv 1024
everywhere, 2.0x dropout 0.2); SE-ShuffleNetV2 from PytorchInsight (SE r=16 on the concatenated
unit output, before the shuffle).
"""

from __future__ import annotations

from dataclasses import dataclass

from space.references import Published, register
from space.spec import ArchSpec, AttentionSpec, HeadSpec, ShuffleUnitSpec, StageSpec, StemSpec, WeightNetSpec

__all__ = [
    "PYTORCHINSIGHT_WIDTHS",
    "SE_SHUFFLENETV2_UNIT",
    "SHUFFLENETV2_WIDTHS",
    "STAGE_REPEATS",
    "ShuffleWidths",
    "WEIGHTNET_WIDTHS",
    "shufflenetv2",
    "torchvision_shufflenetv2",
]

STAGE_REPEATS = (4, 8, 4)
STEM_CHANNELS = 24


@dataclass(frozen=True)
class ShuffleWidths:
    """One width multiplier of one codebase's ShuffleNetV2 table: the three stage widths, the last
    conv, dropout, and that code's biases (which change the parameter count, not the layout)."""

    stages: tuple[int, int, int]
    last_conv: int
    dropout: float = 0.0
    conv_bias: bool = False  # stem conv and last conv carry a bias (WeightNet's MegEngine code)
    classifier_bias: bool = True  # megvii's official code: a bias-free FC


SHUFFLENETV2_WIDTHS = {  # official megvii ShuffleNet-Series: bias-free convs and FC
    "0.5": ShuffleWidths((48, 96, 192), 1024, classifier_bias=False),
    "1.0": ShuffleWidths((116, 232, 464), 1024, classifier_bias=False),
    "1.5": ShuffleWidths((176, 352, 704), 1024, classifier_bias=False),
    "2.0": ShuffleWidths((244, 488, 976), 2048, dropout=0.2, classifier_bias=False),
}
WEIGHTNET_WIDTHS = {  # WeightNet's baselines: widths reduced to compare at equal FLOPs; its code
    # keeps the stem conv, the last conv and the FC static with a bias (REFERENCE_MODELS.md s.4)
    "0.5": ShuffleWidths((48, 96, 192), 1024, conv_bias=True),
    "1.0": ShuffleWidths((112, 224, 448), 1024, conv_bias=True),
    "1.5": ShuffleWidths((176, 352, 704), 1024, conv_bias=True),
    "2.0": ShuffleWidths((248, 496, 992), 1024, dropout=0.2, conv_bias=True),
}
PYTORCHINSIGHT_WIDTHS = {  # PytorchInsight's (torchvision-style) ShuffleNetV2: FC with a bias
    "1.0": ShuffleWidths((116, 232, 464), 1024),
}


def shufflenetv2(widths: ShuffleWidths, unit: ShuffleUnitSpec = ShuffleUnitSpec()) -> ArchSpec:
    """A ShuffleNetV2 network of ``widths`` (and its code's biases) built from ``unit`` (megvii
    layout by default)."""
    stages = tuple(
        StageSpec(out_channels=c, repeats=n, stride=2, block=unit)
        for c, n in zip(widths.stages, STAGE_REPEATS)
    )
    return ArchSpec(
        stem=StemSpec(channels=STEM_CHANNELS, kernel=3, stride=2, act="relu", maxpool=True, conv_bias=widths.conv_bias),
        stages=stages,
        head=HeadSpec(channels=widths.last_conv, act="relu", dropout=widths.dropout, conv_bias=widths.conv_bias,
                      classifier_bias=widths.classifier_bias),
    )


def torchvision_shufflenetv2(width: str) -> ArchSpec:
    """torchvision's ``shufflenet_v2_x*``: the official widths on the torchvision layout (each
    branch out/2, shuffle after the concat), FC with a bias, no dropout. Not a reference row (it is
    no seed's network); ``blocks.convert`` loads its published weights into it."""
    if width not in SHUFFLENETV2_WIDTHS:
        raise ValueError(f"unknown width {width!r}; valid: {', '.join(SHUFFLENETV2_WIDTHS)}")
    official = SHUFFLENETV2_WIDTHS[width]
    widths = ShuffleWidths(official.stages, official.last_conv)
    return shufflenetv2(widths, ShuffleUnitSpec(layout="torchvision"))


# ----------------------------------------------------------------------------- registrations

SHUFFLENETV2_SRC = "ShuffleNetV2, Ma et al. 2018, Table 5 (megvii ShuffleNet-Series widths)"
SHUFFLENETV2_PUBLISHED = {"0.5": ("1.4", "41"), "1.0": ("2.3", "146"), "1.5": ("3.5", "299"), "2.0": ("7.4", "591")}

WEIGHTNET_SRC = "WeightNet, Ma et al. 2020, README table (same #params / FLOPs comparison)"
# width -> (baseline params, MACs, top-1 err), (+WeightNet 1x params, MACs, top-1 err), as printed.
WEIGHTNET_PUBLISHED = {
    "0.5": (("1.4", "41", 39.7), ("1.5", "41", 36.7)),
    "1.0": (("2.2", "138", 30.9), ("2.4", "139", 28.8)),
    "1.5": (("3.5", "299", 27.4), ("3.9", "301", 25.6)),
    "2.0": (("5.5", "557", 25.5), ("6.1", "562", 24.1)),
}
WEIGHTNET_1X = WeightNetSpec(M=2, G=2)

# Rows the official structure cannot round to exactly (see Published): why, and the band allowed.
SHUFFLENET_0_5_GAP = (
    "40.48M MACs from the official megvii structure; the ShuffleNetV2 paper rounds every width up "
    "(40.48->41, 145.81->146, 298.97->299, 590.78->591), our convention rounds to nearest")
GAPS = {
    "shufflenetv2_0.5_imagenet": (0.02, SHUFFLENET_0_5_GAP),
    "shufflenetv2_0.5_weightnet_baseline": (0.02, SHUFFLENET_0_5_GAP),
    "weightnet_shufflenetv2_2.0_imagenet": (0.02, (
        "6.198M params / 561.4M MACs from the official MegEngine structure; no counting convention or width "
        "variant tried gives both 6.1M and 562M (conv and FC weights only, no BN or biases: 6.14M)")),
}


def _published(name: str, params: str, macs: str, top1: float | None, source: str) -> Published:
    tolerance, gap = GAPS.get(name, (0.0, ""))
    return Published(params, macs, top1, tolerance=tolerance, gap=gap, source=source)


def _register_width(width: str) -> None:
    params, macs = SHUFFLENETV2_PUBLISHED[width]
    name = f"shufflenetv2_{width}_imagenet"
    register(name, "imagenet", _published(name, params, macs, None, SHUFFLENETV2_SRC))(
        lambda: shufflenetv2(SHUFFLENETV2_WIDTHS[width])
    )
    (b_params, b_macs, b_err), (w_params, w_macs, w_err) = WEIGHTNET_PUBLISHED[width]
    name = f"shufflenetv2_{width}_weightnet_baseline"
    register(name, "imagenet", _published(name, b_params, b_macs, round(100 - b_err, 2), WEIGHTNET_SRC))(
        lambda: shufflenetv2(WEIGHTNET_WIDTHS[width]))
    name = f"weightnet_shufflenetv2_{width}_imagenet"
    register(name, "imagenet", _published(name, w_params, w_macs, round(100 - w_err, 2), WEIGHTNET_SRC))(lambda: shufflenetv2(WEIGHTNET_WIDTHS[width], ShuffleUnitSpec(weightnet=WEIGHTNET_1X)))


for _width in SHUFFLENETV2_WIDTHS:
    _register_width(_width)


SE_SHUFFLENETV2_UNIT = ShuffleUnitSpec(layout="torchvision", attention=AttentionSpec("se", reduction=16))


@register("se_shufflenetv2_1.0_imagenet", "imagenet", Published(
    source="PytorchInsight shufflenetv2_se.py (torchvision layout: branch1 1x1 inp -> oup/2; SE r=16 on the "
           "unit output, before the shuffle; FC with bias); no counts printed"))
def se_shufflenetv2_1_0() -> ArchSpec:
    return shufflenetv2(PYTORCHINSIGHT_WIDTHS["1.0"], SE_SHUFFLENETV2_UNIT)
