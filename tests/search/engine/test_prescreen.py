"""The zero-cost pre-screen: one of every ceil(1/keep) candidates trained, the first that no other
beats on both score and MACs, deterministically; losers not counted. A dummy space and a fake evaluator, no training."""

from __future__ import annotations

import math

import optuna
import pytest
import torch
from optuna.trial import TrialState

from blocks import count_cost
from search.config import SearchConfig, SearchError
from search.executors.local import run_worker
from search.engine.trial import propose
from search.train.evaluator import Evaluation
from search.engine.prescreen import PRESCREENED, Prescreener, candidates_per_round, make_prescreener, select_winner
from search.engine.attributes import ATTR, counted
from search.engine.study import finished_count, make_sampler
from space.spaces import SearchSpace
from space.spec import ArchSpec, BasicBlockSpec, HeadSpec, StageSpec, StemSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)
WIDTHS = (8, 16, 24, 32)


class TinySpace(SearchSpace):
    """Two ResNet basic-block stages; width and depth are the choices."""

    name = "tiny-test"
    description = "test only"

    def sample(self, trial):
        width = trial.suggest_categorical("width", WIDTHS)
        depth = trial.suggest_int("depth", 1, 3)
        stages = tuple(StageSpec(out_channels=width * 2**i, repeats=depth, stride=1 + (i > 0), block=BasicBlockSpec())
                       for i in range(2))
        return ArchSpec(stem=StemSpec(channels=width, act="relu"), stages=stages,
                        head=HeadSpec(channels=0, act="relu", dropout=0.0)).validate()

    def reference_params(self):
        return {"ref": {"width": 8, "depth": 1}}

    def smallest_params(self):
        return {"width": 8, "depth": 1}

    def size(self):
        return len(WIDTHS) * 3


def fake_scorer(spec: ArchSpec) -> dict[str, float]:
    """Wider and deeper scores higher; every member the same (so vote ranks agree)."""
    s = spec.stem.channels + 0.1 * spec.stages[0].repeats
    return {"synflow": s, "jacob_cov": s, "snip": s, "grad_norm": s}


def make_study(seed: int = 0) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=make_sampler("random", seed))
    return study


def prescreener(space, name="synflow", keep=0.25, max_macs=None) -> Prescreener:
    return Prescreener(name, keep, fake_scorer, space, 10, max_macs, count_cost)


def test_candidates_per_round():
    assert [candidates_per_round(k) for k in (1, 0.5, 0.25, 0.2, 0.1, 0.3)] == [1, 2, 4, 5, 10, 4]
    for bad in (0, -0.5, 1.5):
        with pytest.raises(ValueError, match="keep ratio"):
            candidates_per_round(bad)


def test_select_winner_best_feasible_first_on_ties_nan_last():
    assert select_winner([1.0, 3.0, 3.0, 2.0], [True] * 4) == 1
    assert select_winner([1.0, 9.0, 2.0], [True, False, True]) == 2
    assert select_winner([math.nan, -5.0], [True, True]) == 1
    assert select_winner([1.0, 2.0], [False, False]) == 0


def lean_scorer(spec: ArchSpec) -> dict[str, float]:
    """Wider scores higher, deeper lower: within one width the deeper network is dominated."""
    s = spec.stem.channels - 20.0 * spec.stages[0].repeats
    return {"synflow": s, "jacob_cov": s, "snip": s, "grad_norm": s}


def test_select_winner_by_score_and_macs():
    assert select_winner([1.0, 3.0, 2.0], [True] * 3, [10, 30, 5]) == 1  # 0 is dominated by 2
    assert select_winner([3.0, 1.0], [True] * 2, [10, 5]) == 0  # a trade-off: the sampler's first
    assert select_winner([1.0, 3.0], [True] * 2, [10, 5]) == 1
    assert select_winner([2.0, 2.0], [True] * 2, [10, 10]) == 0  # equal: the first
    assert select_winner([5.0, 1.0, 2.0], [False, True, True], [1, 10, 5]) == 2  # infeasible never dominates
    assert select_winner([math.nan, 1.0], [True, True], [1, 10]) == 1  # no score, no win


@pytest.mark.parametrize("name, keep", [("synflow", 0.25), ("vote", 0.5), ("snip", 0.2)])
def test_each_round_trains_the_first_undominated_candidate_and_tells_the_rest(name, keep):
    space, study = TinySpace(), make_study(0)
    screen = Prescreener(name, keep, lean_scorer, space, 10, None, count_cost)
    n = candidates_per_round(keep)
    winners = []
    for _ in range(12):
        trial = screen.ask(study)
        winners.append(trial.number)
        study.tell(trial, [0.5, 1.0])
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 12 * n
    skipped_first = 0
    for r in range(12):
        round_ = trials[r * n:(r + 1) * n]
        kept = [t for t in round_ if t.state == TrialState.COMPLETE]
        assert [t.number for t in kept] == [winners[r]]  # exactly one of n
        lost = [t for t in round_ if t.state == TrialState.PRUNED]
        assert len(lost) == n - 1 and all(t.user_attrs[ATTR.STATUS] == PRESCREENED for t in lost)
        assert all(not counted(t) for t in lost)
        specs = [space.spec_from_params(t.params) for t in round_]
        scores = [lean_scorer(s)["synflow"] for s in specs]
        macs = [count_cost(s, 10, space.input_size).macs for s in specs]
        beaten = [any(scores[j] >= scores[i] and macs[j] <= macs[i] and (scores[j], -macs[j]) != (scores[i], -macs[i])
                      for j in range(n)) for i in range(n)]
        w = [t.number for t in round_].index(winners[r])
        assert not beaten[w] and all(beaten[:w])  # the first candidate nobody beats on both
        skipped_first += w > 0
        assert all(t.user_attrs["prescreen_round"] == round_[0].number for t in round_)
    assert skipped_first > 0  # some round dropped a dominated first candidate


