"""Multi-fidelity promotion (successive halving over Pareto ranks, asynchronous as in ASHA) and
repeated seeds: the training a network gets beyond its rung-0 trial.

- The main study keeps one trial per sampled network, valued at rung 0 (the sampler learns from
  rung-0 values; ``--budget`` counts those trials).
- Every further training is a JOB: one trial of a second study in the same storage,
  ``"<name>.rungs"`` (Optuna refuses to change a finished trial, so it cannot go on the main one).
  A job records its parent trial, rung, repeat (seed index), seed, checkpoint and accuracy, and is
  claimed, heartbeated, recorded and recovered like a main trial (``search.engine.study``,
  ``heartbeat``, ``outcome``): a job cut off by kill -9 is failed as stale and, no longer taken,
  becomes due again; a finished one is never run twice.
- Rung r trains ``eta**r`` x the rung-0 epochs in total. Job (parent, r, i) continues from the
  checkpoint of (parent, r-1, i) for the remaining epochs, and deletes it once recorded (nothing
  else reads it); rung 0 of repeat 0 is the main trial.
- Which jobs are due is a pure function of the finished results (``due_promotions``,
  ``due_repeats``): at rung r with n results, the top ``n // eta`` by non-dominated rank on
  (accuracy at r, MACs), ties by crowding distance then trial number, are due at r+1 unless taken
  (running, finished, or failed for good). A free worker takes a due job before sampling a new
  network, so it never waits while a promotion is possible.
- Repeats (``--repeats K``): once the budget's trials and the promotions are done, the networks of
  the front (each at its highest rung) and the references are trained at the top rung with seeds
  ``repeat_seed(seed, i)``, i < K, each repeat going through the same rungs as repeat 0.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from blocks.cost import Cost
from search import faults
from search.config import SearchConfig
from search.engine.attributes import ATTR, JOB_KINDS, STATUS
from search.engine.heartbeat import Heartbeat, recover_stale
from search.engine.outcome import finish, make_outcome
from search.engine.study import claim, recover_stale_trials, requeue
from search.train.evaluator import Evaluation
from space.spec import ArchSpec

__all__ = ["JOBS_SUFFIX", "Job", "JobKey", "Ladder", "Result", "checkpoint_path", "collect", "crowding_distances",
           "describe_job", "due_promotions", "due_repeats", "front_parents", "job_units", "job_units_left", "network_values",
           "nondominated_ranks", "planned_units",
           "open_jobs_study", "promotion_order", "repeat_seed", "rung_epochs", "training_cost"]

log = logging.getLogger("seesaw_nas.search")

JOBS_SUFFIX = ".rungs"  # the jobs study: "<name>.rungs" in the run's storage
JobKey = tuple[int, int, int]  # (parent trial number, rung, repeat)
TERMINAL = (STATUS.OK, STATUS.DIVERGED, STATUS.FAILED)  # a job that ended so is never run again


# ---------------------------------------------------------------------------------------------- pure
@dataclass(frozen=True)
class Result:
    """One finished training with a result: network ``parent`` at ``rung`` with seed index ``repeat``."""

    parent: int
    rung: int
    repeat: int
    acc: float
    macs: float


def rung_epochs(epochs0: float, eta: int, rung: int) -> float:
    """Total epochs of rung ``rung``: ``eta**rung`` x the rung-0 epochs."""
    return float(epochs0) * eta**rung


def repeat_seed(seed: int, repeat: int) -> int:
    """Training seed of repeat ``repeat``: the run's seed for repeat 0, else one derived from both
    (every network of a repeat shares it: common random numbers within each repeat)."""
    if repeat == 0:
        return seed
    return int.from_bytes(hashlib.sha256(f"repeat:{seed}:{repeat}".encode()).digest()[:4], "big") % 2**31


def training_cost(budget: int, rungs: int, eta: int) -> float:
    """Rung-0 units the sampled networks and their promotions cost when all ``budget`` finish, if
    each rung kept exactly n // eta of its n (a promotion trains only its extra epochs).

    A lower bound for ASHA: a network promoted early stays promoted when later results push it
    out of the top 1/eta, so more are promoted (97 units instead of 63 for 27 networks, 3 rungs,
    eta 3, in BENCHMARKS.md's run of ``benchmarks/promotion_hypervolume.py``)."""
    total, n = float(budget), budget
    for r in range(1, rungs):
        n //= eta
        total += n * (eta**r - eta ** (r - 1))
    return total


def planned_units(budget: int, rungs: int, eta: int, repeats: int, references: int) -> float:
    """Rung-0 units of a whole run at the least: ``training_cost`` plus the references' repeats at the
    top rung (the front's repeats come on top; how many networks it holds is known only at the end)."""
    return training_cost(budget, rungs, eta) + (repeats - 1) * eta ** (rungs - 1) * references


def job_units(rung: int, eta: int, *, from_scratch: bool = False) -> float:
    """Rung-0 units one job trains: a promotion to ``rung`` only its extra epochs (it continues from
    rung - 1), a repeat's rung 0 or a job whose checkpoint was missing the whole rung."""
    if rung == 0 or from_scratch:
        return float(eta**rung)
    return float(eta**rung - eta ** (rung - 1))


def job_units_left(job_trials: Iterable[FrozenTrial], *, budget: int, rungs: int, eta: int, repeats: int,
                   references: int, front: int = 0) -> float:
    """Rung-0 units of the jobs not started yet (for the run's ETA): the promotions that
    ``training_cost`` counts and the repeats of the references and of ``front`` other networks (the
    front as it stands: the final one is known only once the budget is done), less every job
    started (running, or ended for good)."""
    planned = planned_units(budget, rungs, eta, repeats, references + front) - budget
    started = sum(job_units(j.user_attrs[ATTR.RUNG], eta, from_scratch=bool(j.user_attrs.get(ATTR.FROM_SCRATCH)))
                  for j in job_trials if ATTR.RUNG in j.user_attrs
                  and (j.state == TrialState.RUNNING or j.user_attrs.get(ATTR.STATUS) in TERMINAL))
    return max(0.0, planned - started)


def nondominated_ranks(points: Sequence[tuple[float, float]]) -> list[int]:
    """Non-dominated sorting of (accuracy: maximise, MACs: minimise): 0 for the front, 1 for the
    front of the rest, ... Hand-rolled because Optuna's non-dominated sort is private API; in two
    objectives it is a sort and a sweep, O(n log n): in order of accuracy (descending, ties by
    MACs), a point is dominated by an earlier distinct one iff that one has no more MACs, and the
    fronts' smallest MACs so far never decrease with the rank, so a bisection finds its front.
    Identical points share a rank."""
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], points[i][1]))
    front_min: list[float] = []  # smallest MACs of each front so far
    ranks = [0] * len(points)
    previous, previous_rank = None, 0
    for i in order:
        if points[i] == previous:
            ranks[i] = previous_rank
            continue
        macs = points[i][1]
        rank = bisect.bisect_right(front_min, macs)
        if rank == len(front_min):
            front_min.append(macs)
        else:
            front_min[rank] = macs
        ranks[i] = previous_rank = rank
        previous = points[i]
    return ranks


