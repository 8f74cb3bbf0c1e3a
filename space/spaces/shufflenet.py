"""The ``shufflenet`` space: ShuffleNetV2 units (Ma et al. 2018) with attention and WeightNet.

Skeleton: stem conv3x3 24ch (ImageNet: stride 2 + max-pool; CIFAR: stride 1, no pool), three
stages, conv1x1 to the last width, pool, FC. Widths are whole tables, each one codebase's row with
its biases: the official megvii ShuffleNetV2 (0.5x .. 2.0x), WeightNet's baselines (1.0x:
112/224/448, 2.0x: 248/496/992) and PytorchInsight's 1.0x. Per stage: the unit layout (megvii,
where the stride-2 projection keeps its input width, or torchvision, where each branch gets half),
the identity split of stride-1 units, whether the unit shuffles (``after_concat``: torchvision
shuffles after the concat, megvii de-interleaves the input of stride-1 units, see
``blocks.shufflenet``), the depthwise kernel, an attention module on the concatenated output, WeightNet
dynamic convs (M, G) on every conv of the unit, and the depth. The ShuffleNetV2, WeightNet and
SE-ShuffleNetV2 references are exact points.
"""

from __future__ import annotations

from typing import Any

from space.references.shufflenet import (
    PYTORCHINSIGHT_WIDTHS,
    SHUFFLENETV2_WIDTHS,
    STAGE_REPEATS,
    WEIGHTNET_WIDTHS,
    ShuffleWidths,
)
from space.spaces import SearchSpace, TrialLike, register_space
from space.spec import ArchSpec, AttentionSpec, HeadSpec, ShuffleUnitSpec, StageSpec, StemSpec, WeightNetSpec, parse_split

# A table is one codebase's row: its widths and its stem/last-conv/FC biases, so that each seed
# network is an exact point (megvii: bias-free FC; WeightNet: biased stem and last conv, even where
# its widths equal the official ones; PytorchInsight: biased FC).
WIDTH_TABLES: dict[str, ShuffleWidths] = {
    **SHUFFLENETV2_WIDTHS,
    **{f"wn{w}": t for w, t in WEIGHTNET_WIDTHS.items()},
    **{f"pi{w}": t for w, t in PYTORCHINSIGHT_WIDTHS.items()},
}
STEMS = ("cifar", "imagenet")
LAYOUTS = ("megvii", "torchvision")
SPLITS = ("1/2:1/2", "1/4:3/4", "3/4:1/4")  # every stage width is a multiple of 4
SHUFFLES = ("after_concat", "none")
KERNELS = (3, 5, 7)
ATTENTIONS = ("none", "se", "cbam", "gc", "sge", "srm", "eca")
REDUCED_ATTENTIONS = ("se", "cbam", "gc")
REDUCTIONS = (4, 8, 16)
SGE_GROUPS = 4  # divides every stage width of every table (116 = 4 x 29)
# WeightNet's fc2 cuts each 1x1 kernel into G input groups, so G must divide the branch widths:
# offered with the even split only (an uneven split of 116 leaves 29 / 87 channels), and G = 2.
WEIGHTNETS = {"none": None, "M2G2": WeightNetSpec(2, 2), "M4G2": WeightNetSpec(4, 2)}
REPEAT_RANGES = ((2, 4), (4, 8), (2, 4))  # up to the reference depths 4 / 8 / 4
STEM_CHANNELS = 24


