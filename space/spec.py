"""The architecture spec: a network as plain, frozen, validated data.

One spec describes one network exactly (concrete channel counts, no multipliers left to apply):

    ArchSpec
      stem:   StemSpec          conv kxk + BN + act (+ optional 3x3/s2 max-pool)
      stages: tuple[StageSpec]  out_channels, repeats, stride of the first block, the block,
                                an optional different first block, an optional post-stage attention
      head:   HeadSpec          optional conv1x1 + BN + act, global pool, dropout, FC

Blocks are a tagged union on ``kind``: ``inverted_residual`` (MobileNetV2 / IGCV3 / Seesaw-Net),
``shuffle_unit`` (ShuffleNetV2, optionally with WeightNet dynamic convs), ``bottleneck`` and
``basic`` (ResNet v1.5). A block spec holds no channel counts or stride: the stage provides those,
so one block can be shared by every stage ("the block" of a search).

The spec round-trips through plain dicts (and so YAML / JSON) losslessly, and ``canonical_key``
names an architecture independently of how it was written down. No torch here: specs cross process
boundaries (Ray workers, Optuna storage, YAML export) and must stay cheap to import.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar, Mapping, Union

import yaml

__all__ = [
    "ACTIVATIONS",
    "ATTENTION_KINDS",
    "ArchSpec",
    "AttentionSpec",
    "BasicBlockSpec",
    "BlockSpec",
    "BottleneckSpec",
    "HeadSpec",
    "InvertedResidualSpec",
    "ShuffleUnitSpec",
    "SpecError",
    "StageSpec",
    "StemSpec",
    "WeightNetSpec",
    "format_split",
    "parse_split",
    "split_channels",
]

ACTIVATIONS = ("none", "relu", "relu6", "hswish")
ATTENTION_KINDS = ("se", "cbam", "bam", "gc", "sge", "srm", "eca")
SHUFFLE_POSITIONS = ("none", "pw1", "dw", "pw2")

Split = tuple[Fraction, ...]


class SpecError(ValueError):
    """A spec field holds a value that cannot describe a network; the message names the field."""


def _fail(path: str, message: str) -> None:
    raise SpecError(f"{path}: {message}")


# ----------------------------------------------------------------------------- group splits


def parse_split(value: Any, path: str = "split") -> Split:
    """Parse a group split: ``"1"``, ``"1/4:3/4"``, ``[0.25, 0.75]`` or ``["1/2", "1/2"]``.

    Fractions must be positive and sum to exactly 1.
    """
    if isinstance(value, str):
        return _parse_split_text(value, path)
    return _parse_split(value, path)


@functools.lru_cache(maxsize=1024)  # Fraction arithmetic is slow, and a space parses the same few texts per sample
def _parse_split_text(value: str, path: str) -> Split:
    return _parse_split(value, path)


def _parse_split(value: Any, path: str) -> Split:
    if isinstance(value, str):
        parts: list[Any] = [p for p in value.replace(",", ":").split(":")]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    elif isinstance(value, (int, float, Fraction)):
        parts = [value]
    else:
        _fail(path, f"expected a split like '1/4:3/4' or a list of fractions, got {value!r}")
    try:
        # limit_denominator turns float input such as 0.75 back into 3/4.
        fracs = tuple(Fraction(str(p).strip()).limit_denominator(1024) for p in parts)
    except (ValueError, ZeroDivisionError):
        _fail(path, f"cannot read {value!r} as fractions; write it like '1/4:3/4'")
    if not fracs or any(f <= 0 for f in fracs):
        _fail(path, f"every fraction must be > 0, got {value!r}")
    if sum(fracs) != 1:
        _fail(path, f"fractions must sum to 1, but {value!r} sums to {sum(fracs)}")
    return fracs


def format_split(split: Split) -> str:
    """``(1/4, 3/4) -> "1/4:3/4"``; the dense split is ``"1"``."""
    return ":".join(str(f) for f in split)


def split_channels(channels: int, split: Split) -> tuple[int, ...] | None:
    """Channel count of each contiguous slice, or None when a slice is not a whole number."""
    return _split_channels(channels, tuple(split))


@functools.lru_cache(maxsize=1 << 14)  # Fraction arithmetic is slow, and every validate() asks again
def _split_channels(channels: int, split: Split) -> tuple[int, ...] | None:
    sizes = [channels * f for f in split]
    if any(s.denominator != 1 or s == 0 for s in sizes):
        return None
    return tuple(int(s) for s in sizes)


def _check_split_fits(split: Split, channels: int, path: str) -> None:
    if split_channels(channels, split) is None:
        _fail(
            path,
            f"split {format_split(split)} of {channels} channels does not give whole, non-empty "
            f"channel counts; choose channels divisible by {max(f.denominator for f in split)} "
            "or another split",
        )


# ----------------------------------------------------------------------------- parts


def _added(default: bool) -> Any:
    """A field added after canonical keys were published: ``to_dict`` leaves it out while it holds
    its default, so the keys (and result caches) of every spec written before it stay the same."""
    return field(default=default, metadata={"omit_at_default": True})


def _check_choice(value: str, choices: tuple[str, ...], path: str) -> None:
    if value not in choices:
        _fail(path, f"unknown value {value!r}; valid: {', '.join(choices)}")


def _check_positive(value: Any, path: str, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(path, f"expected an integer, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        _fail(path, f"expected {'>= 0' if allow_zero else '> 0'}, got {value}")


@dataclass(frozen=True)
class AttentionSpec:
    """An attention module (PytorchInsight family + ECA); ``channels`` come from the block.

    reduction: hidden = channels // reduction (SE, CBAM, BAM, GC). groups: SGE groups.
    kernel: ECA's 1-D conv kernel (0 = adaptive, from the ECA paper's formula).
    """

    kind: str
    reduction: int = 16
    groups: int = 64
    kernel: int = 0

    def __post_init__(self) -> None:
        # Canonical form: fields the kind does not use keep their defaults, so that equal modules
        # have equal specs (and canonical keys).
        if self.kind not in ("se", "cbam", "bam", "gc"):
            object.__setattr__(self, "reduction", 16)
        if self.kind != "sge":
            object.__setattr__(self, "groups", 64)
        if self.kind != "eca":
            object.__setattr__(self, "kernel", 0)

    def validate(self, path: str = "attention") -> None:
        _check_choice(self.kind, ATTENTION_KINDS, f"{path}.kind")
        _check_positive(self.reduction, f"{path}.reduction")
        _check_positive(self.groups, f"{path}.groups")
        _check_positive(self.kernel, f"{path}.kernel", allow_zero=True)
        if self.kernel and self.kernel % 2 == 0:
            _fail(f"{path}.kernel", f"ECA's kernel must be odd (or 0 for adaptive), got {self.kernel}")

    def check_channels(self, channels: int, path: str) -> None:
        if self.kind in ("se", "cbam", "bam", "gc") and channels // self.reduction < 1:
            _fail(f"{path}.reduction", f"{channels} channels // reduction {self.reduction} is 0")
        if self.kind == "sge" and channels % self.groups:
            _fail(f"{path}.groups", f"SGE groups {self.groups} must divide {channels} channels")


@dataclass(frozen=True)
class WeightNetSpec:
    """WeightNet dynamic convs (Ma et al. 2020): M = fc1 expansion, G = fc2 grouping."""

    M: int = 2
    G: int = 2

    def validate(self, path: str = "weightnet") -> None:
        _check_positive(self.M, f"{path}.M")
        _check_positive(self.G, f"{path}.G")
        if self.M % self.G:
            _fail(path, f"M must be a multiple of G for the depthwise generator, got M={self.M}, G={self.G}")


@dataclass(frozen=True)
class StemSpec:
    channels: int = 32
    kernel: int = 3
    stride: int = 1
    act: str = "relu6"
    maxpool: bool = False  # 3x3 stride-2 max-pool after the conv (ShuffleNetV2, ResNet)
    conv_bias: bool = _added(False)  # the conv carries a bias (WeightNet's MegEngine code)

    def validate(self, path: str = "stem") -> None:
        _check_positive(self.channels, f"{path}.channels")
        _check_positive(self.kernel, f"{path}.kernel")
        _check_positive(self.stride, f"{path}.stride")
        _check_choice(self.act, ACTIVATIONS, f"{path}.act")


@dataclass(frozen=True)
class HeadSpec:
    channels: int = 1280  # conv1x1 + BN + act before pooling; 0 = no head conv (ResNet)
    act: str = "relu6"
    dropout: float = 0.0
    conv_bias: bool = _added(False)  # the head conv carries a bias (WeightNet's MegEngine code)
    classifier_bias: bool = _added(True)  # False: megvii's ShuffleNetV2 has a bias-free FC

    def __post_init__(self) -> None:
        if not self.channels:  # canonical form: no head conv, no bias for it
            object.__setattr__(self, "conv_bias", False)

    def validate(self, path: str = "head") -> None:
        _check_positive(self.channels, f"{path}.channels", allow_zero=True)
        _check_choice(self.act, ACTIVATIONS, f"{path}.act")
        if not 0.0 <= self.dropout < 1.0:
            _fail(f"{path}.dropout", f"expected 0 <= dropout < 1, got {self.dropout}")


# ----------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class InvertedResidualSpec:
    """MobileNetV2 / IGCV3 / Seesaw-Net block: pw1 -> [shuffle] -> dw -> [shuffle] -> pw2 -> [shuffle].

    pw1_split / pw2_split: group widths as channel fractions on contiguous slices
    ("1" dense, "1/2:1/2" IGCV3, "1/4:3/4" Seesaw). shuffle: where a channel shuffle of
    ``shuffle_groups`` groups goes; unshuffle_pw2: IGCV3's inverse shuffle after pw2.
    keep_pw1: whether a t=1 block keeps its expansion conv (official MobileNetV2 drops it).
    """

    kind: ClassVar[str] = "inverted_residual"
    expansion: int = 6
    pw1_split: Split = (Fraction(1),)
    pw2_split: Split = (Fraction(1),)
    pw1_act: str = "relu6"
    dw_kernel: int = 3
    dw_act: str = "relu6"
    shuffle: str = "none"
    shuffle_groups: int = 2
    unshuffle_pw2: bool = False
    keep_pw1: bool = True
    attention: AttentionSpec | None = None

    def __post_init__(self) -> None:
        # Canonical form (see AttentionSpec): unused knobs take their defaults.
        if self.shuffle == "none" and not self.unshuffle_pw2:
            object.__setattr__(self, "shuffle_groups", 2)
        if self.expansion != 1:
            object.__setattr__(self, "keep_pw1", True)
        elif not self.keep_pw1:
            object.__setattr__(self, "pw1_act", "relu6")
            object.__setattr__(self, "pw1_split", (Fraction(1),))

    def has_pw1(self) -> bool:
        return self.expansion != 1 or self.keep_pw1

    def validate(self, in_ch: int, out_ch: int, stride: int, path: str) -> None:
        _check_positive(self.expansion, f"{path}.expansion")
        _check_choice(self.pw1_act, ACTIVATIONS, f"{path}.pw1_act")
        _check_choice(self.dw_act, ACTIVATIONS, f"{path}.dw_act")
        _check_choice(self.shuffle, SHUFFLE_POSITIONS, f"{path}.shuffle")
        if self.dw_kernel not in (3, 5, 7):
            _fail(f"{path}.dw_kernel", f"expected 3, 5 or 7, got {self.dw_kernel}")
        hidden = in_ch * self.expansion
        if self.has_pw1():
            _check_split_fits(self.pw1_split, in_ch, f"{path}.pw1_split")
            _check_split_fits(self.pw1_split, hidden, f"{path}.pw1_split")
        elif len(self.pw1_split) != 1:
            _fail(f"{path}.pw1_split", "a t=1 block without pw1 (keep_pw1=false) must use the dense split '1'")
        _check_split_fits(self.pw2_split, hidden, f"{path}.pw2_split")
        _check_split_fits(self.pw2_split, out_ch, f"{path}.pw2_split")
        if self.shuffle != "none" or self.unshuffle_pw2:
            _check_positive(self.shuffle_groups, f"{path}.shuffle_groups")
            if self.shuffle_groups < 2:
                _fail(f"{path}.shuffle_groups", f"a shuffle needs >= 2 groups, got {self.shuffle_groups}")
        if self.shuffle in ("pw1", "dw") and hidden % self.shuffle_groups:
            _fail(f"{path}.shuffle_groups", f"{self.shuffle_groups} groups do not divide {hidden} hidden channels")
        if (self.shuffle == "pw2" or self.unshuffle_pw2) and out_ch % self.shuffle_groups:
            _fail(f"{path}.shuffle_groups", f"{self.shuffle_groups} groups do not divide {out_ch} output channels")
        if self.attention is not None:
            self.attention.validate(f"{path}.attention")
            self.attention.check_channels(out_ch, f"{path}.attention")


@dataclass(frozen=True)
class ShuffleUnitSpec:
    """ShuffleNetV2 unit. layout: 'megvii' (official; projection keeps C_in) or 'torchvision'
    (each branch c/2). split: identity fraction of a stride-1 unit. shuffle_groups: the shuffle
    after the concat (0 = none). attention: on the concatenated output, before the shuffle
    (SE-ShuffleNetV2). weightnet: every conv of the unit becomes a WeightNet dynamic conv.
    """

    kind: ClassVar[str] = "shuffle_unit"
    layout: str = "megvii"
    split: Split = (Fraction(1, 2), Fraction(1, 2))
    dw_kernel: int = 3
    shuffle_groups: int = 2
    attention: AttentionSpec | None = None
    weightnet: WeightNetSpec | None = None

    def branch_channels(self, in_ch: int, out_ch: int, stride: int) -> tuple[int, int]:
        """(projection/identity output channels, main-branch output channels)."""
        if stride == 1:
            keep = int(in_ch * self.split[0])
            return keep, out_ch - keep
        if self.layout == "megvii":
            return in_ch, out_ch - in_ch
        return out_ch // 2, out_ch - out_ch // 2

    def validate(self, in_ch: int, out_ch: int, stride: int, path: str) -> None:
        _check_choice(self.layout, ("megvii", "torchvision"), f"{path}.layout")
        if len(self.split) != 2:
            _fail(f"{path}.split", f"a shuffle unit splits into 2 parts, got {format_split(self.split)}")
        if self.dw_kernel not in (3, 5, 7):
            _fail(f"{path}.dw_kernel", f"expected 3, 5 or 7, got {self.dw_kernel}")
        _check_positive(self.shuffle_groups, f"{path}.shuffle_groups", allow_zero=True)
        if stride == 1:
            if in_ch != out_ch:
                _fail(path, f"a stride-1 shuffle unit keeps its width, got {in_ch} -> {out_ch}")
            _check_split_fits(self.split, in_ch, f"{path}.split")
        proj, main = self.branch_channels(in_ch, out_ch, stride)
        if main <= 0 or proj <= 0:
            _fail(path, f"{in_ch} -> {out_ch} channels leave no room for the main branch ({self.layout} layout)")
        if self.shuffle_groups > 1 and out_ch % self.shuffle_groups:
            _fail(f"{path}.shuffle_groups", f"{self.shuffle_groups} groups do not divide {out_ch} channels")
        if self.attention is not None:
            self.attention.validate(f"{path}.attention")
            self.attention.check_channels(out_ch, f"{path}.attention")
        if self.weightnet is not None:
            self.weightnet.validate(f"{path}.weightnet")
            # WeightNet's fc2 cuts the kernel of each generated 1x1 conv into G groups of inputs:
            # the main-branch input (at stride 2 also the projection's) and its middle (out // 2,
            # as in the official code).
            g = self.weightnet.G
            for what, ch in (("main-branch input", in_ch - proj if stride == 1 else in_ch),
                             ("main-branch middle", out_ch // 2)):
                if ch % g:
                    _fail(f"{path}.weightnet.G", f"G={g} must divide the {ch} channels of the {what} "
                          "(WeightNet's fc2 splits each 1x1 kernel into G groups); choose G or widths accordingly")


@dataclass(frozen=True)
class BottleneckSpec:
    """ResNet v1.5 bottleneck (stride on the 3x3). mid = out_channels // expansion * groups *
    base_width / 64. conv: 'dense' 3x3 or 'sk' (the SK* two-branch 3x3 of PytorchInsight)."""

    kind: ClassVar[str] = "bottleneck"
    expansion: int = 4
    groups: int = 1
    base_width: int = 64
    conv: str = "dense"
    attention: AttentionSpec | None = None

    def mid_channels(self, out_ch: int) -> int:
        return out_ch // self.expansion * self.base_width // 64 * self.groups

    def validate(self, in_ch: int, out_ch: int, stride: int, path: str) -> None:
        _check_positive(self.expansion, f"{path}.expansion")
        _check_positive(self.groups, f"{path}.groups")
        _check_positive(self.base_width, f"{path}.base_width")
        _check_choice(self.conv, ("dense", "sk"), f"{path}.conv")
        mid = self.mid_channels(out_ch)
        if mid <= 0 or mid % self.groups:
            _fail(f"{path}.groups", f"{self.groups} groups do not divide {mid} mid channels")
        if self.conv == "sk" and mid % 32:
            _fail(f"{path}.conv", f"SK*'s grouped branch uses 32 groups, which do not divide {mid} channels")
        if self.attention is not None:
            self.attention.validate(f"{path}.attention")
            self.attention.check_channels(out_ch, f"{path}.attention")


@dataclass(frozen=True)
class BasicBlockSpec:
    """ResNet basic block (two 3x3 convs)."""

    kind: ClassVar[str] = "basic"
    attention: AttentionSpec | None = None

    def validate(self, in_ch: int, out_ch: int, stride: int, path: str) -> None:
        if self.attention is not None:
            self.attention.validate(f"{path}.attention")
            self.attention.check_channels(out_ch, f"{path}.attention")


BlockSpec = Union[InvertedResidualSpec, ShuffleUnitSpec, BottleneckSpec, BasicBlockSpec]
BLOCK_KINDS: dict[str, type] = {
    cls.kind: cls for cls in (InvertedResidualSpec, ShuffleUnitSpec, BottleneckSpec, BasicBlockSpec)
}


# ----------------------------------------------------------------------------- stages, network


@dataclass(frozen=True)
class StageSpec:
    """``repeats`` blocks to ``out_channels``; the first has stride ``stride``.

    first_block: a different block for the stage's first unit (e.g. Seesaw-Net uses the uneven
    block where the input has < 160 channels, which differs from the rest of the 160 stage).
    post_attention: a module after the whole stage (BAM sits at stage boundaries).
    """

    out_channels: int
    repeats: int
    stride: int
    block: BlockSpec
    first_block: BlockSpec | None = None
    post_attention: AttentionSpec | None = None

    def blocks(self) -> list[tuple[BlockSpec, int]]:
        """(block spec, stride) of each unit of the stage."""
        first = self.first_block if self.first_block is not None else self.block
        return [(first, self.stride)] + [(self.block, 1)] * (self.repeats - 1)


@dataclass(frozen=True)
class ArchSpec:
    """A whole network. ``build_model(spec, num_classes)`` in ``blocks`` turns it into a module."""

    stem: StemSpec
    stages: tuple[StageSpec, ...]
    head: HeadSpec = field(default_factory=HeadSpec)

    def __post_init__(self) -> None:
        # Canonical form: a first_block equal to the block is no override at all.
        stages = tuple(
            dataclasses.replace(s, first_block=None) if s.first_block == s.block else s
            for s in self.stages
        )
        object.__setattr__(self, "stages", stages)

    # -- validation
    def validate(self) -> "ArchSpec":
        """Raise SpecError naming the first field that cannot describe a network; return self."""
        self.stem.validate("stem")
        if not self.stages:
            _fail("stages", "a network needs at least one stage")
        in_ch = self.stem.channels
        for i, stage in enumerate(self.stages):
            p = f"stages[{i}]"
            _check_positive(stage.out_channels, f"{p}.out_channels")
            _check_positive(stage.repeats, f"{p}.repeats")
            _check_positive(stage.stride, f"{p}.stride")
            if stage.stride not in (1, 2):
                _fail(f"{p}.stride", f"expected 1 or 2, got {stage.stride}")
            for j, (block, stride) in enumerate(stage.blocks()):
                name = "first_block" if j == 0 and stage.first_block is not None else "block"
                if type(block) not in BLOCK_KINDS.values():
                    _fail(f"{p}.{name}", f"expected a block spec, got {type(block).__name__}")
                block.validate(in_ch, stage.out_channels, stride, f"{p}.{name}")
                in_ch = stage.out_channels
            if stage.post_attention is not None:
                stage.post_attention.validate(f"{p}.post_attention")
                stage.post_attention.check_channels(stage.out_channels, f"{p}.post_attention")
        self.head.validate("head")
        return self

    def total_stride(self) -> int:
        s = self.stem.stride * (2 if self.stem.maxpool else 1)
        for stage in self.stages:
            s *= stage.stride
        return s

    def num_blocks(self) -> int:
        return sum(s.repeats for s in self.stages)

    # -- serialisation
    def to_dict(self) -> dict[str, Any]:
        """A plain dict (str/int/float/bool/list/dict/None only), the inverse of ``from_dict``."""
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ArchSpec":
        """Build and validate a spec from ``to_dict`` output (or hand-written YAML)."""
        if not isinstance(data, Mapping):
            _fail("spec", f"expected a mapping with stem, stages and head, got {type(data).__name__}")
        _known_keys(data, ("stem", "stages", "head"), "spec")
        if "stages" not in data:
            _fail("stages", "missing; a spec needs a list of stages")
        stages_raw = data["stages"]
        if not isinstance(stages_raw, (list, tuple)):
            _fail("stages", f"expected a list, got {type(stages_raw).__name__}")
        stages = tuple(_stage_from_dict(s, f"stages[{i}]") for i, s in enumerate(stages_raw))
        spec = cls(
            stem=_simple_from_dict(StemSpec, data.get("stem", {}), "stem"),
            stages=stages,
            head=_simple_from_dict(HeadSpec, data.get("head", {}), "head"),
        )
        return spec.validate()

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> "ArchSpec":
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError(f"spec: not valid YAML ({str(exc).splitlines()[0]})") from None
        if isinstance(data, Mapping) and "spec" in data and "stages" not in data:
            data = data["spec"]  # an exported file: metrics and provenance around the spec
        return cls.from_dict(data)

    def canonical_key(self) -> str:
        """A short stable id: equal architectures (however written) get the same key."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- dict helpers


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        out: dict[str, Any] = {}
        kind = getattr(type(obj), "kind", None)
        if isinstance(kind, str):
            out["kind"] = kind
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.metadata.get("omit_at_default") and value == f.default:
                continue
            out[f.name] = _to_plain(value)
        return out
    if isinstance(obj, tuple) and obj and all(isinstance(x, Fraction) for x in obj):
        return format_split(obj)
    if isinstance(obj, (tuple, list)):
        return [_to_plain(x) for x in obj]
    return obj


