"""The ``seesaw`` space: inverted-residual blocks on the CIFAR skeleton of Seesaw-Net.

Seesaw-Net (Zhang 2019, arXiv:1905.03672), IGCV3 (Sun et al. 2018) and MobileNetV2 (Sandler et al.
2018) share one skeleton: stem conv 32, seven stages of widths 16, 24, 32, 64, 96, 160, 320,
head conv 1280. Per stage the space chooses the expansion, where a channel shuffle goes (and its
groups, and IGCV3's inverse shuffle), the activation after pw1, the depthwise kernel, an attention
module and the depth (between MobileNetV2's "0.5D" and IGCV3-D's "1.0D" repeats). Globally: a width
multiplier, the stride of the 160 stage (1: Seesaw paper, 8x8 final map; 2: IGCV3 project, 4x4),
and whether a t=1 block keeps its expansion conv.

Group splits of pw1 and pw2 are chosen **per input width**, which is Seesaw-Net's own rule (the
uneven block where a block's input has < 160 channels): a block whose input comes from the stem
uses the ``in0_*`` splits, one whose input comes from stage j uses ``inj_*``. So a stage's first
block follows the previous width's splits and the rest follow its own. Every width is a multiple
of 8, so every offered split (denominators 1, 2, 4, 8) always gives whole channels.

With ``shared_block=True`` one block (one set of choices) serves every stage: "the block".
"""

from __future__ import annotations

from typing import Any

from space.references.mobile import (
    CIFAR_DROPOUT,
    CIFAR_IGCV3_STRIDES,
    CIFAR_SEESAW_STRIDES,
    HEAD_CHANNELS,
    IGCV3_D_STAGES,
    MOBILENETV2_STAGES,
    SEESAW_EVEN_FROM_CHANNELS,
    STEM_CHANNELS,
)
from space.spaces import SearchSpace, TrialLike, register_space
from space.spec import (
    ArchSpec,
    AttentionSpec,
    HeadSpec,
    InvertedResidualSpec,
    StageSpec,
    StemSpec,
    parse_split,
)

# The skeleton is the references' (space/references/mobile.py owns the stage tables and strides).
WIDTHS = tuple(s.channels for s in MOBILENETV2_STAGES)
SEED_EXPANSIONS = tuple(s.expansion for s in MOBILENETV2_STAGES)
REPEATS_05D = tuple(s.repeats for s in MOBILENETV2_STAGES)  # MobileNetV2 repeats ("0.5D")
REPEATS_10D = tuple(s.repeats for s in IGCV3_D_STAGES)  # IGCV3-D repeats ("1.0D")
# Seesaw CIFAR strides, where the two CIFAR stride lists agree; where they differ (the 160 stage:
# Seesaw 1, IGCV3 project 2) the stride is a choice (None).
STRIDES = tuple(a if a == b else None for a, b in zip(CIFAR_SEESAW_STRIDES, CIFAR_IGCV3_STRIDES))
STEM, HEAD, DROPOUT = STEM_CHANNELS, HEAD_CHANNELS, CIFAR_DROPOUT

EXPANSIONS = (1, 2, 3, 4, 6)
SPLITS = ("1", "1/2:1/2", "1/4:3/4", "3/4:1/4", "1/8:7/8", "7/8:1/8", "1/4:1/4:1/2", "1/2:1/4:1/4", "1/4:1/4:1/4:1/4")
SHUFFLES = ("none", "pw1", "dw", "pw2")
SHUFFLE_GROUPS = (2, 4)
ACTS = ("none", "relu6")
KERNELS = (3, 5)
ATTENTIONS = ("none", "se", "cbam", "gc", "sge", "srm", "eca")
REDUCED_ATTENTIONS = ("se", "cbam", "gc")  # those with a reduction ratio
REDUCTIONS = (4, 8, 16)
SGE_GROUPS = 8  # divides every width here (all multiples of 8); the ResNet default 64 would not
WIDTH_MULTS = (0.75, 1.0, 1.25)


