"""timm's attention modules and ResNet-50s, configured like ours, give our outputs once their
weights are copied in (float64, max abs diff <= 1e-10); a nudged weight is detected.

"Configured alike" means constructor arguments (reduction 1/16 without rounding, CBAM's MLP with
biases, GC's 1/16 with additive fusion) and GC's LayerNorm eps set to the official 1e-5, except SK*: timm's SelectiveKernel gives both paths one groups value, so
its second path is swapped for the 32-group 3x3 that PytorchInsight's SK* uses. Source models
have random weights; nothing is downloaded.
"""

import dataclasses
from functools import partial

import pytest
from timm.layers import ConvNormAct, SelectiveKernel
from timm.layers.cbam import CbamModule
from timm.layers.eca import EcaModule
from timm.layers.global_context import GlobalContext
from timm.layers.squeeze_excite import SEModule
from timm.models.resnet import Bottleneck, ResNet
from timm.models.sknet import SelectiveKernelBottleneck

from blocks import build_model, create_attention
from blocks.convert import ecosystem_spec
from blocks.resnet import SKConv
from space.references.resnet import resnet
from space.spec import AttentionSpec
from weight_transfer import assert_equivalent

C = 64

TIMM_ATTENTION = {
    "se": partial(SEModule, rd_ratio=1 / 16, rd_divisor=1),
    "cbam": partial(CbamModule, rd_ratio=1 / 16, rd_divisor=1, mlp_bias=True),
    "gc": lambda c, **kw: timm_gc(c, **kw),
    "eca": EcaModule,
}


def timm_gc(channels, **kw):
    """timm's GlobalContext as GCNet's official block: additive fusion (timm's default scales), and
    the official nn.LayerNorm eps 1e-5 (timm's LayerNorm2d: 1e-6)."""
    gc = GlobalContext(channels, fuse_add=True, fuse_scale=False, rd_ratio=1 / 16, rd_divisor=1, **kw)
    gc.mlp_add.norm.eps = 1e-5
    return gc


def timm_sk(channels, stride):
    """timm's SelectiveKernel with two 3x3 paths, the second made PytorchInsight's 32-group one."""
    sk = SelectiveKernel(channels, channels, kernel_size=[3, 3], stride=stride, rd_ratio=1 / 16, rd_divisor=1,
                         split_input=False)
    sk.paths[1] = ConvNormAct(channels, channels, 3, stride=stride, groups=32)
    return sk


@pytest.mark.parametrize("kind", sorted(TIMM_ATTENTION))
def test_timm_attention_module_equals_ours(kind):
    ours = create_attention(AttentionSpec(kind, reduction=16), C)
    assert_equivalent(TIMM_ATTENTION[kind](C), ours, "timm", size=7, channels=C)


@pytest.mark.parametrize("stride", [1, 2])
def test_timm_selective_kernel_equals_our_sk_star(stride):
    assert_equivalent(timm_sk(C, stride), SKConv(C, stride), "timm", size=8, channels=C)


def with_attention(spec, kind):
    """ResNet spec with ``kind`` attention in every bottleneck (ECA is no reference variant)."""
    att = AttentionSpec(kind, reduction=16)
    stages = tuple(dataclasses.replace(s, block=dataclasses.replace(s.block, attention=att)) for s in spec.stages)
    return dataclasses.replace(spec, stages=stages)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["se", "cbam", "gc", "eca", "sk"])
def test_timm_resnet50_with_attention_equals_ours(kind):
    if kind == "sk":
        theirs = ResNet(SelectiveKernelBottleneck, [3, 4, 6, 3], block_args=dict(
            sk_kwargs=dict(kernel_size=[3, 3], rd_ratio=1 / 16, rd_divisor=1, split_input=False)))
        for m in theirs.modules():
            if isinstance(m, SelectiveKernel):
                width, stride = m.paths[0].conv.out_channels, m.paths[0].conv.stride[0]
                m.paths[1] = ConvNormAct(width, width, 3, stride=stride, groups=32)
        spec = resnet(50, "sk")
    else:
        theirs = ResNet(Bottleneck, [3, 4, 6, 3], block_args=dict(attn_layer=TIMM_ATTENTION[kind]))
        spec = with_attention(resnet(50), kind)
    ours = build_model(spec, 1000)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    assert_equivalent(theirs, ours, "timm", size=64)


def test_timm_seresnet50_is_our_se_resnet50_reference():
    """timm's registered seresnet50 (default rounding) is exactly se_resnet50_imagenet."""
    import timm

    theirs = timm.create_model("seresnet50", pretrained=False)
    assert_equivalent(theirs, build_model(ecosystem_spec("timm", "seresnet50"), 1000), "timm", size=64)
