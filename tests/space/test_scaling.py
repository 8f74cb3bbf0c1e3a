"""space.scaling.scale_width: scaled widths stay close to the target and keep every split valid."""

from fractions import Fraction

import pytest

from space.scaling import scale_width
from space.spec import (
    ArchSpec, AttentionSpec, BottleneckSpec, HeadSpec, InvertedResidualSpec, ShuffleUnitSpec, SpecError,
    StageSpec, StemSpec
)

Q = (Fraction(1, 4), Fraction(3, 4))
H = (Fraction(1, 2), Fraction(1, 2))
UNEVEN = InvertedResidualSpec(expansion=6, pw1_split=Q, pw2_split=Q, pw1_act="none", shuffle="pw1")
EVEN = InvertedResidualSpec(expansion=6, pw1_split=H, pw2_split=H, pw1_act="none", shuffle="pw1")


def seesaw_like() -> ArchSpec:
    """The Seesaw-Net CIFAR skeleton (0.5D repeats): uneven blocks below 160 input channels."""
    table = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 1), (6, 320, 1, 1)]
    stages = []
    for t, c, n, s in table:
        uneven = InvertedResidualSpec(**{**UNEVEN.__dict__, "expansion": t})
        block = uneven if c < 160 else InvertedResidualSpec(**{**EVEN.__dict__, "expansion": t})
        stages.append(StageSpec(out_channels=c, repeats=n, stride=s, block=block, first_block=uneven))
    return ArchSpec(stem=StemSpec(channels=32), stages=tuple(stages), head=HeadSpec(channels=1280, dropout=0.5)).validate()


def widths(spec: ArchSpec) -> list[int]:
    return [spec.stem.channels] + [s.out_channels for s in spec.stages] + [spec.head.channels]


@pytest.mark.parametrize("factor", [0.25, 0.37, 0.5, 0.75, 1.3, 2.0])
def test_seesaw_scales_to_valid_widths_near_the_target(factor):
    spec = seesaw_like()
    scaled = scale_width(spec, factor)
    scaled.validate()
    for old, new in zip(widths(spec), widths(scaled)):
        assert abs(new - old * factor) <= 4, (old, new, factor)  # within one step of the /4 splits
    assert all(w % 4 == 0 for w in widths(scaled)[1:-1])
    assert [s.repeats for s in scaled.stages] == [s.repeats for s in spec.stages]
    assert scaled.stages[-1].block == spec.stages[-1].block  # blocks untouched


def test_factor_one_returns_the_spec_itself():
    spec = seesaw_like()
    assert scale_width(spec, 1.0) is spec


@pytest.mark.parametrize("factor", [0, -1, float("nan"), float("inf"), True, "0.5"])
def test_bad_factor_is_a_spec_error(factor):
    with pytest.raises(SpecError, match="width factor: expected a finite number > 0"):
        scale_width(seesaw_like(), factor)


def test_shufflenet_stride_one_units_keep_their_width_and_groups():
    unit = ShuffleUnitSpec(layout="megvii", shuffle_groups=2)
    spec = ArchSpec(
        stem=StemSpec(channels=24, stride=2, act="relu", maxpool=True),
        stages=(
            StageSpec(out_channels=116, repeats=4, stride=2, block=unit),
            StageSpec(out_channels=232, repeats=8, stride=2, block=unit),
        ),
        head=HeadSpec(channels=1024, act="relu"),
    ).validate()
    scaled = scale_width(spec, 0.3)
    assert [s.out_channels % 2 for s in scaled.stages] == [0, 0]
    assert scaled.stages[0].out_channels > scaled.stem.channels  # megvii: room for the main branch


def test_sge_groups_and_bottleneck_expansion_are_respected():
    block = BottleneckSpec(attention=AttentionSpec(kind="sge", groups=8))
    spec = ArchSpec(
        stem=StemSpec(channels=64, act="relu"),
        stages=(StageSpec(out_channels=256, repeats=2, stride=1, block=block),),
        head=HeadSpec(channels=0),
    ).validate()
    scaled = scale_width(spec, 0.3)
    assert scaled.stages[0].out_channels % 8 == 0 and scaled.head.channels == 0


def test_tiny_factor_still_gives_a_valid_network():
    scaled = scale_width(seesaw_like(), 0.01)
    assert min(widths(scaled)) >= 4


def test_every_reference_network_scales():
    from space.references import REFERENCES

    for name, ref in REFERENCES.items():
        for factor in (0.25, 0.5, 1.5):
            scaled = scale_width(ref.spec, factor)
            assert scaled.num_blocks() == ref.spec.num_blocks(), name