def make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNet's rounding: nearest multiple of ``divisor``, never more than 10% below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@register_space
class SeesawSpace(SearchSpace):
    name = "seesaw"
    description = "inverted-residual blocks (MobileNetV2 / IGCV3 / Seesaw-Net) on the Seesaw CIFAR skeleton"

    # -- sampling: every suggest call of this space is in this method and the two below
    def sample(self, trial: TrialLike) -> ArchSpec:
        width_mult = trial.suggest_categorical("width_mult", WIDTH_MULTS)
        stride_160 = trial.suggest_categorical("stride_160", (1, 2))
        keep_pw1 = trial.suggest_categorical("keep_pw1_t1", (True, False))
        widths = [make_divisible(w * width_mult) for w in WIDTHS]
        split_memo: dict[str, tuple[str, str]] = {}

        def splits(input_index: int) -> tuple[str, str]:
            prefix = "block" if self.shared_block else f"in{input_index}"
            if prefix not in split_memo:  # ask once: a plain RandomTrial would answer anew
                split_memo[prefix] = (
                    trial.suggest_categorical(f"{prefix}_pw1_split", SPLITS),
                    trial.suggest_categorical(f"{prefix}_pw2_split", SPLITS),
                )
            return split_memo[prefix]

        shared = self._block_choices(trial, "block") if self.shared_block else None
        stages = []
        for i, width in enumerate(widths):
            choices = shared or self._block_choices(trial, f"s{i + 1}")
            low, high = REPEATS_05D[i], REPEATS_10D[i]
            repeats = trial.suggest_int(f"s{i + 1}_repeats", low, high) if high > low else low
            block = _block(choices, splits(i + 1) if repeats > 1 else None, keep_pw1)
            first = _block(choices, splits(i), keep_pw1)
            stages.append(StageSpec(
                out_channels=width,
                repeats=repeats,
                stride=STRIDES[i] if STRIDES[i] is not None else stride_160,
                block=block if block is not None else first,
                first_block=first,
            ))
        return ArchSpec(
            stem=StemSpec(channels=make_divisible(STEM * width_mult), kernel=3, stride=1, act="relu6"),
            stages=tuple(stages),
            head=HeadSpec(channels=HEAD, act="relu6", dropout=DROPOUT),
        ).validate()

    @staticmethod
    def _block_choices(trial: TrialLike, prefix: str) -> dict[str, Any]:
        c: dict[str, Any] = {
            "expansion": trial.suggest_categorical(f"{prefix}_expansion", EXPANSIONS),
            "pw1_act": trial.suggest_categorical(f"{prefix}_pw1_act", ACTS),
            "dw_kernel": trial.suggest_categorical(f"{prefix}_dw_kernel", KERNELS),
            "shuffle": trial.suggest_categorical(f"{prefix}_shuffle", SHUFFLES),
            "attention": trial.suggest_categorical(f"{prefix}_attention", ATTENTIONS),
        }
        c["shuffle_groups"] = 2
        c["unshuffle_pw2"] = False
        if c["shuffle"] != "none":
            c["shuffle_groups"] = trial.suggest_categorical(f"{prefix}_shuffle_groups", SHUFFLE_GROUPS)
        if c["shuffle"] in ("pw1", "dw"):
            c["unshuffle_pw2"] = trial.suggest_categorical(f"{prefix}_unshuffle_pw2", (False, True))
        c["reduction"] = 16
        if c["attention"] in REDUCED_ATTENTIONS:
            c["reduction"] = trial.suggest_categorical(f"{prefix}_attention_reduction", REDUCTIONS)
        return c

    # -- size and references
    def size(self) -> int:
        shuffle_options = 1 + len(SHUFFLE_GROUPS) + 2 * len(SHUFFLE_GROUPS) * 2  # none, pw2, pw1/dw (+unshuffle)
        attention_options = len(ATTENTIONS) - len(REDUCED_ATTENTIONS) + len(REDUCED_ATTENTIONS) * len(REDUCTIONS)
        block = len(EXPANSIONS) * len(ACTS) * len(KERNELS) * shuffle_options * attention_options
        repeats = 1
        for low, high in zip(REPEATS_05D, REPEATS_10D):
            repeats *= high - low + 1
        split_pairs = len(SPLITS) ** 2
        n_blocks, n_split_sets = (1, 1) if self.shared_block else (len(WIDTHS), len(WIDTHS))
        return len(WIDTH_MULTS) * 2 * 2 * block**n_blocks * repeats * split_pairs**n_split_sets

    def smallest_params(self) -> dict[str, Any]:
        # t=1 without pw1, four equal groups (1/4 of a dense 1x1), no attention, shortest, 4x4 map
        block = dict(expansion=1, pw1_act="none", dw_kernel=3, shuffle="none", attention="none")
        p: dict[str, Any] = {"width_mult": min(WIDTH_MULTS), "stride_160": 2, "keep_pw1_t1": False}
        prefixes = ["block"] if self.shared_block else [f"s{i + 1}" for i in range(len(WIDTHS))]
        splits = ["block"] if self.shared_block else [f"in{i}" for i in range(len(WIDTHS))]
        for prefix in prefixes:
            p.update({f"{prefix}_{k}": v for k, v in block.items()})
        for prefix in splits:
            p[f"{prefix}_pw1_split"] = p[f"{prefix}_pw2_split"] = "1/4:1/4:1/4:1/4"
        for i, (low, high) in enumerate(zip(REPEATS_05D, REPEATS_10D)):
            if high > low:
                p[f"s{i + 1}_repeats"] = low
        return p

    def reference_params(self) -> dict[str, dict[str, Any]]:
        suffix = self.reference_suffix
        refs = {
            f"seesaw_1.0d_{suffix}": _params(self.shared_block, "seesaw", REPEATS_10D),
            f"seesaw_0.5d_{suffix}": _params(self.shared_block, "seesaw", REPEATS_05D),
            f"igcv3_1.0d_{suffix}": _params(self.shared_block, "igcv3", REPEATS_10D),
            f"igcv3_0.5d_{suffix}": _params(self.shared_block, "igcv3", REPEATS_05D),
            f"mobilenetv2_{suffix}": _params(self.shared_block, "mobilenetv2", REPEATS_05D),
        }
        return {name: p for name, p in refs.items() if p is not None}


