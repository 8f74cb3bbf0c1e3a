"""The reference networks do what their seed code does (issue 13's defects 1-5)."""

import dataclasses

import pytest
import torch
import torchvision

from blocks import build_model
from blocks.attention.modules import BAM
from space.references import get_reference
from space.references.shufflenet import SHUFFLENETV2_WIDTHS, shufflenetv2

WIDTHS = ("0.5", "1.0", "1.5", "2.0")


def n_params(model):
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- 1. megvii routing


@pytest.mark.parametrize("width, from_projection, from_main", [
    ("0.5", 12, 12), ("1.0", 12, 46), ("1.5", 12, 76), ("2.0", 12, 110)])
def test_megvii_stride1_unit_routes_odd_channels_to_main_and_even_to_identity(width, from_projection, from_main):
    """The official unit starts with x.reshape(b*c/2, 2, hw).permute(1, 0, 2): even channels go to
    the identity, odd ones to the main branch. After the first stride-2 unit ([24 projection |
    out-24 main]) the next main branch so reads 12 projection channels and the rest main ones."""
    model = build_model(get_reference(f"shufflenetv2_{width}_imagenet").spec, 1000).eval()
    first, second = model.stages[0][0], model.stages[0][1]
    c = SHUFFLENETV2_WIDTHS[width].stages[0]
    x = torch.arange(c, dtype=torch.float32).view(1, c, 1, 1).expand(1, c, 3, 3).contiguous()
    seen = {}
    hook = second.main[0].conv.register_forward_pre_hook(lambda m, args: seen.setdefault("main", args[0]))
    with torch.no_grad():
        out = second(x)
    hook.remove()
    main_channels = seen["main"][0, :, 0, 0].long().tolist()
    assert main_channels == list(range(1, c, 2))
    assert sum(ch < 24 for ch in main_channels) == from_projection
    assert sum(ch >= 24 for ch in main_channels) == from_main
    # the identity half passes the even channels on, first, and nothing shuffles after the concat
    assert torch.equal(out[:, : c // 2], x[:, 0::2])
    # a stride-2 unit concatenates [projection (C_in) | main] with no shuffle either
    y = torch.randn(1, 24, 8, 8)
    with torch.no_grad():
        out2 = first(y)
        assert torch.equal(out2[:, :24], first.project(y)) and torch.equal(out2[:, 24:], first.main(y))


# ----------------------------------------------------------------------------- 2. megvii classifier


@pytest.mark.parametrize("width, official", list(zip(WIDTHS, (1_365_792, 2_278_760, 3_506_720, 7_402_600))))
def test_megvii_shufflenetv2_has_a_bias_free_classifier_and_the_official_count(width, official):
    model = build_model(get_reference(f"shufflenetv2_{width}_imagenet").spec, 1000)
    assert model.classifier.bias is None
    assert n_params(model) == official


# ----------------------------------------------------------------------------- 3. SE-ShuffleNetV2


def test_se_shufflenetv2_is_torchvision_layout_plus_se():
    """PytorchInsight's SE-ShuffleNetV2 = torchvision's x1.0 (branch1 1x1 inp -> oup/2, FC with
    bias) + SE r=16 (Linear with biases) on every unit's output."""
    ours = build_model(get_reference("se_shufflenetv2_1.0_imagenet").spec, 1000)
    tv = torchvision.models.shufflenet_v2_x1_0(weights=None)
    se = sum(2 * c * (c // 16) + c // 16 + c for c, n in zip((116, 232, 464), (4, 8, 4)) for _ in range(n))
    assert n_params(ours) == n_params(tv) + se
    first = ours.stages[0][0]
    assert first.project[1].conv.out_channels == 58 and first.main[2].conv.out_channels == 58


# ----------------------------------------------------------------------------- 4. WeightNet biases


@pytest.mark.parametrize("name", [f"{p}_{w}_{s}" for w in WIDTHS for p, s in
                                  (("weightnet_shufflenetv2", "imagenet"), ("shufflenetv2", "weightnet_baseline"))])
def test_weightnet_rows_keep_stem_last_conv_and_classifier_static_with_bias(name):
    ref = get_reference(name)
    model = build_model(ref.spec, 1000)
    assert model.stem[0][0].bias is not None and model.head[0].bias is not None and model.classifier.bias is not None
    bias_free = dataclasses.replace(ref.spec, stem=dataclasses.replace(ref.spec.stem, conv_bias=False),
                                    head=dataclasses.replace(ref.spec.head, conv_bias=False))
    assert n_params(model) - n_params(build_model(bias_free, 1000)) == 24 + 1024


# ----------------------------------------------------------------------------- 5. BAM


def test_bam_multiplies_its_channel_and_spatial_maps_as_the_seed_code():
    """PytorchInsight / official BAM: att = 1 + sigmoid(channel_att(x) * spatial_att(x))."""
    torch.manual_seed(0)
    bam = BAM(64).eval()
    x = torch.randn(2, 64, 9, 9)
    with torch.no_grad():
        mc = bam.channel(x.mean(dim=(2, 3)))[:, :, None, None]
        ms = bam.spatial(x)
        torch.testing.assert_close(bam(x), x * (1 + torch.sigmoid(mc * ms)), rtol=0, atol=0)
        assert not torch.allclose(bam(x), x * (1 + torch.sigmoid(mc + ms)))


def test_megvii_and_torchvision_layouts_differ_only_in_routing_at_0_5x():
    """At 0.5x both branches of a stride-2 unit have 24 channels: the layouts have equal counts."""
    from space.spec import ShuffleUnitSpec

    megvii = shufflenetv2(SHUFFLENETV2_WIDTHS["0.5"])
    tv = shufflenetv2(SHUFFLENETV2_WIDTHS["0.5"], ShuffleUnitSpec(layout="torchvision"))
    assert n_params(build_model(megvii, 1000)) == n_params(build_model(tv, 1000))
