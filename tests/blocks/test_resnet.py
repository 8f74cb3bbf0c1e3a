"""ResNet blocks: forward/backward, shortcut and stride placement, SK* mixing, ResNet-50 cost."""

import pytest
import torch
import torch.nn as nn

from blocks import build_block, build_model, count_cost, count_module_cost
from blocks.resnet import BasicBlock, Bottleneck, SKConv
from space.references import get_reference
from space.spec import AttentionSpec, BasicBlockSpec, BottleneckSpec


def forward_backward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.requires_grad_()
    y = block(x)
    y.sum().backward()
    assert torch.isfinite(y).all()
    assert torch.isfinite(x.grad).all()
    missing = [n for n, p in block.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"
    return y


class Zero(nn.Module):
    def forward(self, x):
        return torch.zeros_like(x)


@pytest.mark.parametrize("conv,attention", [("dense", None), ("sk", None), ("dense", "se"), ("sk", "cbam")])
@pytest.mark.parametrize("in_ch,out_ch,stride", [(64, 256, 1), (256, 256, 1), (256, 512, 2)])
def test_bottleneck_forward_backward(conv, attention, in_ch, out_ch, stride):
    spec = BottleneckSpec(conv=conv, attention=AttentionSpec(attention) if attention else None)
    torch.manual_seed(0)
    block = build_block(spec, in_ch, out_ch, stride).train()
    y = forward_backward(block, torch.randn(2, in_ch, 8, 8))
    assert y.shape == (2, out_ch, 8 // stride, 8 // stride)


@pytest.mark.parametrize("attention", [None, "se", "eca"])
@pytest.mark.parametrize("in_ch,out_ch,stride", [(64, 64, 1), (64, 128, 2)])
def test_basic_forward_backward(attention, in_ch, out_ch, stride):
    spec = BasicBlockSpec(attention=AttentionSpec(attention) if attention else None)
    block = build_block(spec, in_ch, out_ch, stride).train()
    y = forward_backward(block, torch.randn(2, in_ch, 8, 8))
    assert y.shape == (2, out_ch, 8 // stride, 8 // stride)


@pytest.mark.parametrize("in_ch,out_ch,stride,projects", [
    (256, 256, 1, False), (64, 256, 1, True), (256, 512, 2, True), (512, 512, 2, True),
])
def test_bottleneck_downsample_only_when_needed(in_ch, out_ch, stride, projects):
    block = Bottleneck(in_ch, out_ch, stride)
    if not projects:
        assert isinstance(block.downsample, nn.Identity)
    else:
        conv = block.downsample[0]
        assert (conv.kernel_size, conv.stride) == ((1, 1), (stride, stride))
        assert (conv.in_channels, conv.out_channels) == (in_ch, out_ch)
        assert isinstance(block.downsample[1], nn.BatchNorm2d)


@pytest.mark.parametrize("in_ch,out_ch,stride,projects", [(64, 64, 1, False), (64, 128, 1, True), (64, 64, 2, True)])
def test_basic_downsample_only_when_needed(in_ch, out_ch, stride, projects):
    block = BasicBlock(in_ch, out_ch, stride)
    assert isinstance(block.downsample, nn.Identity) != projects


def test_bottleneck_v1_5_strides_on_the_3x3():
    block = Bottleneck(256, 512, 2)
    assert block.conv1[0].stride == (1, 1)
    assert block.conv2[0].stride == (2, 2) and block.conv2[0].kernel_size == (3, 3)
    assert block.conv3[0].stride == (1, 1)
    assert block.conv2[0].out_channels == 128  # mid = out / 4


def test_resnext_groups_and_width_come_from_the_spec():
    block = build_block(BottleneckSpec(groups=32, base_width=4), 256, 256, 1)
    assert block.conv2[0].groups == 32 and block.conv2[0].out_channels == 128


def test_attention_sits_on_the_residual_branch_before_the_add():
    # With an attention that zeroes its input, the block reduces to relu(shortcut(x)).
    block = Bottleneck(256, 256, 1, attention=Zero()).eval()
    x = torch.randn(2, 256, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(x))
    block = Bottleneck(64, 256, 2, attention=Zero()).eval()
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(block.downsample(x)))


# ----------------------------------------------------------------------------- SK*


def test_sk_branches_and_fuse_layers():
    sk = Bottleneck(256, 512, 2, conv="sk").conv2
    assert isinstance(sk, SKConv)
    dense, grouped = sk.branch_dense[0], sk.branch_grouped[0]
    assert (dense.groups, grouped.groups) == (1, 32)
    assert dense.stride == grouped.stride == (2, 2)
    assert (sk.fuse[0].in_channels, sk.fuse[0].out_channels, sk.fuse[0].bias) == (128, 8, None)
    assert (sk.select.in_channels, sk.select.out_channels, sk.select.bias) == (8, 256, None)


def test_sk_branch_weights_sum_to_one_and_mix_the_branches():
    torch.manual_seed(0)
    sk = SKConv(64, stride=1).eval()
    x = torch.randn(3, 64, 6, 6)
    with torch.no_grad():
        a, b = sk.branch_dense(x), sk.branch_grouped(x)
        w = sk.branch_weights(a + b)
        y = sk(x)
    assert w.shape == (3, 2, 64, 1, 1)
    assert ((w > 0) & (w < 1)).all()
    torch.testing.assert_close(w.sum(dim=1), torch.ones(3, 64, 1, 1))
    torch.testing.assert_close(y, a * w[:, 0] + b * w[:, 1])


# ----------------------------------------------------------------------------- whole network


def test_resnet50_macs_are_about_4_09g():
    # REFERENCE_MODELS.md: "our MAC count for ResNet-50 is about 4.09G" (conv/linear/matmul only).
    ref = get_reference("resnet50_imagenet")
    cost = count_cost(ref.spec, ref.num_classes, ref.input_size)
    assert round(cost.macs / 1e9, 2) == 4.09


def test_resnet50_matches_torchvision_exactly():
    torchvision = pytest.importorskip("torchvision")
    ref = get_reference("resnet50_imagenet")
    with torch.device("meta"):
        theirs = torchvision.models.resnet50()
    assert count_module_cost(theirs, 224) == count_cost(ref.spec, ref.num_classes, ref.input_size)


@pytest.mark.parametrize("variant", ["", "se_", "cbam_", "bam_", "sk_", "sge_", "gc_"])
def test_resnet50_variants_run_and_meta_cost_equals_real_cost(variant):
    # A small input keeps the real forward cheap; the counts must not depend on the device.
    ref = get_reference(f"{variant}resnet50_imagenet")
    torch.manual_seed(0)
    model = build_model(ref.spec, ref.num_classes).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 1000) and torch.isfinite(out).all()
    assert count_module_cost(model, 64) == count_cost(ref.spec, ref.num_classes, 64)