def _block(c: dict[str, Any], splits: tuple[str, str] | None, keep_pw1: bool) -> InvertedResidualSpec | None:
    if splits is None:
        return None
    attention = None if c["attention"] == "none" else AttentionSpec(
        c["attention"], reduction=c["reduction"], groups=SGE_GROUPS)
    return InvertedResidualSpec(
        expansion=c["expansion"],
        pw1_split=parse_split(splits[0]),
        pw2_split=parse_split(splits[1]),
        pw1_act=c["pw1_act"],
        dw_kernel=c["dw_kernel"],
        shuffle=c["shuffle"],
        shuffle_groups=c["shuffle_groups"],
        unshuffle_pw2=c["unshuffle_pw2"],
        keep_pw1=keep_pw1,
        attention=attention,
    )


def _params(shared: bool, family: str, repeats: tuple[int, ...]) -> dict[str, Any] | None:
    """Trial parameters of a seed network (None if it is no point of the shared-block space)."""
    block = {
        "seesaw": dict(pw1_act="none", shuffle="pw1", shuffle_groups=2, unshuffle_pw2=False),
        "igcv3": dict(pw1_act="none", shuffle="pw1", shuffle_groups=2, unshuffle_pw2=True),
        "mobilenetv2": dict(pw1_act="relu6", shuffle="none"),
    }[family]
    block.update(dw_kernel=3, attention="none")
    expansions = SEED_EXPANSIONS
    if family == "seesaw":  # uneven where the block's input has < 160 channels (inputs 32 .. 96)
        input_widths = (STEM,) + WIDTHS  # index i: input from the stem (0) or from stage i
        split = {i: "1/4:3/4" if input_widths[i] < SEESAW_EVEN_FROM_CHANNELS else "1/2:1/2"
                 for i in range(len(WIDTHS))}
    else:
        split = {i: "1/2:1/2" if family == "igcv3" else "1" for i in range(len(WIDTHS))}
    p: dict[str, Any] = {
        "width_mult": 1.0,
        # the IGCV3 project's CIFAR MobileNetV2 strides the 160 stage, Seesaw's paper does not
        "stride_160": (CIFAR_IGCV3_STRIDES if family == "mobilenetv2" else CIFAR_SEESAW_STRIDES)[STRIDES.index(None)],
        "keep_pw1_t1": True,
    }
    if shared:
        if len(set(split.values())) > 1 or len(set(expansions)) > 1:
            return None  # the seeds use two block types (or t=1 and t=6): not one shared block
        p.update({f"block_{k}": v for k, v in block.items()})
        p.update(block_expansion=expansions[0], block_pw1_split=split[0], block_pw2_split=split[0])
    else:
        for i in range(len(WIDTHS)):
            p.update({f"s{i + 1}_{k}": v for k, v in block.items()})
            p[f"s{i + 1}_expansion"] = expansions[i]
            p[f"in{i}_pw1_split"] = p[f"in{i}_pw2_split"] = split[i]
    for i, r in enumerate(repeats):
        if REPEATS_10D[i] > REPEATS_05D[i]:
            p[f"s{i + 1}_repeats"] = r
    return p
