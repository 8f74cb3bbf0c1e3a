"""No architecture trained twice: a proposal whose twin is training waits for it and becomes its
duplicate, even when the twin is told at the moment the proposal looks (the race a loaded
three-host run once hit). A real in-memory study and the real trial step; no training."""

from __future__ import annotations

import sys

import optuna

from blocks import count_cost
from search.config import SearchConfig
from search.engine.attributes import ATTR, STATUS
from search.engine.study import make_sampler
from search.engine.trial import TrialSteps
from search.train.evaluator import Evaluation
from space.spaces import get_space

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_a_twin_told_while_a_proposal_looks_is_not_trained_again(tmp_path):
    space = get_space("seesaw", dataset="synthetic")
    cfg = SearchConfig(space="seesaw", budget=2, name="tw", results_dir=str(tmp_path), heartbeat_grace_s=0.4)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=make_sampler("random", 0))
    params = space.smallest_params()
    study.enqueue_trial(params)
    study.enqueue_trial(params)
    steps = TrialSteps(study, cfg, space, num_classes=10, count_cost=count_cost)
    first = steps.next()  # trial 0: trains the architecture
    assert first is not None and first.trial.number == 0

    # The twin is told right after the first read of the study that the second proposal's claim
    # makes (the reads of the stale check aside): a claim that reads twice sees it neither done
    # (first read) nor running (second read), and trains the architecture again.
    real_get_trials = study.get_trials
    told = []

    def get_trials(*args, **kwargs):
        trials = real_get_trials(*args, **kwargs)
        callers = {frame.f_code.co_name for frame in _frames()}
        if not told and "claim_training" in callers and "recover_stale" not in callers:
            told.append(steps.finish(first, Evaluation(status=STATUS.OK, val_acc=0.5, metrics={"val_acc": 0.5})))
        return trials

    study.get_trials = get_trials
    assert steps.next() is None  # trial 1 waited for trial 0 and became its duplicate: nothing to train
    assert told, "the twin was never told during the claim"
    trials = real_get_trials(deepcopy=False)
    assert [t.user_attrs[ATTR.STATUS] for t in trials] == [STATUS.OK, STATUS.DUPLICATE]
    assert trials[1].user_attrs[ATTR.DUPLICATE_OF] == 0


def _frames():
    frame = sys._getframe(1)
    while frame is not None:
        yield frame
        frame = frame.f_back
