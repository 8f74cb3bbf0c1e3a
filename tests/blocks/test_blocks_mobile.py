"""Uneven pointwise convs, channel shuffle, inverted-residual and shuffle units, WeightNet convs."""

from fractions import Fraction

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from blocks import build_block, count_module_cost, create_attention
from blocks.inverted_residual import InvertedResidual
from blocks.pointwise import UnevenPointwise
from blocks.shuffle import ChannelShuffle, ChannelUnshuffle, channel_shuffle
from blocks.shufflenet import ShuffleUnit
from blocks.weightnet import WeightNetConv, WeightNetDWConv, WeightNetGap
from space.references.mobile import igcv3_block, mobilenetv2_block, seesaw_block, seesaw_rule
from space.spec import AttentionSpec, InvertedResidualSpec, ShuffleUnitSpec, SpecError, WeightNetSpec, parse_split


# ----------------------------------------------------------------------------- UnevenPointwise

SPLITS = ["1", "1/2:1/2", "1/4:3/4", "3/4:1/4", "1/4:1/4:1/2", "1/4:1/4:1/4:1/4"]


@pytest.mark.parametrize(
    "split, cost_in_16ths",
    [("1", 16), ("1/2:1/2", 8), ("1/4:3/4", 1 + 9), ("1/4:1/4:1/2", 1 + 1 + 4), ("1/4:1/4:1/4:1/4", 4)],
)
def test_pointwise_costs_the_sum_of_squared_fractions(split, cost_in_16ths):
    in_ch, out_ch, size = 32, 64, 8
    dense = count_module_cost(nn.Conv2d(in_ch, out_ch, 1, bias=False), size, in_channels=in_ch)
    cost = count_module_cost(UnevenPointwise(in_ch, out_ch, parse_split(split)), size, in_channels=in_ch)
    assert cost.macs * 16 == dense.macs * cost_in_16ths
    assert cost.params * 16 == dense.params * cost_in_16ths


def _dense_equivalent(pw: UnevenPointwise, in_ch: int, out_ch: int) -> torch.Tensor:
    """The block-diagonal dense 1x1 weight that ``pw`` computes."""
    weight = torch.zeros(out_ch, in_ch, 1, 1)
    blocks = (
        torch.split(pw.convs[0].weight, pw.out_sizes, dim=0) if len(pw.convs) == 1
        else [conv.weight for conv in pw.convs]
    )
    i0 = o0 = 0
    for block, i, o in zip(blocks, pw.in_sizes, pw.out_sizes):
        weight[o0:o0 + o, i0:i0 + i] = block
        i0, o0 = i0 + i, o0 + o
    return weight


@pytest.mark.parametrize("split", SPLITS)
def test_pointwise_equals_block_diagonal_dense_conv(split):
    torch.manual_seed(0)
    in_ch, out_ch = 16, 48
    pw = UnevenPointwise(in_ch, out_ch, parse_split(split))
    x = torch.randn(2, in_ch, 5, 5)
    expected = F.conv2d(x, _dense_equivalent(pw, in_ch, out_ch))
    torch.testing.assert_close(pw(x), expected)


@pytest.mark.parametrize("split, convs, groups", [("1", 1, 1), ("1/2:1/2", 1, 2), ("1/3:1/3:1/3", 1, 3), ("1/4:3/4", 2, 1)])
def test_even_splits_run_as_one_grouped_conv(split, convs, groups):
    pw = UnevenPointwise(24, 48, parse_split(split))
    assert len(pw.convs) == convs
    assert all(c.groups == groups for c in pw.convs)


def test_pointwise_rejects_fractional_slices():
    with pytest.raises(ValueError, match="divisible by 4"):
        UnevenPointwise(6, 12, parse_split("1/4:3/4"))


# ----------------------------------------------------------------------------- shuffle


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]


