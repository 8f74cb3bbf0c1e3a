"""Shared by the equivalence tests: random weights in float64, transfer, compare, nudge."""

from __future__ import annotations

import torch

from blocks.convert import load_ecosystem_weights

TOL = 1e-10


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights and BN/LN statistics of a moderate scale, in float64, eval mode."""
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
                t.copy_(torch.randn(t.shape, generator=g, dtype=t.dtype) * (2.0 / t[0].numel()) ** 0.5)
    return model


def assert_equivalent(theirs: torch.nn.Module, ours: torch.nn.Module, source: str, size: int = 64,
                      channels: int = 3) -> None:
    """``ours`` with ``theirs``'s (random) weights computes the same outputs, and a nudged weight shows."""
    theirs = randomise(theirs)
    ours = ours.double().eval()
    load_ecosystem_weights(ours, theirs.state_dict(), source)
    x = torch.randn(2, channels, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert expected.abs().max() > 1e-3, "degenerate outputs cannot tell networks apart"
    diff = (expected - got).abs().max().item()
    assert diff <= TOL, f"max abs diff {diff:.3g} (outputs up to {expected.abs().max():.3g})"
    # A nudged weight in the middle of the network must show.
    params = [p for p in ours.parameters() if p.dim() > 1]
    with torch.no_grad():
        params[len(params) // 2].mul_(1.001)
        nudged = ours(x)
    assert (expected - nudged).abs().max().item() > 1e3 * TOL
