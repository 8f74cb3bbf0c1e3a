"""The one trial step every executor runs: ask -> claim -> propose -> evaluate -> record.

- ``propose`` (sample, count, constrain, de-duplicate) is cheap and runs on the process that owns
  the study; a sample over ``--max-macs`` or already evaluated (same canonical key) costs no
  training and is recorded at once.
- the evaluation (``search.train.evaluator.ProxyEvaluator``) is the expensive part, which any
  executor may run elsewhere: only the spec (a plain dict) and the ``Evaluation`` travel.
- ``record`` writes the outcome to the study; ``requeue`` (``search.engine.study``) re-runs a trial
  that was cut off.

``TrialSteps`` holds these steps for one process; executors only decide where the evaluation runs:
the local executor calls ``run_trial`` in a loop, the Ray executor splits it around a Ray trial.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from blocks.cost import Cost
from search.config import SearchConfig
from search.errors import SearchError
from search.engine.attributes import ATTR, STATUS, TRAINED_STATUSES, metric, trial_status
from search.engine.study import ask_lock, claim, finished_count, requeue, running_count
from search.train.evaluator import Evaluation
from space.spaces import SearchSpace
from space.spec import ArchSpec

__all__ = ["Proposal", "TrialSteps", "describe_trial", "find_evaluated", "propose", "record", "run_trial",
           "trial_seed"]

log = logging.getLogger("seesaw_nas.search")

# A space whose samples almost all exceed --max-macs would otherwise loop for ever.
MAX_INFEASIBLE_IN_A_ROW = 2000


def trial_seed(run_seed: int, trial_number: int) -> int:
    """The training seed of a trial (initial weights, batch order, augmentation)."""
    return run_seed * 100_003 + trial_number


@dataclass
class Proposal:
    """A sampled architecture and what the cheap checks found."""

    trial: optuna.Trial
    spec: ArchSpec
    key: str
    params: int
    macs: int
    reference: str | None = None
    infeasible: bool = False
    duplicate_of: FrozenTrial | None = None
    seed: int = 0  # training seed (trial_seed)

    @property
    def cost(self) -> Cost:
        return Cost(self.params, self.macs)

    @property
    def needs_training(self) -> bool:
        return not self.infeasible and self.duplicate_of is None


def propose(
    trial: optuna.Trial,
    space: SearchSpace,
    *,
    num_classes: int,
    max_macs: int | None,
    count_cost: Callable[[ArchSpec, int, int], Any],
) -> Proposal:
    """Sample the trial's spec, record its cost and constraint, and look for an earlier twin."""
    spec = space.sample(trial)
    key = spec.canonical_key()
    cost = count_cost(spec, num_classes, space.input_size)
    trial.set_user_attr(ATTR.KEY, key)
    trial.set_user_attr(ATTR.SPEC, spec.to_dict())
    trial.set_user_attr(ATTR.PARAMS, cost.params)
    trial.set_user_attr(ATTR.MACS, cost.macs)
    trial.set_user_attr(ATTR.STATUS, STATUS.RUNNING)
    if max_macs is not None:
        # Optuna 5: feasible iff <= 0; the samplers learn to stay under the budget.
        trial.set_constraint("max_macs", float(cost.macs - max_macs))
    reference = trial.user_attrs.get(ATTR.REFERENCE)
    proposal = Proposal(trial, spec, key, cost.params, cost.macs, reference=reference)
    proposal.infeasible = max_macs is not None and cost.macs > max_macs
    if not proposal.infeasible:
        proposal.duplicate_of = find_evaluated(trial.study, key, exclude=trial.number)
    return proposal


def find_evaluated(study: optuna.Study, key: str, exclude: int) -> FrozenTrial | None:
    """The first trained trial (ok or diverged) of the same architecture, if any."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        if t.number != exclude and t.user_attrs.get(ATTR.KEY) == key and t.user_attrs.get(ATTR.STATUS) in TRAINED_STATUSES:
            return t
    return None


def record(study: optuna.Study, proposal: Proposal, evaluation: Evaluation | None) -> FrozenTrial:
    """Tell the study how the trial ended; returns the finished trial."""
    trial = proposal.trial
    if proposal.infeasible:
        trial.set_user_attr(ATTR.STATUS, STATUS.INFEASIBLE)
        return study.tell(trial, [0.0, float(proposal.macs)])
    if proposal.duplicate_of is not None:
        twin = proposal.duplicate_of
        trial.set_user_attr(ATTR.STATUS, STATUS.DUPLICATE)
        trial.set_user_attr(ATTR.DUPLICATE_OF, twin.number)
        for k, v in twin.user_attrs.items():
            if k.startswith(ATTR.METRIC_PREFIX):
                trial.set_user_attr(k, v)
        if twin.state == TrialState.FAIL:
            trial.set_user_attr(ATTR.FAILURE, f"same architecture as trial {twin.number}, which diverged")
            return study.tell(trial, state=TrialState.FAIL)
        return study.tell(trial, list(twin.values))
    assert evaluation is not None, "a trained proposal needs an evaluation"
    for k, v in evaluation.metrics.items():
        trial.set_user_attr(metric(k), v)
    trial.set_user_attr(ATTR.STATUS, evaluation.status)
    if evaluation.status != STATUS.OK:
        trial.set_user_attr(ATTR.FAILURE, evaluation.failure or evaluation.status)
        return study.tell(trial, state=TrialState.FAIL)
    return study.tell(trial, [float(evaluation.val_acc), float(proposal.macs)])


def describe_trial(t: FrozenTrial) -> str:
    """The trial's line in search.log."""
    a = t.user_attrs
    acc = a.get(ATTR.VAL_ACC)
    parts = [
        f"trial {t.number}",
        trial_status(t),
        f"macs={a.get(ATTR.MACS, 0) / 1e6:.1f}M",
        f"params={a.get(ATTR.PARAMS, 0) / 1e6:.2f}M",
        f"val_acc={acc:.4f}" if isinstance(acc, float) else "",
        f"time={a[ATTR.TRAIN_TIME]:.1f}s" if ATTR.TRAIN_TIME in a else "",
        f"ref={a[ATTR.REFERENCE]}" if ATTR.REFERENCE in a else "",
        f"dup_of={a[ATTR.DUPLICATE_OF]}" if ATTR.DUPLICATE_OF in a else "",
        f"failure={a[ATTR.FAILURE]}" if ATTR.FAILURE in a else "",
    ]
    return " ".join(p for p in parts if p)