def crowding_distances(points: Sequence[tuple[float, float]]) -> list[float]:
    """NSGA-II crowding distance of each point within ``points`` (one front): the ends get inf."""
    n = len(points)
    dist = [0.0] * n
    if n <= 2:
        return [math.inf] * n
    for axis in (0, 1):
        order = sorted(range(n), key=lambda i: points[i][axis])
        lo, hi = points[order[0]][axis], points[order[-1]][axis]
        dist[order[0]] = dist[order[-1]] = math.inf
        if hi == lo:
            continue
        for k in range(1, n - 1):
            dist[order[k]] += (points[order[k + 1]][axis] - points[order[k - 1]][axis]) / (hi - lo)
    return dist


def promotion_order(results: Sequence[Result]) -> list[Result]:
    """``results`` best first: by non-dominated rank on (accuracy, MACs), within a rank by crowding
    distance (larger first), then by trial number: the same for any input order."""
    results = sorted(results, key=lambda r: r.parent)  # crowding breaks ties between equal values by position
    points = [(r.acc, r.macs) for r in results]
    ranks = nondominated_ranks(points)
    crowd = [0.0] * len(results)
    fronts: dict[int, list[int]] = {}
    for i, rank in enumerate(ranks):
        fronts.setdefault(rank, []).append(i)
    for members in fronts.values():
        for i, d in zip(members, crowding_distances([points[i] for i in members])):
            crowd[i] = d
    order = sorted(range(len(results)), key=lambda i: (ranks[i], -crowd[i], results[i].parent))
    return [results[i] for i in order]


