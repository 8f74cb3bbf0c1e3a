"""The one trial step every executor runs: ask -> claim -> propose -> evaluate -> record.

- ``propose`` (sample, count, time when latency is used, constrain, de-duplicate) is cheap and runs
  on the process that owns the study; a sample over ``--max-macs`` or ``--max-latency`` or already
  evaluated (same canonical key) costs no training and is recorded at once.
- the evaluation (``search.train.evaluator.ProxyEvaluator``) is the expensive part, which any
  executor may run elsewhere: only the spec (a plain dict) and the ``Evaluation`` travel.
- ``record`` writes the outcome to the study; ``requeue`` (``search.engine.study``) re-runs a trial
  that was cut off.

``TrialSteps`` holds these steps for one process; executors only decide where the evaluation runs:
the local executor calls ``run_trial`` in a loop, the Ray executor splits it around a Ray trial.
With ``--rungs``/``--repeats`` above 1, ``next`` may return a promotion or repeat ``Job``
(``search.engine.ladder``) instead of a proposal; ``finish`` and ``cut_off`` take either.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import optuna
from optuna.trial import FrozenTrial, TrialState

from blocks.cost import Cost
from search import faults
from search.config import SearchConfig
from search.errors import SearchError
from search.engine.attributes import ATTR, STATUS, TRAINED_STATUSES, counted, metric, trial_status
from search.engine.heartbeat import Heartbeat, budget_lock, recover_stale
from search.engine.ladder import Job, Ladder, checkpoint_path
from search.engine.objectives import DEFAULT_OBJECTIVES, LatencyMeter, Objectives
from search.engine.outcome import finish, make_outcome
from search.engine.study import claim, requeue
from search.train.evaluator import Evaluation
from space.spaces import SearchSpace
from space.spec import ArchSpec

__all__ = ["AfterTrial", "Proposal", "TrialSteps", "describe_trial", "find_evaluated", "propose", "record", "run_trial",
           "trial_outcome"]

# Called when a trial or a promotion/repeat job of this process is recorded: its finished trial (of
# the jobs study for a job) and its search.log line.
AfterTrial = Callable[[FrozenTrial, str], None]

log = logging.getLogger("seesaw_nas.search")

# A space whose samples almost all exceed --max-macs would otherwise loop for ever.
MAX_INFEASIBLE_IN_A_ROW = 2000


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
    seed: int = 0  # training seed: the run's, for every trial (common random numbers)
    save_to: Path | None = None  # with --rungs above 1: where the rung-0 state is kept for promotion

    @property
    def number(self) -> int:
        return self.trial.number

    def train_kwargs(self) -> dict[str, Any]:
        """Evaluator keywords beyond the spec and seed (none unless a checkpoint is kept)."""
        return {"save_to": self.save_to} if self.save_to is not None else {}
    latency_ms: float | None = None  # measured when latency is an objective or constrained
    objectives: Objectives = Objectives.parse(DEFAULT_OBJECTIVES)

    @property
    def cost(self) -> Cost:
        return Cost(self.params, self.macs)

    def values(self, val_acc: float) -> list[float]:
        """The trial's objective values with accuracy ``val_acc``, in the study's order."""
        return self.objectives.values_of(val_acc=val_acc, params=self.params, macs=self.macs, latency_ms=self.latency_ms)

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
    objectives: Objectives | None = None,
    latency: LatencyMeter | None = None,
    max_latency_ms: float | None = None,
) -> Proposal:
    """Sample the trial's spec, record its cost (and latency, with a ``latency`` meter: at the
    exported network's size and input resolution) and constraints, and look for an earlier twin."""
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
    latency_ms = None
    if latency is not None:
        timed = latency(spec, num_classes, space.input_size)
        for name, value in timed.items():
            trial.set_user_attr(name, value)
        latency_ms = timed[ATTR.LATENCY]
        if max_latency_ms is not None:
            trial.set_constraint("max_latency", float(latency_ms - max_latency_ms))
    reference = trial.user_attrs.get(ATTR.REFERENCE)
    proposal = Proposal(trial, spec, key, cost.params, cost.macs, reference=reference, latency_ms=latency_ms,
                        objectives=objectives or Objectives.parse(DEFAULT_OBJECTIVES))
    proposal.infeasible = ((max_macs is not None and cost.macs > max_macs)
                           or (max_latency_ms is not None and latency_ms is not None and latency_ms > max_latency_ms))
    if not proposal.infeasible:
        done = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
        proposal.duplicate_of = find_evaluated(done, key, exclude=trial.number)
    return proposal