class TrialSteps:
    """The trial step of one process over a study; executors call ``next`` and ``finish``.

    ``next`` checks the budget and asks under the run's ask lock (so N processes finish the budget
    exactly: every trial that will count is finished or running when one asks), claims the trial,
    proposes it, records at once what needs no training, and returns the first proposal that does
    (``None`` when the budget is met or covered by running trials). ``prescreen``
    (``search.engine.prescreen.Prescreener``) replaces ``study.ask()``.
    """

    def __init__(
        self,
        study: optuna.Study,
        cfg: SearchConfig,
        space: SearchSpace,
        *,
        num_classes: int,
        count_cost: Callable[[ArchSpec, int, int], Cost],
        prescreen: Any = None,
        after_trial: Callable[[FrozenTrial], None] | None = None,
    ) -> None:
        self.study, self.cfg, self.space = study, cfg, space
        self.num_classes, self.count_cost = num_classes, count_cost
        self.prescreen, self.after_trial = prescreen, after_trial
        self.infeasible_in_a_row = 0

    def next(self) -> Proposal | None:
        """The next proposal to train, or None when the budget needs no more trials."""
        while True:
            with ask_lock(self.cfg.run_dir):
                if finished_count(self.study) + running_count(self.study) >= self.cfg.budget:
                    return None
                trial = self.study.ask() if self.prescreen is None else self.prescreen.ask(self.study)
                claim(trial)
            try:
                proposal = propose(trial, self.space, num_classes=self.num_classes, max_macs=self.cfg.max_macs,
                                   count_cost=self.count_cost)
            except KeyboardInterrupt:  # interrupted while sampling: an enqueued architecture runs again
                requeue(self.study, trial, status=STATUS.INTERRUPTED, reason="interrupted while sampling")
                raise
            proposal.seed = trial_seed(self.cfg.seed, trial.number)
            if proposal.needs_training:
                self.infeasible_in_a_row = 0
                return proposal
            self.finish(proposal, None)
            self.infeasible_in_a_row = self.infeasible_in_a_row + 1 if proposal.infeasible else 0
            if self.infeasible_in_a_row >= MAX_INFEASIBLE_IN_A_ROW:
                raise SearchError(
                    f"{self.infeasible_in_a_row} samples in a row exceeded --max-macs {self.cfg.max_macs}; raise "
                    "--max-macs or use a smaller space (e.g. a lower width multiplier)"
                )

    def finish(self, proposal: Proposal, evaluation: Evaluation | None) -> FrozenTrial:
        """Record the outcome, log it, report it; returns the finished trial."""
        frozen = record(self.study, proposal, evaluation)
        log.info(describe_trial(frozen))
        if self.after_trial is not None:
            self.after_trial(frozen)
        return frozen

    def cut_off(self, proposal: Proposal, reason: str = "interrupted by the user; re-run on --resume") -> None:
        """The trial will not finish here (Ctrl-C, a lost worker): not counted, its architecture re-enqueued."""
        requeue(self.study, proposal.trial, status=STATUS.INTERRUPTED, reason=reason)


Evaluator = Callable[..., Evaluation]


def run_trial(steps: TrialSteps, evaluate: Evaluator,
              watch: Callable[[Proposal], dict[str, Any]] | None = None) -> FrozenTrial | None:
    """One whole trial in this process: next proposal, train it, record it. None: budget met.

    ``watch(proposal)``: extra keywords for ``evaluate`` (its ``on_step``/``on_epoch`` progress
    callbacks), made afresh for each trial that trains.
    """
    proposal = steps.next()
    if proposal is None:
        return None
    try:
        extra = watch(proposal) if watch is not None else {}
        evaluation = evaluate(proposal.spec, seed=proposal.seed, cost=proposal.cost, **extra)
    except KeyboardInterrupt:
        steps.cut_off(proposal)
        raise
    return steps.finish(proposal, evaluation)