def _known_keys(data: Mapping[str, Any], allowed: tuple[str, ...] | list[str], path: str) -> None:
    unknown = [k for k in data if k not in allowed]
    if unknown:
        _fail(f"{path}.{unknown[0]}", f"unknown field; valid fields: {', '.join(allowed)}")


_SPLIT_FIELDS = {"pw1_split", "pw2_split", "split"}
_NESTED = {"attention": AttentionSpec, "post_attention": AttentionSpec, "weightnet": WeightNetSpec}


# The codec is hand-written on purpose, not pydantic (installed here, but no requirement of ours):
# - ``space`` is imported by every Ray worker, the CLI and the Optuna adapter and must stay light,
#   with no dependency beyond the standard library (pyyaml only for YAML);
# - the specs are plain frozen dataclasses with ``Fraction`` splits, canonicalising
#   ``__post_init__``s and a tagged block union; pydantic would need its own models or adapters and
#   a translation of its error reports into our one-line "field.path: expected ..., got ..." form;
# - what it replaces is small: type checks for four scalar types (``_coerce``), split parsing and
#   two nested kinds, about 60 lines with the error messages.
# Field annotations are strings here (``from __future__ import annotations``), so a scalar field's
# ``dataclasses.Field.type`` is its type's name ("int", "bool", ...); ``_SCALARS`` lists the ones
# ``_coerce`` checks, and every other field is handled by name (splits, nested specs).
_SCALARS = ("bool", "int", "float", "str")