def find_evaluated(trials: Iterable[FrozenTrial], key: str, exclude: int) -> FrozenTrial | None:
    """The first trained trial (ok or diverged) of the same architecture among ``trials``, if any."""
    for t in trials:
        if (t.state in (TrialState.COMPLETE, TrialState.FAIL) and t.number != exclude and t.user_attrs.get(ATTR.KEY) == key
                and t.user_attrs.get(ATTR.STATUS) in TRAINED_STATUSES):
            return t
    return None


def record(study: optuna.Study, proposal: Proposal, evaluation: Evaluation | None) -> FrozenTrial:
    """Tell the study how the trial ended; returns the finished trial.

    The outcome is stored in one record first (``search.engine.outcome``): a crash before ``tell``
    then loses nothing, recovery finishes the trial with it."""
    outcome = trial_outcome(proposal, evaluation)
    proposal.trial.set_user_attr(ATTR.OUTCOME, outcome)
    faults.point("outcome-recorded")
    return finish(study, proposal.trial, outcome)


def trial_outcome(proposal: Proposal, evaluation: Evaluation | None) -> dict[str, Any]:
    """What ``record`` writes: the status and attributes of the trial, and its values or a failure."""
    if proposal.infeasible:
        return make_outcome({ATTR.STATUS: STATUS.INFEASIBLE}, proposal.values(0.0))
    if proposal.duplicate_of is not None:
        twin = proposal.duplicate_of
        attrs: dict[str, Any] = {k: v for k, v in twin.user_attrs.items() if k.startswith(ATTR.METRIC_PREFIX)}
        attrs.update({ATTR.STATUS: STATUS.DUPLICATE, ATTR.DUPLICATE_OF: twin.number})
        if twin.state == TrialState.FAIL:
            attrs[ATTR.FAILURE] = f"same architecture as trial {twin.number}, which diverged"
            return make_outcome(attrs, None)
        return make_outcome(attrs, list(twin.values))
    assert evaluation is not None, "a trained proposal needs an evaluation"
    attrs = {metric(k): v for k, v in evaluation.metrics.items()}
    attrs[ATTR.STATUS] = evaluation.status
    if evaluation.status != STATUS.OK:
        attrs[ATTR.FAILURE] = evaluation.failure or evaluation.status
        return make_outcome(attrs, None)
    return make_outcome(attrs, proposal.values(float(evaluation.val_acc)))


