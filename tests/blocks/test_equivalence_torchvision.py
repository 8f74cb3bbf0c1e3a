"""Function, not only counts: torchvision's networks with their weights copied into ours give the
same outputs (float64, max abs diff <= 1e-10), and a nudged weight is detected.

Source models are built with random weights (weights=None; nothing is downloaded); every weight
and BN statistic is randomised before the transfer, so no zero-init hides a wrong mapping.
"""

import pytest
import torch
import torchvision

from blocks import build_model
from blocks.convert import ecosystem_spec, load_ecosystem_weights

TOL = 1e-10
SIZE = 64  # every network here pools adaptively; 64x64 keeps float64 forwards fast


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights and BN statistics of a moderate scale, in float64, eval mode."""
    g = torch.Generator().manual_seed(seed)
    model = model.double().eval()
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) + 0.5)
            elif name.endswith(("running_mean", "bias")):
                t.copy_(0.1 * torch.randn(t.shape, generator=g, dtype=t.dtype))
            elif t.dim() == 1:  # BN / LayerNorm scales, < 1 so residual sums stay O(1)
                t.copy_(0.5 * torch.rand(t.shape, generator=g, dtype=t.dtype) + 0.25)
            else:  # conv / linear: variance-preserving scale keeps deep nets finite
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g, dtype=t.dtype) * (2.0 / fan_in) ** 0.5)
    return model


def assert_equivalent(theirs: torch.nn.Module, ours: torch.nn.Module, source: str, size: int = SIZE) -> None:
    theirs = randomise(theirs)
    ours = ours.double().eval()
    load_ecosystem_weights(ours, theirs.state_dict(), source)
    x = torch.randn(2, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert expected.abs().max() > 1e-3, "degenerate outputs cannot tell networks apart"
    diff = (expected - got).abs().max().item()
    assert diff <= TOL, f"max abs diff {diff:.3g} (outputs up to {expected.abs().max():.3g})"
    # A nudged weight in the middle of the network must show.
    params = [p for n, p in ours.named_parameters() if p.dim() > 1]
    with torch.no_grad():
        params[len(params) // 2].mul_(1.001)
        nudged = ours(x)
    assert (expected - nudged).abs().max().item() > 1e3 * TOL


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet50", "resnet101",
                                  "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"])
def test_torchvision_network_equals_ours_after_weight_transfer(name):
    theirs = getattr(torchvision.models, name)(weights=None)
    ours = build_model(ecosystem_spec("torchvision", name), 1000)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    assert_equivalent(theirs, ours, "torchvision")


def test_shufflenet_projection_branch_registers_first_like_torchvision():
    """torchvision's branch1 (projection) precedes branch2 (main): the keys line up in order."""
    theirs = torchvision.models.shufflenet_v2_x1_0(weights=None).stage2[0]
    ours = build_model(ecosystem_spec("torchvision", "shufflenet_v2_x1_0"), 1000).stages[0][0]
    their_keys = [k.split(".")[0] for k in theirs.state_dict()]
    our_keys = [k.split(".")[0] for k in ours.state_dict()]
    assert their_keys.index("branch1") < their_keys.index("branch2")
    assert our_keys.index("project") < our_keys.index("main")
    assert [t.shape for t in theirs.state_dict().values()] == [t.shape for t in ours.state_dict().values()]