@pytest.mark.parametrize("channels, groups", [(12, 2), (12, 3), (12, 4), (24, 6), (10, 2)])
def test_unshuffle_inverts_shuffle(channels, groups):
    x = torch.randn(2, channels, 3, 3)
    torch.testing.assert_close(ChannelUnshuffle(groups)(ChannelShuffle(groups)(x)), x, rtol=0, atol=0)
    torch.testing.assert_close(ChannelShuffle(groups)(ChannelUnshuffle(groups)(x)), x, rtol=0, atol=0)


def test_shuffle_rejects_groups_not_dividing_channels():
    with pytest.raises(ValueError, match="groups dividing"):
        channel_shuffle(torch.zeros(1, 10, 2, 2), 3)


# ----------------------------------------------------------------------------- block variants

WN = WeightNetSpec(M=2, G=2)
# (id, spec, in_ch, out_ch, stride)
BLOCK_CASES = [
    ("mbv2", mobilenetv2_block(6), 16, 16, 1),
    ("mbv2-s2", mobilenetv2_block(6), 16, 24, 2),
    ("mbv2-t1-no-pw1", mobilenetv2_block(1, keep_pw1=False), 16, 8, 1),
    ("mbv2-t1-pw1", mobilenetv2_block(1), 16, 8, 1),
    ("igcv3", igcv3_block(6), 16, 16, 1),
    ("igcv3-relu-s2", igcv3_block(6, pw1_act="relu6"), 16, 24, 2),
    ("seesaw-uneven", seesaw_block(6, uneven=True), 16, 16, 1),
    ("seesaw-even-s2", seesaw_block(6, uneven=False), 16, 32, 2),
    ("ir-shuffle-dw-k5", InvertedResidualSpec(expansion=3, pw1_split=parse_split("1/4:3/4"), shuffle="dw",
                                               shuffle_groups=4, dw_kernel=5, dw_act="hswish"), 16, 16, 1),
    ("ir-shuffle-pw2", InvertedResidualSpec(expansion=4, pw2_split=parse_split("1/2:1/2"), shuffle="pw2"), 8, 16, 1),
    ("shuffle-s1", ShuffleUnitSpec(), 16, 16, 1),
    ("shuffle-s2", ShuffleUnitSpec(), 16, 32, 2),
    ("shuffle-tv-s2", ShuffleUnitSpec(layout="torchvision"), 16, 32, 2),
    ("shuffle-uneven-noshuffle", ShuffleUnitSpec(split=parse_split("1/4:3/4"), shuffle_groups=0), 16, 16, 1),
    ("weightnet-s1", ShuffleUnitSpec(weightnet=WN), 16, 16, 1),
    ("weightnet-s2", ShuffleUnitSpec(weightnet=WN), 16, 32, 2),
    ("weightnet-tv-s2-M4", ShuffleUnitSpec(layout="torchvision", weightnet=WeightNetSpec(M=4, G=2)), 16, 32, 2),
]


def _se_available() -> bool:
    try:
        create_attention(AttentionSpec("se"), 16)
    except ValueError:
        return False
    return True


ATTENTION_CASES = [
    ("ir-se", InvertedResidualSpec(attention=AttentionSpec("se", reduction=4)), 16, 16, 1),
    ("shuffle-se-s2", ShuffleUnitSpec(attention=AttentionSpec("se", reduction=4)), 16, 32, 2),
]


