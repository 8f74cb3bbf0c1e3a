"""The pure decisions of multi-fidelity promotion and repeats (search/engine/ladder.py)."""

from __future__ import annotations

import math
import random

from optuna.trial import TrialState, create_trial

from search.engine.attributes import ATTR, STATUS
from search.engine.ladder import (Result, crowding_distances, due_promotions, due_repeats, front_parents, job_units,
                                  job_units_left, network_values, nondominated_ranks, planned_units, promotion_order,
                                  repeat_seed, rung_epochs, training_cost)


def synthetic(seed: int, n: int = 30) -> list[Result]:
    rng = random.Random(seed)
    return [Result(i, 0, 0, round(rng.uniform(0.3, 0.6), 2), float(rng.choice([50, 80, 120, 200]))) for i in range(n)]


def test_nondominated_ranks_of_a_hand_made_set():
    # (acc up, macs down): a and b trade off (front), c is dominated by a, d by c, e duplicates b
    points = [(0.9, 100), (0.8, 50), (0.85, 120), (0.7, 130), (0.8, 50)]
    assert nondominated_ranks(points) == [0, 0, 1, 2, 0]


def brute_force_ranks(points):
    """The definition: peel off the non-dominated points, again and again."""
    ranks, left, rank = {}, set(range(len(points))), 0
    while left:
        front = {i for i in left if not any(points[j][0] >= points[i][0] and points[j][1] <= points[i][1]
                                             and points[j] != points[i] for j in left)}
        ranks.update({i: rank for i in front})
        left -= front
        rank += 1
    return [ranks[i] for i in range(len(points))]


def test_nondominated_ranks_match_the_definition_on_random_sets_with_ties():
    rng = random.Random(0)
    for n in (1, 2, 5, 40, 200):
        points = [(rng.choice([0.3, 0.4, 0.5, 0.6]), float(rng.choice([10, 20, 30, 40, 50]))) for _ in range(n)]
        assert nondominated_ranks(points) == brute_force_ranks(points)


def test_crowding_gives_the_ends_infinity_and_the_isolated_middle_more():
    front = [(0.5, 10), (0.6, 20), (0.61, 21), (0.9, 100)]
    d = crowding_distances(front)
    assert math.isinf(d[0]) and math.isinf(d[3])
    assert d[1] > 0 and d[2] > 0
    assert d[2] > d[1]  # (0.61, 21) has neighbours (0.6, 20) and (0.9, 100): the larger gap


def test_promotion_order_is_by_rank_then_crowding_then_number():
    results = [Result(0, 0, 0, 0.5, 100), Result(1, 0, 0, 0.6, 100), Result(2, 0, 0, 0.4, 50),
               Result(3, 0, 0, 0.45, 80), Result(4, 0, 0, 0.3, 200)]
    order = [r.parent for r in promotion_order(results)]
    # front: 1 (0.6, 100), 2 (0.4, 50), 3 (0.45, 80); 3 lies between: the ends (inf) go first by number
    assert order[:3] == [1, 2, 3]
    assert order[3:] == [0, 4]


def test_promotion_order_is_deterministic_for_a_fixed_seed_and_ignores_input_order():
    a = [r.parent for r in promotion_order(synthetic(7))]
    b = [r.parent for r in promotion_order(synthetic(7))]
    shuffled = synthetic(7)
    random.Random(1).shuffle(shuffled)
    assert a == b == [r.parent for r in promotion_order(shuffled)]
    assert a != [r.parent for r in promotion_order(synthetic(8))]


def test_due_promotions_take_the_top_n_over_eta_not_yet_taken():
    results = synthetic(3, 9)
    top = [r.parent for r in promotion_order(results)]
    assert due_promotions(results, set(), rungs=2, eta=3) == [(p, 1, 0) for p in top[:3]]
    assert due_promotions(results, {(top[0], 1, 0)}, rungs=2, eta=3) == [(p, 1, 0) for p in top[1:3]]
    assert due_promotions(results[:2], set(), rungs=2, eta=3) == []  # 2 // 3 = 0
    assert due_promotions(results, set(), rungs=1, eta=3) == []  # one rung: promotion off


