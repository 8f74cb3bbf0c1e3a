"""blocks.convert: ecosystem state dicts load into our models, and a mismatch is named in one line."""

import pytest
import torch
import torchvision

from blocks import build_model
from blocks.convert import ECOSYSTEM_MODELS, convert_state_dict, ecosystem_spec, load_ecosystem_weights
from space.references import get_reference


def test_loaded_weights_are_the_sources_in_order():
    theirs = torchvision.models.mobilenet_v2(weights=None)
    ours = build_model(get_reference("mobilenetv2_imagenet").spec, 1000)
    load_ecosystem_weights(ours, theirs.state_dict())
    for (tk, t), (ok, o) in zip(theirs.state_dict().items(), ours.state_dict().items(), strict=True):
        assert torch.equal(t, o), (tk, ok)


def test_a_different_architecture_fails_with_one_line_naming_the_first_mismatch():
    theirs = torchvision.models.resnet50(weights=None).state_dict()
    ours = build_model(get_reference("se_resnet50_imagenet").spec, 1000)
    with pytest.raises(ValueError) as err:
        load_ecosystem_weights(ours, theirs)
    msg = str(err.value)
    assert "\n" not in msg
    # torchvision's first downsample conv meets our first SE layer
    assert "'layer1.0.downsample.0.weight'" in msg and "'stages.0.0.attention.fc1.weight'" in msg


def test_a_missing_tail_and_an_unknown_source_are_named():
    theirs = torchvision.models.shufflenet_v2_x0_5(weights=None).state_dict()
    del theirs["fc.bias"]
    ours = build_model(ecosystem_spec("torchvision", "shufflenet_v2_x0_5"), 1000)
    with pytest.raises(ValueError, match="ours has 'classifier.bias' more"):
        convert_state_dict(theirs, ours)
    with pytest.raises(ValueError, match="unknown source 'keras'; valid: torchvision, timm"):
        convert_state_dict(theirs, ours, "keras")
    with pytest.raises(ValueError, match="no spec known for torchvision model 'vgg16'"):
        ecosystem_spec("torchvision", "vgg16")


def test_class_count_mismatch_is_a_shape_error():
    theirs = torchvision.models.resnet50(weights=None, num_classes=10).state_dict()
    ours = build_model(get_reference("resnet50_imagenet").spec, 1000)
    with pytest.raises(ValueError, match=r"'fc.weight' \(10, 2048\) does not fit our 'classifier.weight' \(1000, 2048\)"):
        load_ecosystem_weights(ours, theirs)


@pytest.mark.parametrize("source, name", sorted(k for k in ECOSYSTEM_MODELS if k[0] == "torchvision"))
def test_every_listed_torchvision_model_loads(source, name):
    theirs = getattr(torchvision.models, name)(weights=None)
    load_ecosystem_weights(build_model(ecosystem_spec(source, name), 1000), theirs.state_dict(), source)


@pytest.mark.parametrize("source, name", sorted(k for k in ECOSYSTEM_MODELS if k[0] == "timm"))
def test_every_listed_timm_model_loads(source, name):
    timm = pytest.importorskip("timm")
    theirs = timm.create_model(name, pretrained=False)
    load_ecosystem_weights(build_model(ecosystem_spec(source, name), 1000), theirs.state_dict(), source)
