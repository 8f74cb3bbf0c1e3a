"""Confidence intervals and confident domination on synthetic numbers (search/results/confidence.py)."""

from __future__ import annotations

import math

from search.results.confidence import Network, dominates_with_confidence, estimate, reference_claims


def test_estimate_matches_the_student_t_interval():
    e = estimate([0.50, 0.52, 0.54])
    assert math.isclose(e.mean, 0.52)
    assert math.isclose(e.std, 0.02)
    assert math.isclose(e.ci, 4.302652729911275 * 0.02 / math.sqrt(3), rel_tol=1e-9)
    one = estimate([0.5])
    assert one.n == 1 and math.isnan(one.std) and math.isnan(one.ci)


def test_a_clear_win_dominates_with_confidence():
    found = estimate([0.70, 0.71, 0.72])
    ref = estimate([0.60, 0.61, 0.60])
    assert dominates_with_confidence(found, 50e6, ref, 60e6)
    assert not dominates_with_confidence(found, 70e6, ref, 60e6)  # more MACs: no domination


def test_a_tie_within_noise_is_no_claim():
    found = estimate([0.60, 0.66, 0.63])
    ref = estimate([0.61, 0.62, 0.58])
    assert found.mean > ref.mean
    assert not dominates_with_confidence(found, 50e6, ref, 60e6)


def test_one_seed_makes_no_claim_however_large_the_gap():
    assert not dominates_with_confidence(estimate([0.9]), 1, estimate([0.1]), 2)


def test_reference_claims_name_the_winners_or_say_none():
    nets = [
        Network(0, "ref_a", 60e6, estimate([0.60, 0.61, 0.60]), 1),
        Network(1, "ref_b", 40e6, estimate([0.58, 0.59, 0.60]), 1),
        Network(7, None, 50e6, estimate([0.70, 0.71, 0.72]), 1),
        Network(8, None, 55e6, estimate([0.60, 0.66, 0.63]), 1),
    ]
    lines = reference_claims(nets)
    assert lines[0] == "ref_b: no discovered network dominates it with confidence"
    assert lines[1].startswith("ref_a: dominated with 95% confidence by trial 7 (")
    assert "trial 8" not in lines[1]
    single = reference_claims([Network(0, "ref", 1, estimate([0.5]), 0)])
    assert "a claim needs >= 2" in single[0]