def test_the_same_seed_gives_the_same_run():
    def winners(seed):
        space, study = TinySpace(), make_study(seed)
        screen = prescreener(space, "vote", 0.25)
        out = []
        for _ in range(5):
            t = screen.ask(study)
            out.append((t.number, tuple(sorted(t.params.items()))))
            study.tell(t, [0.5, 1.0])
        return out

    assert winners(3) == winners(3)


def test_enqueued_trials_are_trained_unscreened():
    space, study = TinySpace(), make_study()
    study.enqueue_trial({"width": 8, "depth": 1}, user_attrs={ATTR.REFERENCE: "ref"})
    trial = prescreener(space).ask(study)
    assert trial.number == 0 and len(study.trials) == 1
    assert trial.user_attrs[ATTR.REFERENCE] == "ref"


def test_infeasible_candidates_are_recorded_as_such_and_never_win():
    space, study = TinySpace(), make_study(2)
    limit = count_cost(space.spec_from_params({"width": 16, "depth": 1}), 10, 32).macs
    screen = prescreener(space, "synflow", 0.25, max_macs=limit)
    winners = []
    for _ in range(8):
        trial = screen.ask(study)
        p = propose(trial, space, num_classes=10, max_macs=limit, count_cost=count_cost)
        winners.append(trial.number)
        study.tell(trial, [0.5, float(p.macs)])
    rounds: dict[int, list] = {}
    for t in study.get_trials(deepcopy=False):
        rounds.setdefault(t.user_attrs["prescreen_round"], []).append(t)
    assert len(rounds) == 8
    saw_infeasible = False
    for round_ in rounds.values():
        over = [t for t in round_ if t.user_attrs[ATTR.MACS] > limit]
        saw_infeasible |= bool(over)
        winner = next(t for t in round_ if t.number in winners)
        if len(over) < len(round_):
            assert winner.user_attrs[ATTR.MACS] <= limit  # a feasible candidate always wins
        assert all(t.user_attrs[ATTR.STATUS] == "infeasible" for t in over if t is not winner)
        assert all(t.user_attrs[ATTR.STATUS] == PRESCREENED for t in round_ if t not in over and t is not winner)
    assert saw_infeasible


class FakeEvaluator:
    def __init__(self):
        self.trained: list[str] = []

    def __call__(self, spec, seed, on_epoch=None, cost=None):
        self.trained.append(spec.canonical_key())
        return Evaluation(status="ok", val_acc=spec.stem.channels / 100, metrics={"val_acc": spec.stem.channels / 100})


def test_worker_meets_the_budget_with_winners_only(tmp_path):
    cfg = SearchConfig(space="seesaw", budget=6, name="p", results_dir=str(tmp_path), sampler="tpe")
    space, study, evaluator = TinySpace(), make_study(4), FakeEvaluator()
    run_worker(study, cfg, space, evaluator, num_classes=10, count_cost=count_cost, prescreen=prescreener(space, keep=0.25))
    assert finished_count(study) == 6
    ok = [t for t in study.trials if t.user_attrs[ATTR.STATUS] in ("ok", "duplicate")]
    assert len(ok) == 6 and len(study.trials) == 24
    assert len(evaluator.trained) == len([t for t in ok if t.user_attrs[ATTR.STATUS] == "ok"])


def test_make_prescreener_scores_real_networks_deterministically():
    class Data:
        g = torch.Generator().manual_seed(0)
        train_x = torch.randint(0, 256, (80, 3, 16, 16), dtype=torch.uint8, generator=g)
        train_y = torch.randint(0, 10, (80,), generator=g)

    space = TinySpace()
    screens = [make_prescreener("vote", 0.5, space=space, data=Data, num_classes=10, max_macs=None,
                                count_cost=count_cost, width_scale=1.0, seed=5) for _ in range(2)]
    spec = space.spec_from_params({"width": 16, "depth": 2})
    a = screens[0].scorer(spec)
    assert set(a) == {"synflow", "jacob_cov", "snip"} and all(math.isfinite(v) for v in a.values())
    assert screens[1].scorer(spec) == a
    assert screens[0].scorer(space.spec_from_params({"width": 8, "depth": 1})) != a


@pytest.mark.parametrize("kw, words", [
    (dict(prescreen="nope"), "--prescreen"),
    (dict(prescreen="synflow", prescreen_keep=0.0), "--prescreen-keep"),
    (dict(prescreen="synflow", executor="ray"), "local executor"),
])
def test_bad_prescreen_settings_are_refused(kw, words):
    with pytest.raises(SearchError, match=words):
        SearchConfig(**kw).validate()


@pytest.fixture
def one_thread():
    """One torch thread: on a busy 2-core machine two threads spin against each other (10x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_cli_search_with_prescreen_trains_one_of_each_round(tmp_path, capsys, one_thread):
    import csv

    import launch_search

    fast = ["--dataset", "synthetic", "--proxy", "smoke", "--width-scale", "0.25", "--device", "cpu", "--val-size", "64"]
    code = launch_search.main(["--space", "seesaw", "--budget", "2", "--name", "ps", "--no-references", "--prescreen", "synflow",
                               "--prescreen-keep", "0.5", *fast, "--results-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    with open(tmp_path / "ps" / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["status"] for r in rows) == ["ok", "ok", PRESCREENED, PRESCREENED]
    assert all(r["prescreen_score"] != "" for r in rows)
    assert "2/2 trials finished" in out and "hypervolume after k trials: 2 ->" in out
    assert "proxy fidelity of preset 'smoke' with these settings: not measured" in out