def due_promotions(results: Iterable[Result], taken: set[JobKey], *, rungs: int, eta: int) -> list[JobKey]:
    """Promotions due now (ASHA over Pareto ranks): at each rung r < rungs-1 with n results of
    repeat 0, the top ``n // eta`` by ``promotion_order`` that are not taken at r+1. Deeper rungs first."""
    results = list(results)
    due: list[JobKey] = []
    for rung in range(rungs - 2, -1, -1):
        at = [r for r in results if r.rung == rung and r.repeat == 0]
        for r in promotion_order(at)[: len(at) // eta]:
            if (r.parent, rung + 1, 0) not in taken:
                due.append((r.parent, rung + 1, 0))
    return due


@dataclass(frozen=True)
class NetworkValue:
    """A network at its highest rung: accuracy per seed there, and its MACs."""

    rung: int
    accs: tuple[float, ...]
    macs: float

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accs)


def network_values(results: Iterable[Result]) -> dict[int, NetworkValue]:
    """Each network (parent) at the highest rung its repeat 0 reached, with every repeat's accuracy
    at that rung."""
    by_parent: dict[int, list[Result]] = {}
    for r in results:
        by_parent.setdefault(r.parent, []).append(r)
    out = {}
    for parent, rs in by_parent.items():
        zero = [r.rung for r in rs if r.repeat == 0]
        if not zero:
            continue
        top = max(zero)
        accs = tuple(r.acc for r in sorted(rs, key=lambda r: r.repeat) if r.rung == top)
        out[parent] = NetworkValue(top, accs, rs[0].macs)
    return out


def front_parents(values: dict[int, NetworkValue], max_macs: float | None = None) -> list[int]:
    """The networks on the (mean accuracy, MACs) front of ``values``."""
    parents = [p for p in sorted(values) if max_macs is None or values[p].macs <= max_macs]
    ranks = nondominated_ranks([(values[p].mean, values[p].macs) for p in parents])
    return [p for p, rank in zip(parents, ranks) if rank == 0]


def due_repeats(results: Iterable[Result], taken: set[JobKey], targets: Iterable[int], *, rungs: int,
                repeats: int) -> list[JobKey]:
    """For each target network and each repeat i < ``repeats``: the next job of its chain towards
    the top rung (rung h+1 after its highest result h at repeat i; rung 0 when it has none), unless
    taken. A chain whose next job failed for good stops there."""
    done: dict[tuple[int, int], int] = {}
    for r in results:
        done[(r.parent, r.repeat)] = max(done.get((r.parent, r.repeat), -1), r.rung)
    due = []
    for parent in targets:
        for i in range(repeats):
            h = done.get((parent, i), -1)
            if h < rungs - 1 and (parent, h + 1, i) not in taken:
                due.append((parent, h + 1, i))
    return due


# ---------------------------------------------------------------------------------------------- storage
def open_jobs_study(study: optuna.Study, *, create: bool = True) -> optuna.Study | None:
    """The jobs study of ``study`` ("<name>.rungs", same storage): loaded, or created once (None
    when it does not exist and not ``create``)."""
    storage = study._storage  # the main study's storage object: one connection, one journal
    name = study.study_name + JOBS_SUFFIX
    sampler = optuna.samplers.RandomSampler(seed=0)  # jobs sample nothing; ask must stay cheap
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        if not create:
            return None
        return optuna.create_study(storage=storage, study_name=name, direction="maximize", sampler=sampler,
                                   load_if_exists=True)
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler)


