"""Zero-cost proxies on small ResNet basic-block networks and synthetic images (seconds, CPU)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from blocks import build_model
from search.engine import zero_cost
from search.engine.zero_cost import ZERO_COST_PROXIES, rank, score_batch, score_spec, vote_scores
from space.spec import ArchSpec, AttentionSpec, BasicBlockSpec, HeadSpec, StageSpec, StemSpec

SINGLE = [n for n, p in ZERO_COST_PROXIES.items() if p.score is not None]


def resnet_spec(width: int = 8, repeats: int = 1, attention: AttentionSpec | None = None) -> ArchSpec:
    stages = tuple(
        StageSpec(out_channels=width * 2**i, repeats=repeats, stride=1 if i == 0 else 2, block=BasicBlockSpec(attention=attention))
        for i in range(2)
    )
    return ArchSpec(stem=StemSpec(channels=width, kernel=3, stride=1, act="relu6"), stages=stages,
                    head=HeadSpec(channels=0, act="relu", dropout=0.5)).validate()


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 3, 16, 16), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (40,), generator=g)
    return score_batch(images, labels, 16, seed=3)


def test_registry_entries_cite_a_paper_and_say_what_they_measure():
    assert {"synflow", "jacob_cov", "snip", "grad_norm", "vote"} <= set(ZERO_COST_PROXIES)
    for p in ZERO_COST_PROXIES.values():
        assert p.citation and p.measures and "20" in p.citation
    with pytest.raises(ValueError, match="valid: synflow"):
        zero_cost.get_proxy("nope")


@pytest.mark.parametrize("name", SINGLE)
def test_scores_are_finite_deterministic_and_leave_the_model_alone(name, batch):
    images, labels = batch
    torch.manual_seed(0)
    model = build_model(resnet_spec(), 10)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    s1 = ZERO_COST_PROXIES[name].score(model, images, labels)
    s2 = ZERO_COST_PROXIES[name].score(model, images, labels)
    assert math.isfinite(s1) and s1 == s2
    assert not model.training  # scored on a copy: mode, weights and BN statistics unchanged
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_score_spec_is_a_function_of_architecture_and_seed(batch):
    images, labels = batch
    spec = resnet_spec(attention=AttentionSpec("se", reduction=4))
    a = score_spec(["vote", "grad_norm"], spec, 10, images, labels, seed=7)
    b = score_spec(["vote", "grad_norm"], spec, 10, images, labels, seed=7)
    assert set(a) == {"synflow", "jacob_cov", "snip", "grad_norm"} and a == b
    c = score_spec(["snip"], spec, 10, images, labels, seed=8)
    assert c["snip"] != a["snip"]  # other initial weights, other score


def test_synflow_is_data_free_and_grows_with_capacity(batch):
    images, labels = batch
    small = score_spec(["synflow"], resnet_spec(8, 1), 10, images, labels, seed=0)["synflow"]
    noise = torch.randn_like(images)
    assert score_spec(["synflow"], resnet_spec(8, 1), 10, noise, labels.flip(0), seed=0)["synflow"] == small
    assert score_spec(["synflow"], resnet_spec(16, 2), 10, images, labels, seed=0)["synflow"] > small


def test_synflow_is_not_capped_by_relu6():
    # all-ones input and |weights| push pre-activations far above 6: ReLU6 would zero every gradient
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU6(), nn.Conv2d(16, 16, 3), nn.ReLU6(), nn.Flatten(), nn.LazyLinear(4))
    model(torch.zeros(1, 3, 8, 8))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
    score = zero_cost.synflow(model, torch.zeros(2, 3, 8, 8))
    assert math.isfinite(score) and score > 10


def test_jacob_cov_needs_two_images(batch):
    images, labels = batch
    model = build_model(resnet_spec(), 10)
    with pytest.raises(ValueError, match="at least 2"):
        zero_cost.jacob_cov(model, images[:1], labels[:1])


def test_rank_ties_share_and_nan_is_last():
    assert rank([3.0, 1.0, 2.0]) == [2.0, 0.0, 1.0]
    assert rank([1.0, 1.0, 5.0]) == [0.5, 0.5, 2.0]
    assert rank([math.nan, 0.0, -1.0]) == [0.0, 2.0, 1.0]


def test_rank_of_nothing_is_empty():
    assert rank([]) == []


def test_vote_is_the_mean_rank_of_its_members():
    rows = [
        {"synflow": 1.0, "jacob_cov": 10.0, "snip": 0.1},
        {"synflow": 2.0, "jacob_cov": 30.0, "snip": 0.3},
        {"synflow": 3.0, "jacob_cov": 20.0, "snip": 0.2},
    ]
    assert vote_scores(rows) == pytest.approx([0.0, 5 / 3, 4 / 3])
    assert vote_scores([]) == []


def test_score_batch_is_fixed_by_the_seed():
    images = torch.randint(0, 256, (100, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(100)
    x1, y1 = score_batch(images, labels, 10, seed=1)
    x2, y2 = score_batch(images, labels, 10, seed=1)
    _, y3 = score_batch(images, labels, 10, seed=2)
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and not torch.equal(y1, y3)
    assert x1.dtype == torch.float32 and abs(float(x1.mean())) < 1e-4