def test_due_promotions_go_deeper_first_and_only_from_results_of_repeat_zero():
    results = synthetic(3, 9)
    top = [r.parent for r in promotion_order(results)]
    rung1 = [Result(p, 1, 0, 0.7 + 0.01 * i, 100.0) for i, p in enumerate(top[:3])]
    taken = {(p, 1, 0) for p in top[:3]}
    due = due_promotions(results + rung1 + [Result(top[5], 1, 1, 0.99, 1.0)], taken, rungs=3, eta=3)
    best1 = promotion_order(rung1)[0].parent
    assert due == [(best1, 2, 0)]


def test_due_repeats_walk_each_seed_up_the_rungs():
    results = [Result(0, 0, 0, 0.5, 10), Result(0, 1, 0, 0.55, 10), Result(1, 0, 0, 0.6, 20)]
    due = due_repeats(results, set(), [0, 1], rungs=2, repeats=2)
    assert due == [(0, 0, 1), (1, 1, 0), (1, 0, 1)]
    assert due_repeats(results, {(0, 0, 1)}, [0], rungs=2, repeats=2) == []
    assert due_repeats(results, set(), [0], rungs=2, repeats=1) == []


def test_network_values_use_the_highest_rung_and_every_seed_there():
    results = [Result(0, 0, 0, 0.5, 10), Result(0, 1, 0, 0.6, 10), Result(0, 1, 1, 0.7, 10), Result(0, 0, 1, 0.1, 10),
               Result(1, 0, 0, 0.4, 5)]
    values = network_values(results)
    assert values[0].rung == 1 and values[0].accs == (0.6, 0.7) and math.isclose(values[0].mean, 0.65)
    assert values[1].rung == 0 and values[1].accs == (0.4,)
    assert front_parents(values) == [0, 1]
    assert front_parents(values, max_macs=8) == [1]


def test_costs_epochs_and_seeds():
    assert training_cost(8, 1, 3) == 8
    assert training_cost(27, 3, 3) == 27 + 9 * 2 + 3 * 6
    assert rung_epochs(2, 3, 2) == 18
    assert repeat_seed(5, 0) == 5
    assert repeat_seed(5, 1) == repeat_seed(5, 1) != repeat_seed(5, 2) != repeat_seed(6, 2)


def test_units_of_jobs_planned_started_and_left():
    assert [job_units(r, 3) for r in (0, 1, 2)] == [1, 2, 6] and job_units(1, 3, from_scratch=True) == 3
    # 27 networks, 3 rungs, eta 3: 63 units; 2 seeds for 5 references at the top rung (9 units each): 45 more
    assert planned_units(27, 3, 3, 2, 5) == 63 + 45

    def job(state, status, rung, **attrs):
        return create_trial(state=state, values=[0.5] if state == TrialState.COMPLETE else None,
                            user_attrs={ATTR.STATUS: status, ATTR.RUNG: rung, **attrs})

    jobs = [job(TrialState.RUNNING, STATUS.RUNNING, 1),  # a promotion under way: 2 units
            job(TrialState.COMPLETE, STATUS.OK, 2),  # 6
            job(TrialState.FAIL, STATUS.FAILED, 1, **{ATTR.FROM_SCRATCH: True}),  # ended for good, whole rung: 3
            job(TrialState.COMPLETE, STATUS.OK, 0),  # a repeat's rung 0: 1
            job(TrialState.FAIL, STATUS.INTERRUPTED, 2)]  # cut off: due again, not started
    assert job_units_left(jobs, budget=27, rungs=3, eta=3, repeats=2, references=5) == 108 - 27 - 12
    assert job_units_left(jobs * 10, budget=27, rungs=3, eta=3, repeats=2, references=5) == 0  # never below 0
    assert job_units_left([], budget=8, rungs=1, eta=3, repeats=1, references=5) == 0
    # 3 networks on the front besides the references: their second seeds at the top rung, 9 units each
    assert job_units_left(jobs, budget=27, rungs=3, eta=3, repeats=2, references=5, front=3) == 108 - 27 - 12 + 27
