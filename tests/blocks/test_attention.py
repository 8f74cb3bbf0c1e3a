"""Every registered attention module: shape, gradients, finiteness; plus what each must do at init."""

import pytest
import torch
import torch.nn as nn

import blocks.attention.modules  # noqa: F401  (registers every kind)
from blocks.attention import ATTENTION_MODULES, create_attention
from blocks.attention.modules import CBAM, ECA, GC, SE, SGE, eca_kernel
from space.spec import ATTENTION_KINDS, AttentionSpec

KINDS = sorted(ATTENTION_MODULES)
C = 128


def make(kind: str, channels: int = C) -> nn.Module:
    torch.manual_seed(0)
    return create_attention(AttentionSpec(kind), channels)


def test_registry_covers_every_spec_kind():
    assert set(KINDS) == set(ATTENTION_KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_forward_keeps_shape_and_backward_reaches_every_parameter(kind):
    module = make(kind).train()
    x = torch.randn(2, C, 8, 6, requires_grad=True)
    y = module(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()
    (y * torch.randn_like(y)).sum().backward()
    assert torch.isfinite(x.grad).all()
    missing = [name for name, p in module.named_parameters() if p.grad is None]
    assert not missing, f"{kind}: no gradient for {missing}"
    assert all(torch.isfinite(p.grad).all() for p in module.parameters())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [7, 1])
def test_batch_of_one_in_eval_mode(kind, size):
    module = make(kind).eval()
    x = torch.randn(1, C, size, size)
    with torch.no_grad():
        y = module(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("kind", KINDS)
def test_runs_on_the_meta_device(kind):
    # count_cost builds and runs networks on the meta device.
    with torch.device("meta"):
        module = make(kind).eval()
        y = module(torch.zeros(1, C, 7, 7))
    assert y.shape == (1, C, 7, 7)


def test_unknown_kind_lists_the_valid_ones():
    with pytest.raises(ValueError) as err:
        create_attention(AttentionSpec("nope"), C)
    for kind in KINDS:
        assert kind in str(err.value)


def test_none_gives_identity():
    assert isinstance(create_attention(None, C), nn.Identity)


def test_reduction_too_large_is_an_error():
    with pytest.raises(ValueError, match="reduction"):
        SE(8, reduction=16)


# ----------------------------------------------------------------------------- SE


@pytest.mark.parametrize("channels", [64, 256, 2048])
def test_se_parameter_count(channels):
    hidden = channels // 16
    module = create_attention(AttentionSpec("se"), channels)
    assert sum(p.numel() for p in module.parameters()) == 2 * channels * hidden + hidden + channels


def test_se_output_is_input_times_a_gate_in_0_1():
    module = make("se").eval()
    x = torch.randn(2, C, 5, 5)
    with torch.no_grad():
        gate = module.gate(x)
        y = module(x)
    assert gate.shape == (2, C, 1, 1)
    assert ((gate > 0) & (gate < 1)).all()
    torch.testing.assert_close(y, x * gate)


# ----------------------------------------------------------------------------- CBAM, BAM


def test_cbam_spatial_gate_is_a_7x7_conv_over_2_channels_with_bn():
    module = make("cbam")
    assert isinstance(module, CBAM)
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1
    assert convs[0].weight.shape == (1, 2, 7, 7)
    assert convs[0].bias is None
    assert any(isinstance(m, nn.BatchNorm2d) and m.num_features == 1 for m in module.modules())


def test_cbam_channel_mlp_is_shared_between_avg_and_max_pool():
    # One MLP (as SE): CBAM = SE's parameters + 7x7x2 conv weights + the spatial BN's 2.
    se, cbam = make("se"), make("cbam")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(cbam) == count(se) + 2 * 7 * 7 + 2


def test_bam_scales_between_one_and_two():
    module = make("bam").eval()
    x = torch.rand(2, C, 9, 9) + 0.1
    with torch.no_grad():
        ratio = module(x) / x
    assert (ratio >= 1).all() and (ratio <= 2).all()


# ----------------------------------------------------------------------------- SGE, GC, ECA


def test_sge_at_init_scales_everything_by_sigmoid_1():
    module = make("sge")
    assert isinstance(module, SGE)
    assert (module.weight == 0).all() and (module.bias == 1).all()
    x = torch.randn(2, C, 6, 6)
    torch.testing.assert_close(module(x), x * torch.sigmoid(torch.tensor(1.0)))


def test_sge_has_two_parameters_per_group():
    module = create_attention(AttentionSpec("sge", groups=32), C)
    assert sum(p.numel() for p in module.parameters()) == 2 * 32


def test_gc_at_init_is_the_identity():
    module = make("gc")
    assert isinstance(module, GC)
    x = torch.randn(2, C, 6, 6)
    torch.testing.assert_close(module(x), x)


def test_gc_context_weights_positions_by_a_softmax():
    module = make("gc")
    x = torch.randn(2, C, 4, 4)
    ctx = module.context(x)
    assert ctx.shape == (2, C, 1, 1)
    # A convex combination of positions lies within each channel's range.
    flat = x.flatten(2)
    assert (ctx.flatten(1) <= flat.amax(2) + 1e-5).all() and (ctx.flatten(1) >= flat.amin(2) - 1e-5).all()


@pytest.mark.parametrize("channels,k", [(64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7)])
def test_eca_adaptive_kernel(channels, k):
    # k = |log2(C)/2 + 1/2| made odd (ECA-Net, gamma=2, b=1).
    assert eca_kernel(channels) == k
    module = create_attention(AttentionSpec("eca"), channels)
    assert isinstance(module, ECA)
    assert module.conv.weight.shape == (1, 1, k)
    assert module.conv.bias is None


def test_eca_explicit_kernel():
    module = create_attention(AttentionSpec("eca", kernel=9), C)
    assert module.conv.weight.shape == (1, 1, 9)