def _simple_from_dict(cls: type, data: Any, path: str) -> Any:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        _fail(path, f"expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if "kind" not in fields:  # blocks carry their kind as a class constant, used to pick the class
        data = {k: v for k, v in data.items() if k != "kind"}
    _known_keys(data, list(fields), path)
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        sub = f"{path}.{name}"
        if name in _SPLIT_FIELDS:
            kwargs[name] = parse_split(value, sub)
        elif name in _NESTED:
            kwargs[name] = _simple_from_dict(_NESTED[name], value, sub)
        else:
            type_name = fields[name].type
            assert type_name in _SCALARS, f"{cls.__name__}.{name}: no decoder for type {type_name!r}"
            kwargs[name] = _coerce(value, type_name, sub)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - guarded by _known_keys
        raise SpecError(f"{path}: {exc}") from None


def _coerce(value: Any, type_name: str, path: str) -> Any:
    if type_name == "bool":
        if not isinstance(value, bool):
            _fail(path, f"expected true or false, got {value!r}")
    elif type_name == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(path, f"expected an integer, got {value!r}")
    elif type_name == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(path, f"expected a number, got {value!r}")
        return float(value)
    elif type_name == "str":
        if not isinstance(value, str):
            _fail(path, f"expected a string, got {value!r}")
    return value


def _block_from_dict(data: Any, path: str) -> BlockSpec:
    if not isinstance(data, Mapping):
        _fail(path, f"expected a mapping with a 'kind', got {data!r}")
    kind = data.get("kind")
    if kind not in BLOCK_KINDS:
        _fail(f"{path}.kind", f"unknown block kind {kind!r}; valid: {', '.join(BLOCK_KINDS)}")
    return _simple_from_dict(BLOCK_KINDS[kind], data, path)


def _stage_from_dict(data: Any, path: str) -> StageSpec:
    if not isinstance(data, Mapping):
        _fail(path, f"expected a mapping, got {data!r}")
    allowed = ("out_channels", "repeats", "stride", "block", "first_block", "post_attention")
    _known_keys(data, allowed, path)
    for required in ("out_channels", "repeats", "stride", "block"):
        if required not in data:
            _fail(f"{path}.{required}", "missing")
    for name in ("out_channels", "repeats", "stride"):
        _coerce(data[name], "int", f"{path}.{name}")
    first = data.get("first_block")
    return StageSpec(
        out_channels=data["out_channels"],
        repeats=data["repeats"],
        stride=data["stride"],
        block=_block_from_dict(data["block"], f"{path}.block"),
        first_block=None if first is None else _block_from_dict(first, f"{path}.first_block"),
        post_attention=_simple_from_dict(AttentionSpec, data.get("post_attention"), f"{path}.post_attention"),
    )
