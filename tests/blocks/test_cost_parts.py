"""count_cost sums per-part counts; the sum is the whole network's FlopCounterMode count."""

import pytest
import torch

from blocks import build_model, count_cost, count_module_cost
from blocks.cost import _block_cost
from space.references import REFERENCES
from space.spaces import SPACES, get_space


def whole_network_cost(spec, num_classes, input_size):
    with torch.device("meta"):
        model = build_model(spec, num_classes)
    return count_module_cost(model, input_size)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_part_sum_equals_whole_network_count_for_every_reference(name):
    ref = REFERENCES[name]
    assert count_cost(ref.spec, ref.num_classes, ref.input_size) == whole_network_cost(
        ref.spec, ref.num_classes, ref.input_size)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SPACES))
@pytest.mark.parametrize("shared", [False, True])
def test_part_sum_equals_whole_network_count_for_space_samples(name, shared):
    space = get_space(name, shared_block=shared)
    for i, spec in enumerate(space.random_specs(3, seed=11)):
        num_classes, size = (100, 48) if i == 0 else (10, space.input_size)  # an odd resolution once
        assert count_cost(spec, num_classes, size) == whole_network_cost(spec, num_classes, size)


def test_a_stage_of_identical_blocks_is_counted_once():
    ref = REFERENCES["resnet101_imagenet"]
    count_cost.cache_clear()
    _block_cost.cache_clear()
    count_cost(ref.spec, ref.num_classes, ref.input_size)
    # 33 blocks, but per stage only the first and the (identical) others differ
    assert _block_cost.cache_info().currsize == 2 * len(ref.spec.stages)


def test_count_cost_checks_its_spec_like_build_model():
    spec = REFERENCES["mobilenetv2_imagenet"].spec
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        count_cost(spec, 0, 224)
