"""The spec: validation names the field, dict/YAML round trips are lossless, keys are canonical."""

from fractions import Fraction as F

import pytest

from space import (
    ArchSpec, AttentionSpec, HeadSpec, InvertedResidualSpec, ShuffleUnitSpec, SpecError, StageSpec, StemSpec,
    format_split, parse_split, split_channels
)

SEESAW = InvertedResidualSpec(pw1_split=(F(1, 4), F(3, 4)), pw2_split=(F(1, 4), F(3, 4)), pw1_act="none", shuffle="pw1")


def small_spec(block=SEESAW, **stage_kw) -> ArchSpec:
    return ArchSpec(
        stem=StemSpec(channels=32),
        stages=(StageSpec(16, 1, 1, block, **stage_kw), StageSpec(32, 2, 2, block)),
        head=HeadSpec(channels=64, dropout=0.5),
    )


@pytest.mark.parametrize("text, expected", [
    ("1", (F(1),)), ("1/4:3/4", (F(1, 4), F(3, 4))), ([0.25, 0.75], (F(1, 4), F(3, 4))),
    (["1/4", "1/4", "1/2"], (F(1, 4), F(1, 4), F(1, 2))), ("1/8, 7/8", (F(1, 8), F(7, 8))),
])
def test_parse_split_accepts_the_usual_spellings(text, expected):
    assert parse_split(text) == expected
    assert parse_split(format_split(expected)) == expected


@pytest.mark.parametrize("bad, words", [("1/4:1/4", "sum to 1"), ("0:1", "> 0"), ("a:b", "cannot read"), (None, "expected")])
def test_parse_split_rejects_bad_splits(bad, words):
    with pytest.raises(SpecError, match=words):
        parse_split(bad, "stages[0].block.pw1_split")


def test_split_channels_whole_channels_only():
    assert split_channels(96, (F(1, 4), F(3, 4))) == (24, 72)
    assert split_channels(16, (F(1, 8), F(7, 8))) == (2, 14)
    assert split_channels(6, (F(1, 4), F(3, 4))) is None


def test_round_trip_dict_and_yaml_is_lossless():
    spec = small_spec(post_attention=AttentionSpec("bam"))
    assert ArchSpec.from_dict(spec.to_dict()) == spec
    assert ArchSpec.from_yaml(spec.to_yaml()) == spec
    assert ArchSpec.from_yaml(spec.to_yaml()).canonical_key() == spec.canonical_key()


def test_canonical_key_ignores_spelling_and_redundant_first_block():
    a = small_spec()
    b = small_spec(first_block=SEESAW)  # same block written twice is no override
    assert a == b and a.canonical_key() == b.canonical_key()
    d = a.to_dict()
    d["stages"][0]["block"]["pw1_split"] = [0.25, 0.75]  # other spelling of the same split
    assert ArchSpec.from_dict(d).canonical_key() == a.canonical_key()
    other = small_spec(block=InvertedResidualSpec())
    assert other.canonical_key() != a.canonical_key()


def test_exported_yaml_with_metadata_is_read():
    import yaml

    spec = small_spec()
    text = yaml.safe_dump({"name": "x", "metrics": {"macs": 1}, "spec": spec.to_dict()})
    assert ArchSpec.from_yaml(text) == spec


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["stages"][0]["block"].update(pw1_split="1/3:2/3"), "stages[0].block.pw1_split"),
    (lambda d: d["stages"][0]["block"].update(shuffle_groups=5), "stages[0].block.shuffle_groups"),
    (lambda d: d["stages"][0]["block"].update(shuffle="middle"), "stages[0].block.shuffle"),
    (lambda d: d["stages"][0].update(stride=3), "stages[0].stride"),
    (lambda d: d["stages"][0].update(repeats=0), "stages[0].repeats"),
    (lambda d: d["stages"][0].update(repeats="two"), "stages[0].repeats"),
    (lambda d: d["stages"][0]["block"].update(kind="transformer"), "stages[0].block.kind"),
    (lambda d: d["stages"][0]["block"].update(width=3), "stages[0].block.width"),
    (lambda d: d["stages"][0]["block"].update(attention={"kind": "nope"}), "stages[0].block.attention.kind"),
    (lambda d: d["head"].update(dropout=1.5), "head.dropout"),
    (lambda d: d["stem"].update(act="gelu"), "stem.act"),
    (lambda d: d.pop("stages"), "stages"),
])
def test_malformed_specs_name_the_field(mutate, field):
    d = small_spec().to_dict()
    mutate(d)
    with pytest.raises(SpecError) as info:
        ArchSpec.from_dict(d)
    assert str(info.value).startswith(field), str(info.value)


def test_broken_yaml_is_a_spec_error():
    with pytest.raises(SpecError, match="not valid YAML"):
        ArchSpec.from_yaml("stages: [unclosed")


def test_shuffle_unit_branch_channels_layouts():
    unit = ShuffleUnitSpec()
    assert unit.branch_channels(24, 116, 2) == (24, 92)  # megvii: projection keeps C_in
    tv = ShuffleUnitSpec(layout="torchvision")
    assert tv.branch_channels(24, 116, 2) == (58, 58)
    assert unit.branch_channels(116, 116, 1) == (58, 58)


def test_spec_package_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, space, space.references; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unused_knobs_do_not_change_the_key():
    a = InvertedResidualSpec(shuffle="none", shuffle_groups=4)
    assert a == InvertedResidualSpec(shuffle="none")
    assert AttentionSpec("sge", reduction=4) == AttentionSpec("sge")
    assert AttentionSpec("se", reduction=4) != AttentionSpec("se")
    assert InvertedResidualSpec(expansion=6, keep_pw1=False) == InvertedResidualSpec(expansion=6)
    assert InvertedResidualSpec(expansion=1, keep_pw1=False, pw1_act="none") == InvertedResidualSpec(expansion=1, keep_pw1=False)