def collect(main_trials: Sequence[FrozenTrial], job_trials: Sequence[FrozenTrial]
            ) -> tuple[list[Result], set[JobKey], list[FrozenTrial]]:
    """(results, taken job keys, running jobs) of a run: rung 0 of repeat 0 from the main trials
    with a result, the rest from the jobs."""
    # by attribute, not by position: the study's objectives may be in any order (--objectives)
    results = [Result(t.number, 0, 0, t.user_attrs[ATTR.VAL_ACC], float(t.user_attrs[ATTR.MACS])) for t in main_trials
               if t.state == TrialState.COMPLETE and t.user_attrs.get(ATTR.STATUS) == STATUS.OK]
    taken: set[JobKey] = set()
    running = []
    for j in job_trials:
        a = j.user_attrs
        if ATTR.PARENT not in a:
            continue  # asked but killed before it said which job it is: nothing to redo
        key = (a[ATTR.PARENT], a[ATTR.RUNG], a[ATTR.REPEAT])
        if j.state == TrialState.RUNNING:
            taken.add(key)
            running.append(j)
        elif j.state in (TrialState.COMPLETE, TrialState.FAIL) and a.get(ATTR.STATUS) in TERMINAL:
            taken.add(key)
            if j.state == TrialState.COMPLETE and a.get(ATTR.STATUS) == STATUS.OK:
                results.append(Result(key[0], key[1], key[2], j.values[0], float(a[ATTR.MACS])))
    return results, taken, running


@dataclass
class Job:
    """A promotion or repeat to train: ``parent``'s network at ``rung`` with seed index ``repeat``."""

    trial: optuna.Trial
    kind: str
    parent: int
    rung: int
    repeat: int
    seed: int
    spec: ArchSpec
    key: str
    params: int
    macs: int
    epochs: float
    resume_from: Path | None
    save_to: Path | None

    @property
    def cost(self) -> Cost:
        return Cost(self.params, self.macs)

    @property
    def number(self) -> int:
        """The network's trial number in the main study (what progress lines show)."""
        return self.parent

    def train_kwargs(self) -> dict[str, Any]:
        """What the evaluator needs beyond a rung-0 trial: the total epochs and the checkpoints."""
        return {"epochs": self.epochs, "resume_from": self.resume_from, "save_to": self.save_to}


