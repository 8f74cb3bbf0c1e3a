"""Function, not only counts: torchvision's networks with their weights copied into ours give the
same outputs (float64, max abs diff <= 1e-10), and a nudged weight is detected.

Source models are built with random weights (weights=None; nothing is downloaded); every weight
and BN statistic is randomised before the transfer, so no zero-init hides a wrong mapping.
"""

import pytest
import torchvision

from blocks import build_model
from blocks.convert import ecosystem_spec
from weight_transfer import assert_equivalent



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
