"""Architecture specs, named search spaces and the reference networks of the seed papers.

Nothing here imports torch: specs are plain data that cross process boundaries.
"""

from space.spec import (
    ACTIVATIONS,
    ATTENTION_KINDS,
    ArchSpec,
    AttentionSpec,
    BasicBlockSpec,
    BlockSpec,
    BottleneckSpec,
    HeadSpec,
    InvertedResidualSpec,
    ShuffleUnitSpec,
    SpecError,
    StageSpec,
    StemSpec,
    WeightNetSpec,
    format_split,
    parse_split,
    split_channels,
)

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
