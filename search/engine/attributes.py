"""What every trial of a study records: user-attribute names, statuses, and what counts.

Trial bookkeeping lives in Optuna user attributes. What counts towards ``--budget``: every trial
that ended with a result or a genuine failure (exception, divergence, out of memory), but not
samples rejected by ``--max-macs`` before training (they cost nothing), nor trials cut off by
Ctrl-C or a killed process, which are re-run on resume.
"""

from __future__ import annotations

from optuna.trial import FrozenTrial, TrialState

__all__ = ["ATTR", "COUNTED_STATUSES", "JOB_KINDS", "STATUS", "counted", "metric", "trial_status"]


class ATTR:
    """Names of the user attributes every trial carries."""

    KEY = "canonical_key"
    SPEC = "spec"
    REFERENCE = "reference"
    PARAMS = "params_count"
    MACS = "macs"
    LATENCY = "latency_ms"  # measured before training when latency is an objective or constrained (objectives.py)
    LATENCY_TARGET = "latency_target"  # where and how: 'cpu: NAME, 1 thread, batch 1, thread clock, torch X'
    LATENCY_MODE = "latency_mode"  # lookup (per-part table) or exact (whole network)
    STATUS = "status"  # one of STATUS
    FAILURE = "failure"
    DUPLICATE_OF = "duplicate_of"
    HOST = "host"
    PID = "pid"
    HEARTBEAT = "heartbeat"  # time.time() of the owner's last beat (journal storages; search/engine/heartbeat.py)
    TRAINING = "training_key"  # set when this trial starts training its canonical key (no twin in flight)
    METRIC_PREFIX = "metric_"  # + a training metric: metric_val_acc, metric_train_time_s, ...
    VAL_ACC = METRIC_PREFIX + "val_acc"
    VAL_LOSS = METRIC_PREFIX + "val_loss"
    TRAIN_TIME = METRIC_PREFIX + "train_time_s"
    IMAGES_PER_S = METRIC_PREFIX + "images_per_s"
    PRESCREEN_SCORE = "prescreen_score"  # with --prescreen (search/engine/prescreen.py)
    OUTCOME = "outcome"  # the whole outcome, written in one record before tell (search/engine/outcome.py)
    # Jobs of the rungs study (search/engine/ladder.py): one trial per promotion or repeat
    JOB = "job"  # one of JOB_KINDS
    PARENT = "parent_trial"  # the main study's trial whose network the job trains further
    RUNG = "rung"  # fidelity index: rung r trains eta**r x the rung-0 epochs in total
    REPEAT = "repeat"  # seed index: repeat 0 uses the run's seed (common random numbers)
    SEED = "seed"  # training seed of the job
    CHECKPOINT = "checkpoint"  # where the job's trained state is saved (run folder)
    FROM_SCRATCH = "from_scratch"  # True when the checkpoint it should continue from was missing
    # Per-network results over rungs and seeds, on the view the results read (search/results/rung_view.py)
    RUNG_REACHED = "rung_reached"
    ACC_RUNG = "acc_rung"  # + rung index: acc_rung0, acc_rung1, ... (repeat 0)
    ACC_MEAN = "acc_mean"  # over the seeds at the highest rung reached
    ACC_STD = "acc_std"
    ACC_CI95 = "acc_ci95"  # half-width of the 95% CI of the mean (Student t); None with one seed
    SEEDS = "n_seeds"
    ACC_SEEDS = "acc_seeds"  # the accuracy of each seed at that rung (repeat order)
    TRAINING_SEEDS = "training_seeds"  # the training seed of each of them


def metric(name: str) -> str:
    """The user attribute that holds training metric ``name`` (``val_acc`` -> ``metric_val_acc``)."""
    return ATTR.METRIC_PREFIX + name


class STATUS:
    """Values of ``ATTR.STATUS``."""

    RUNNING = "running"
    OK = "ok"
    DUPLICATE = "duplicate"
    INFEASIBLE = "infeasible"
    FAILED = "failed"
    DIVERGED = "diverged"
    INTERRUPTED = "interrupted"
    PRESCREENED = "prescreened"
    STALE = "stale"  # shown only: a FAIL trial left "running" was cut off by a dead process
    WAITING = "waiting"  # shown only: enqueued, not started yet


class JOB_KINDS:
    """Values of ``ATTR.JOB``."""

    PROMOTION = "promotion"  # successive halving: the top 1/eta of a rung go on
    REPEAT = "repeat"  # another seed at the top rung for the final front and the references


COUNTED_STATUSES = (STATUS.OK, STATUS.DUPLICATE, STATUS.FAILED, STATUS.DIVERGED)
TRAINED_STATUSES = (STATUS.OK, STATUS.DIVERGED)  # trained to the end: a twin reuses the outcome


def counted(trial: FrozenTrial) -> bool:
    """Whether a trial counts towards the budget (see the module docstring)."""
    if trial.state not in (TrialState.COMPLETE, TrialState.FAIL):
        return False
    return trial.user_attrs.get(ATTR.STATUS) in COUNTED_STATUSES


def trial_status(trial: FrozenTrial) -> str:
    """The status to show: a FAIL trial left 'running' is 'stale' (its process died); a queued
    trial is 'waiting'."""
    if trial.state == TrialState.WAITING:
        return STATUS.WAITING
    status = trial.user_attrs.get(ATTR.STATUS, STATUS.RUNNING)
    if status == STATUS.RUNNING and trial.state == TrialState.FAIL:
        return STATUS.STALE
    return status