def describe_trial(t: FrozenTrial) -> str:
    """The trial's line in search.log."""
    a = t.user_attrs
    acc = a.get(ATTR.VAL_ACC)
    parts = [
        f"trial {t.number}",
        trial_status(t),
        f"macs={a.get(ATTR.MACS, 0) / 1e6:.1f}M",
        f"params={a.get(ATTR.PARAMS, 0) / 1e6:.2f}M",
        f"latency={a[ATTR.LATENCY]:.3f}ms" if ATTR.LATENCY in a else "",
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
    (``None`` when the budget is met, or covered by running trials of this process; while other
    workers' running trials cover it, it waits: one of them may be a dead worker's). ``prescreen``
    (``search.engine.prescreen.Prescreener``) replaces ``study.ask()``.

    Several hosts: the lock is ``search.engine.heartbeat.budget_lock`` (with a PostgreSQL study
    also a lock on the server); under it a worker first fails the trials of dead workers
    (heartbeat older than ``--heartbeat-grace``) and enqueues them again. Every trial this process
    holds has a heartbeat from claim to record. No twin in flight: a proposal whose canonical key
    another running trial is already training waits for that result and is recorded as its
    duplicate (``wait_for_twins``; the Ray driver, which must not block, trains it instead).
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
        after_trial: AfterTrial | None = None,
        wait_for_twins: bool = True,
        ladder: Ladder | None = None,
        latency: LatencyMeter | None = None,
    ) -> None:
        self.study, self.cfg, self.space = study, cfg, space
        self.num_classes, self.count_cost = num_classes, count_cost
        self.prescreen, self.after_trial = prescreen, after_trial
        self.infeasible_in_a_row = 0
        self.wait_for_twins = wait_for_twins
        self.heartbeat = Heartbeat(study, cfg.heartbeat_grace_s)
        self.ladder = ladder
        self.objectives = cfg.objective_set()
        self.latency = latency if latency is not None else cfg.latency_meter()

    def next(self) -> Proposal | Job | None:
        """The next proposal (or, with a ladder, promotion or repeat ``Job``: taken first when one is
        due) to train, or None when the budget needs no more trials and no job is due or may become
        due (with a ladder it waits while other workers' trials or jobs run)."""
        while True:
            with budget_lock(self.cfg):
                recover_stale(self.study, self.cfg.heartbeat_grace_s)
                # one read: a trial told between two reads would be missed by both counts
                trials = self.study.get_trials(deepcopy=False)
                finished = sum(counted(t) for t in trials)
                running = [t for t in trials if t.state == TrialState.RUNNING]
                covered = finished + len(running) >= self.cfg.budget
                others: list[FrozenTrial] = []
                if self.ladder is not None:
                    self.ladder.recover()
                    due, running_jobs = self.ladder.due(trials, budget_done=finished >= self.cfg.budget and not running)
                    if due:
                        return self.ladder.take(*due[0], trials)
                    others = ([t for t in running if not self.heartbeat.holds(t)]
                              + [j for j in running_jobs if not self.ladder.heartbeat.holds(j)])
                if finished >= self.cfg.budget or (covered and all(self.heartbeat.holds(t) for t in running)):
                    if not others:
                        return None
                    covered = True  # wait: what the others finish may make a promotion or repeat due
                if not covered:
                    trial = self.study.ask() if self.prescreen is None else self.prescreen.ask(self.study)
                    faults.point("ask")
                    claim(trial)
                    faults.point("claim")
                    self.heartbeat.add(trial)
            if covered:
                # Other workers' trials cover the rest of the budget: wait for them, since one may
                # belong to a dead worker and have to run again (recovered above once stale).
                time.sleep(min(2.0, self.cfg.heartbeat_grace_s / 4))
                continue
            try:
                proposal = propose(trial, self.space, num_classes=self.num_classes, max_macs=self.cfg.max_macs,
                                   count_cost=self.count_cost, objectives=self.objectives, latency=self.latency,
                                   max_latency_ms=self.cfg.max_latency_ms)
                if proposal.needs_training:
                    self.claim_training(proposal)
            except KeyboardInterrupt:  # interrupted while sampling: an enqueued architecture runs again
                self.heartbeat.remove(trial)
                requeue(self.study, trial, status=STATUS.INTERRUPTED, reason="interrupted while sampling")
                raise
            proposal.seed = self.cfg.seed  # common random numbers: see search.train.proxy.evaluate_spec
            if self.ladder is not None and self.ladder.rungs > 1 and proposal.needs_training:
                proposal.save_to = checkpoint_path(self.cfg.run_dir, proposal.key, 0, 0)
            if proposal.needs_training:
                self.infeasible_in_a_row = 0
                return proposal
            self.finish(proposal, None)
            self.infeasible_in_a_row = self.infeasible_in_a_row + 1 if proposal.infeasible else 0
            if self.infeasible_in_a_row >= MAX_INFEASIBLE_IN_A_ROW:
                given = [(f, v) for f, v in (("--max-macs", self.cfg.max_macs),
                                             ("--max-latency", self.cfg.max_latency_ms)) if v is not None]
                limits = " or ".join(f"{f} {v}{'ms' if f == '--max-latency' else ''}" for f, v in given)
                raise SearchError(
                    f"{self.infeasible_in_a_row} samples in a row exceeded {limits}; raise "
                    f"{' or '.join(f for f, _ in given)} or use a smaller space (e.g. a lower width multiplier)"
                )

    def claim_training(self, proposal: Proposal) -> None:
        """Mark ``proposal`` as the one trial training its architecture, or (``wait_for_twins``) wait
        for the running trial that already trains it and make ``proposal`` its duplicate."""
        key, number = proposal.key, proposal.trial.number
        poll_s = min(2.0, self.cfg.heartbeat_grace_s / 4)
        while True:
            with budget_lock(self.cfg):
                recover_stale(self.study, self.cfg.heartbeat_grace_s)
                # one read: a twin told between two reads (done, then running) would be missed by both
                trials = self.study.get_trials(deepcopy=False)
                twin = proposal.duplicate_of = find_evaluated(trials, key, exclude=number)
                if twin is not None:
                    return  # trained meanwhile: recorded as its duplicate
                training = [t for t in trials if t.state == TrialState.RUNNING and t.number != number
                            and t.user_attrs.get(ATTR.TRAINING) == key]
                if not training or not self.wait_for_twins:
                    proposal.trial.set_user_attr(ATTR.TRAINING, key)
                    return
            log.info(f"trial {number}: trial {training[0].number} is training the same architecture; waiting for it")
            time.sleep(poll_s)

    def finish(self, proposal: Proposal | Job, evaluation: Evaluation | None) -> FrozenTrial:
        """Record the outcome, log it, report it; returns the finished trial (of the jobs study for a Job)."""
        if isinstance(proposal, Job):
            assert self.ladder is not None and evaluation is not None
            frozen, line = self.ladder.finish(proposal, evaluation)
            if line is not None and self.after_trial is not None:
                self.after_trial(frozen, line)
            return frozen
        try:
            frozen = record(self.study, proposal, evaluation)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker failed it as stale (no heartbeat for --heartbeat-grace) and enqueued it again.
            self.heartbeat.remove(proposal.trial)
            frozen = next(t for t in self.study.get_trials(deepcopy=False) if t.number == proposal.trial.number)
            log.info(f"trial {frozen.number}: finished after another worker had failed it as stale (its heartbeat "
                     "was late); its architecture runs again")
            return frozen
        self.heartbeat.remove(proposal.trial)
        line = describe_trial(frozen)
        log.info(line)
        if self.after_trial is not None:
            self.after_trial(frozen, line)
        return frozen

    def cut_off(self, proposal: Proposal | Job, reason: str = "interrupted by the user; re-run on --resume") -> None:
        """The trial will not finish here (Ctrl-C, a lost worker): not counted, its architecture re-enqueued
        (a Job: failed without a result, so it is due again)."""
        if isinstance(proposal, Job):
            assert self.ladder is not None
            self.ladder.cut_off(proposal, reason)
            return
        self.heartbeat.remove(proposal.trial)
        requeue(self.study, proposal.trial, status=STATUS.INTERRUPTED, reason=reason)


Evaluator = Callable[..., Evaluation]


def run_trial(steps: TrialSteps, evaluate: Evaluator,
              watch: Callable[[Proposal], dict[str, Any]] | None = None) -> FrozenTrial | None:
    """One whole trial (or promotion/repeat job) in this process: next proposal, train it, record
    it. None: budget met and nothing due.

    ``watch(proposal)``: extra keywords for ``evaluate`` (its ``on_step``/``on_epoch`` progress
    callbacks), made afresh for each trial that trains.
    """
    proposal = steps.next()
    if proposal is None:
        return None
    try:
        extra = watch(proposal) if watch is not None else {}
        evaluation = evaluate(proposal.spec, seed=proposal.seed, cost=proposal.cost, **extra, **proposal.train_kwargs())
    except KeyboardInterrupt:
        steps.cut_off(proposal)
        raise
    faults.point("evaluated")
    return steps.finish(proposal, evaluation)