def _check_forward_backward(spec, in_ch, out_ch, stride):
    torch.manual_seed(0)
    block = build_block(spec, in_ch, out_ch, stride).train()
    x = torch.randn(2, in_ch, 8, 8, requires_grad=True)
    out = block(x)
    assert out.shape == (2, out_ch, 8 // stride, 8 // stride)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [n for n, p in block.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    assert all(torch.isfinite(p.grad).all() for p in block.parameters())
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("case", BLOCK_CASES, ids=[c[0] for c in BLOCK_CASES])
def test_block_forward_backward_reaches_every_parameter(case):
    _, spec, in_ch, out_ch, stride = case
    spec.validate(in_ch, out_ch, stride, "block")
    _check_forward_backward(spec, in_ch, out_ch, stride)


@pytest.mark.parametrize("case", ATTENTION_CASES, ids=[c[0] for c in ATTENTION_CASES])
def test_block_with_attention_forward_backward(case):
    if not _se_available():
        pytest.skip("SE is not registered in this checkout yet")
    _, spec, in_ch, out_ch, stride = case
    _check_forward_backward(spec, in_ch, out_ch, stride)


def test_t1_block_without_pw1_has_no_expansion_conv():
    kept = InvertedResidual(mobilenetv2_block(1), 16, 16, 1)
    dropped = InvertedResidual(mobilenetv2_block(1, keep_pw1=False), 16, 16, 1)
    assert isinstance(dropped.pw1, nn.Identity) and not isinstance(kept.pw1, nn.Identity)
    assert sum(p.numel() for p in kept.parameters()) - sum(p.numel() for p in dropped.parameters()) == 16 * 16 + 2 * 16


# ----------------------------------------------------------------------------- residual


@pytest.mark.parametrize(
    "in_ch, out_ch, stride, residual",
    [(16, 16, 1, True), (16, 24, 1, False), (16, 16, 2, False), (16, 32, 2, False)],
)
@pytest.mark.parametrize("spec", [mobilenetv2_block(6), igcv3_block(6), seesaw_block(6, uneven=True)],
                         ids=["mbv2", "igcv3", "seesaw"])
def test_residual_exactly_when_stride_1_and_same_width(spec, in_ch, out_ch, stride, residual):
    block = InvertedResidual(spec, in_ch, out_ch, stride).eval()
    assert block.use_residual == residual
    # Zero the last BN: the branch then outputs 0, so the block outputs x (residual) or 0.
    bn = block.pw2[1]
    nn.init.zeros_(bn.weight)
    nn.init.zeros_(bn.bias)
    x = torch.randn(2, in_ch, 8, 8)
    with torch.no_grad():
        out = block(x)
    if residual:
        torch.testing.assert_close(out, x)
    else:
        assert out.shape[1] == out_ch and torch.count_nonzero(out) == 0


def test_seesaw_rule_switches_to_even_blocks_at_160_input_channels():
    rule = seesaw_rule()
    assert rule(96, 6).pw1_split == (Fraction(1, 4), Fraction(3, 4))
    assert rule(159, 6).pw2_split == (Fraction(1, 4), Fraction(3, 4))
    assert rule(160, 6).pw1_split == (Fraction(1, 2), Fraction(1, 2))


# ----------------------------------------------------------------------------- WeightNet


def _samples_separately(fn, x):
    return torch.cat([fn(x[i : i + 1]) for i in range(x.shape[0])])


@pytest.mark.parametrize("kernel, stride", [(1, 1), (3, 1), (3, 2)])
def test_weightnet_conv_batch_equals_each_sample_alone(kernel, stride):
    torch.manual_seed(0)
    gap = WeightNetGap(12)
    conv = WeightNetConv(12, 10, kernel, stride, gap.out_channels)
    x = torch.randn(3, 12, 7, 7)

    def run(xs):
        return conv(xs, gap(xs))

    torch.testing.assert_close(run(x), _samples_separately(run, x))


@pytest.mark.parametrize("stride", [1, 2])
def test_weightnet_dw_conv_batch_equals_each_sample_alone(stride):
    torch.manual_seed(0)
    gap = WeightNetGap(12)
    conv = WeightNetDWConv(12, 3, stride, gap.out_channels)
    x = torch.randn(3, 12, 7, 7)

    def run(xs):
        return conv(xs, gap(xs))

    torch.testing.assert_close(run(x), _samples_separately(run, x))


def test_weightnet_batch_of_one_is_the_generated_static_conv():
    torch.manual_seed(0)
    conv = WeightNetConv(8, 6, 3, 1, gap_channels=16)
    x, x_gap = torch.randn(1, 8, 5, 5), torch.randn(1, 16, 1, 1)
    weight = conv.fc2(torch.sigmoid(conv.fc1(x_gap))).reshape(6, 8, 3, 3)
    torch.testing.assert_close(conv(x, x_gap), F.conv2d(x, weight, padding=1))


@pytest.mark.parametrize("stride", [1, 2])
def test_weightnet_unit_batch_equals_each_sample_alone(stride):
    torch.manual_seed(0)
    unit = ShuffleUnit(ShuffleUnitSpec(weightnet=WN), 16, 16 * stride, stride).eval()
    x = torch.randn(3, 16, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(unit(x), _samples_separately(unit, x))


def test_weightnet_macs_are_the_static_conv_plus_its_generator():
    inp, oup, k, size, gap_ch, M, G = 16, 24, 3, 6, 16, 2, 2
    conv = WeightNetConv(inp, oup, k, 1, gap_ch, M, G)

    class WithGap(nn.Module):
        def forward(self, x):
            return conv(x, x.mean(dim=(2, 3), keepdim=True)[:, :gap_ch])

    wrapper = WithGap()
    wrapper.conv = conv
    cost = count_module_cost(wrapper, size, in_channels=inp)
    static = oup * inp * k * k * size * size
    fc1 = gap_ch * M * oup
    fc2 = M * oup * (oup * inp * k * k) // (G * oup)
    assert cost.macs == static + fc1 + fc2
    # M = G: fc2 holds exactly as many weights as the static kernel.
    assert conv.fc2.weight.numel() == oup * inp * k * k


def test_weightnet_unit_shares_one_gap_reduction():
    unit = ShuffleUnit(ShuffleUnitSpec(weightnet=WN), 64, 128, 2)
    assert sum(isinstance(m, WeightNetGap) for m in unit.modules()) == 1
    generated = [m for m in unit.modules() if isinstance(m, (WeightNetConv, WeightNetDWConv))]
    assert len(generated) == 5  # main 1x1, dw, 1x1 and projection dw, 1x1
    assert all(m.fc1.in_channels == unit.gap.out_channels == 16 for m in generated)
    assert not any(isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1) for m in unit.modules())


# ----------------------------------------------------------------------------- shuffle unit widths


@pytest.mark.parametrize(
    "layout, in_ch, out_ch, proj_out, main_out",
    [("megvii", 24, 116, 24, 92), ("torchvision", 24, 116, 58, 58), ("megvii", 116, 232, 116, 116)],
)
def test_stride2_unit_branch_widths_follow_layout(layout, in_ch, out_ch, proj_out, main_out):
    unit = ShuffleUnit(ShuffleUnitSpec(layout=layout), in_ch, out_ch, 2)
    assert unit.project[-1].conv.out_channels == proj_out
    assert unit.main[-1].conv.out_channels == main_out
    assert unit.main[0].conv.out_channels == out_ch // 2  # mid = out // 2, as in both official codes


@pytest.mark.parametrize(
    "spec, in_ch, out_ch, stride",
    [
        (ShuffleUnitSpec(split=parse_split("1/4:3/4"), weightnet=WN), 244, 244, 1),  # main input 183
        (ShuffleUnitSpec(weightnet=WeightNetSpec(M=4, G=4)), 24, 116, 2),  # middle 58
    ],
)
def test_weightnet_groups_must_divide_generated_conv_inputs(spec, in_ch, out_ch, stride):
    with pytest.raises(SpecError, match="weightnet.G"):
        spec.validate(in_ch, out_ch, stride, "block")
    with pytest.raises(ValueError, match="WeightNet needs G dividing"):
        build_block(spec, in_ch, out_ch, stride)