def checkpoint_path(run_dir: Path, key: str, rung: int, repeat: int) -> Path:
    """Where the trained state of a network (canonical ``key``) at ``rung``, seed ``repeat`` is kept."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return run_dir / "checkpoints" / f"{digest}_s{repeat}_r{rung}.pt"


class Ladder:
    """The jobs of one process over a run: which are due, claiming one, recording it.

    Call ``take`` holding the run's budget lock (``search.engine.heartbeat.budget_lock``)."""

    def __init__(self, study: optuna.Study, cfg: SearchConfig, *, epochs0: float) -> None:
        self.main, self.cfg, self.epochs0 = study, cfg, epochs0
        self.jobs = open_jobs_study(study)
        self.heartbeat = Heartbeat(self.jobs, cfg.heartbeat_grace_s)

    @property
    def rungs(self) -> int:
        return self.cfg.rungs

    def recover(self, *, dead_pids: bool = False) -> list[int]:
        """Fail the jobs of dead workers (stale heartbeat; with ``dead_pids`` also this host's dead
        processes): no longer taken, they become due again."""
        recovered = recover_stale(self.jobs, self.cfg.heartbeat_grace_s)
        if dead_pids:
            recovered += recover_stale_trials(self.jobs)
        return recovered

    def state(self, main_trials: Sequence[FrozenTrial]) -> tuple[list[Result], set[JobKey], list[FrozenTrial]]:
        """(results, taken job keys, running jobs) from one read of each study."""
        return collect(main_trials, self.jobs.get_trials(deepcopy=False))

    def due(self, main_trials: Sequence[FrozenTrial], budget_done: bool) -> tuple[list[tuple[str, JobKey]], list[FrozenTrial]]:
        """(due jobs as (kind, key), running jobs). Repeats open once the budget's trials are all
        finished and no promotion is due or running."""
        results, taken, running = self.state(main_trials)
        due = [(JOB_KINDS.PROMOTION, k) for k in due_promotions(results, taken, rungs=self.rungs, eta=self.cfg.eta)]
        if due or self.cfg.repeats <= 1 or not budget_done:
            return due, running
        if any(j.user_attrs.get(ATTR.JOB) == JOB_KINDS.PROMOTION for j in running):
            return due, running
        values = network_values(results)
        refs = [t.number for t in main_trials if t.user_attrs.get(ATTR.REFERENCE) and t.number in values]
        targets = list(dict.fromkeys(front_parents(values, self.cfg.max_macs) + refs))
        return [(JOB_KINDS.REPEAT, k) for k in due_repeats(results, taken, targets, rungs=self.rungs,
                                                          repeats=self.cfg.repeats)], running

    def take(self, kind: str, key: JobKey, main_trials: Sequence[FrozenTrial]) -> Job:
        """Claim job ``key`` (under the budget lock): ask, claim, describe it, beat for it."""
        parent, rung, repeat = key
        t = next(t for t in main_trials if t.number == parent)
        a = t.user_attrs
        spec_key = a[ATTR.KEY]
        resume = checkpoint_path(self.cfg.run_dir, spec_key, rung - 1, repeat) if rung > 0 else None
        from_scratch = resume is not None and not resume.exists()
        if from_scratch:  # e.g. written on another host's disk: train the whole rung from scratch
            log.info(f"trial {parent}: no checkpoint {resume} to continue from; rung {rung} trains from scratch")
            resume = None
        job = self.jobs.ask()
        claim(job)
        self.heartbeat.add(job)
        attrs = {ATTR.JOB: kind, ATTR.PARENT: parent, ATTR.RUNG: rung, ATTR.REPEAT: repeat,
                 ATTR.SEED: repeat_seed(self.cfg.seed, repeat), ATTR.KEY: spec_key, ATTR.MACS: a[ATTR.MACS],
                 ATTR.PARAMS: a[ATTR.PARAMS], ATTR.STATUS: STATUS.RUNNING}
        save_to = checkpoint_path(self.cfg.run_dir, spec_key, rung, repeat) if rung < self.rungs - 1 else None
        if save_to is not None:
            attrs[ATTR.CHECKPOINT] = str(save_to)
        if from_scratch:
            attrs[ATTR.FROM_SCRATCH] = True
        for name, value in attrs.items():
            job.set_user_attr(name, value)
        faults.point("job-claimed")
        return Job(job, kind, parent, rung, repeat, attrs[ATTR.SEED], ArchSpec.from_dict(a[ATTR.SPEC]), spec_key,
                   a[ATTR.PARAMS], a[ATTR.MACS], rung_epochs(self.epochs0, self.cfg.eta, rung), resume, save_to)

    def finish(self, job: Job, evaluation: Evaluation) -> tuple[FrozenTrial, str | None]:
        """Record the job's outcome (one record first, as for trials: ``search.engine.outcome``).
        Returns the job's trial and its search.log line (None: another worker had failed it as stale)."""
        faults.point("job-evaluated")
        attrs: dict[str, Any] = {f"{ATTR.METRIC_PREFIX}{k}": v for k, v in evaluation.metrics.items()}
        attrs[ATTR.STATUS] = evaluation.status
        if evaluation.status == STATUS.OK:
            outcome = make_outcome(attrs, [float(evaluation.val_acc)])
        else:
            attrs[ATTR.FAILURE] = evaluation.failure or evaluation.status
            outcome = make_outcome(attrs, None)
        try:
            job.trial.set_user_attr(ATTR.OUTCOME, outcome)
            faults.point("outcome-recorded")
            frozen = finish(self.jobs, job.trial, outcome)
            if job.resume_from is not None:  # its chain goes on from this job's state (or ends here): never read again
                job.resume_from.unlink(missing_ok=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            log.info(f"{describe_job(job)}: finished after another worker had failed it as stale; it runs again")
            self.heartbeat.remove(job.trial)
            return next(t for t in self.jobs.get_trials(deepcopy=False) if t.number == job.trial.number), None
        self.heartbeat.remove(job.trial)
        acc = f" val_acc={evaluation.val_acc:.4f}" if evaluation.status == STATUS.OK else f" {evaluation.status}"
        line = f"{describe_job(job)}:{acc}"
        log.info(line)
        return frozen, line

    def cut_off(self, job: Job, reason: str = "interrupted by the user; re-run on --resume") -> None:
        """The job will not finish here: failed without a result, so it is due again."""
        self.heartbeat.remove(job.trial)
        requeue(self.jobs, job.trial, status=STATUS.INTERRUPTED, reason=reason)


def describe_job(job: Job) -> str:
    """The job's line in search.log."""
    return (f"{job.kind} of trial {job.parent} to rung {job.rung} (repeat {job.repeat}, seed {job.seed}, "
            f"{job.epochs:g} epochs{', from its checkpoint' if job.resume_from else ''})")