@register_space
class ShuffleNetSpace(SearchSpace):
    name = "shufflenet"
    description = "ShuffleNetV2 units (both layouts) with attention and WeightNet dynamic convs"

    def sample(self, trial: TrialLike) -> ArchSpec:
        stem = trial.suggest_categorical("stem", STEMS)
        table = WIDTH_TABLES[trial.suggest_categorical("widths", tuple(WIDTH_TABLES))]
        shared = self._unit(trial, "block") if self.shared_block else None
        stages = []
        for i, width in enumerate(table.stages):
            low, high = REPEAT_RANGES[i]
            stages.append(StageSpec(
                out_channels=width,
                repeats=trial.suggest_int(f"s{i + 1}_repeats", low, high),
                stride=2,
                block=shared or self._unit(trial, f"s{i + 1}"),
            ))
        return ArchSpec(
            stem=StemSpec(channels=STEM_CHANNELS, kernel=3, stride=2 if stem == "imagenet" else 1, act="relu",
                          maxpool=stem == "imagenet", conv_bias=table.conv_bias),
            stages=tuple(stages),
            head=HeadSpec(channels=table.last_conv, act="relu", dropout=table.dropout, conv_bias=table.conv_bias,
                          classifier_bias=table.classifier_bias),
        ).validate()

    @staticmethod
    def _unit(trial: TrialLike, prefix: str) -> ShuffleUnitSpec:
        attention = trial.suggest_categorical(f"{prefix}_attention", ATTENTIONS)
        reduction = 16
        if attention in REDUCED_ATTENTIONS:
            reduction = trial.suggest_categorical(f"{prefix}_attention_reduction", REDUCTIONS)
        split = trial.suggest_categorical(f"{prefix}_split", SPLITS)
        weightnet = "none"
        if split == SPLITS[0]:
            weightnet = trial.suggest_categorical(f"{prefix}_weightnet", tuple(WEIGHTNETS))
        return ShuffleUnitSpec(
            layout=trial.suggest_categorical(f"{prefix}_layout", LAYOUTS),
            split=parse_split(split),
            dw_kernel=trial.suggest_categorical(f"{prefix}_dw_kernel", KERNELS),
            shuffle_groups=2 if trial.suggest_categorical(f"{prefix}_shuffle", SHUFFLES) == "after_concat" else 0,
            attention=None if attention == "none" else AttentionSpec(attention, reduction=reduction, groups=SGE_GROUPS),
            weightnet=WEIGHTNETS[weightnet],
        )

    def size(self) -> int:
        attention_options = len(ATTENTIONS) - len(REDUCED_ATTENTIONS) + len(REDUCED_ATTENTIONS) * len(REDUCTIONS)
        split_options = len(WEIGHTNETS) + len(SPLITS) - 1  # WeightNet only with the even split
        unit = len(LAYOUTS) * split_options * len(SHUFFLES) * len(KERNELS) * attention_options
        repeats = 1
        for low, high in REPEAT_RANGES:
            repeats *= high - low + 1
        units = 1 if self.shared_block else len(REPEAT_RANGES)
        return len(STEMS) * len(WIDTH_TABLES) * repeats * unit**units

    def smallest_params(self) -> dict[str, Any]:
        unit = {"attention": "none", "layout": "megvii", "split": "3/4:1/4", "dw_kernel": 3, "shuffle": "none"}
        p: dict[str, Any] = {"stem": "imagenet", "widths": "0.5"}
        for prefix in ["block"] if self.shared_block else ["s1", "s2", "s3"]:
            p.update({f"{prefix}_{k}": v for k, v in unit.items()})
        p.update({f"s{i + 1}_repeats": low for i, (low, _) in enumerate(REPEAT_RANGES)})
        return p

    def reference_params(self) -> dict[str, dict[str, Any]]:
        plain = {"attention": "none", "layout": "megvii", "split": "1/2:1/2", "dw_kernel": 3,
                 "shuffle": "after_concat", "weightnet": "none"}
        refs: dict[str, tuple[str, dict[str, Any]]] = {}
        for w in ("0.5", "1.0", "1.5", "2.0"):
            refs[f"shufflenetv2_{w}_imagenet"] = (w, plain)
            refs[f"shufflenetv2_{w}_weightnet_baseline"] = (f"wn{w}", plain)
            refs[f"weightnet_shufflenetv2_{w}_imagenet"] = (f"wn{w}", {**plain, "weightnet": "M2G2"})
        refs["se_shufflenetv2_1.0_imagenet"] = ("pi1.0", {**plain, "layout": "torchvision", "attention": "se",
                                                          "attention_reduction": 16})
        out = {}
        for name, (widths, unit) in refs.items():
            p: dict[str, Any] = {"stem": "imagenet", "widths": widths}
            for prefix in ["block"] if self.shared_block else ["s1", "s2", "s3"]:
                p.update({f"{prefix}_{k}": v for k, v in unit.items()})
            p.update({f"s{i + 1}_repeats": r for i, r in enumerate(STAGE_REPEATS)})
            out[name] = p
        return out
