"""The stem/head bias fields: round trip, checked types, and canonical keys unchanged at defaults."""

import pytest

from space import ArchSpec, HeadSpec, SpecError, StemSpec
from space.references import get_reference


def test_defaults_are_left_out_so_earlier_keys_stay():
    spec = get_reference("mobilenetv2_imagenet").spec
    d = spec.to_dict()
    assert "conv_bias" not in d["stem"] and "conv_bias" not in d["head"] and "classifier_bias" not in d["head"]
    # the key of a spec written before the fields existed is the key of the same spec now
    assert ArchSpec.from_dict(d).canonical_key() == spec.canonical_key()


@pytest.mark.parametrize("name", ["shufflenetv2_1.0_imagenet", "weightnet_shufflenetv2_1.0_imagenet"])
def test_non_default_biases_round_trip(name):
    spec = get_reference(name).spec
    again = ArchSpec.from_yaml(spec.to_yaml())
    assert again == spec and again.canonical_key() == spec.canonical_key()
    assert (spec.head.classifier_bias, spec.head.conv_bias, spec.stem.conv_bias) in ((False, False, False),
                                                                                     (True, True, True))


def test_bias_fields_are_checked_and_canonical():
    d = get_reference("shufflenetv2_1.0_imagenet").spec.to_dict()
    d["head"]["classifier_bias"] = 1
    with pytest.raises(SpecError, match=r"^head.classifier_bias: expected true or false, got 1$"):
        ArchSpec.from_dict(d)
    assert HeadSpec(channels=0, conv_bias=True) == HeadSpec(channels=0)  # no head conv, no bias for it
    assert StemSpec(conv_bias=True) != StemSpec()
