"""The Ray Tune executor: the same search as the local executor, run as Ray Tune trials on a Ray
cluster (several small trials per GPU), over the run's own Optuna study.

    python launch_search.py --executor ray --gpus-per-trial 0.25 --cpus-per-trial 2
    python launch_search.py --executor ray --ray-address HEAD_IP:6379 --storage postgresql://...

A trial is the same step as with the local executor (``search.engine.trial.TrialSteps``): the
driver's ``next`` asks the study and proposes (sample, count MACs, time latency when used,
``--max-macs``/``--max-latency``, de-duplicate), a Ray worker trains the spec with ``ProxyEvaluator``, and the driver's ``finish`` records it. Only the spec (a
plain dict) and the outcome cross process boundaries. The study on disk stays the record of the
run, so resume, plots, the Pareto front and export work unchanged. With ``--rungs``/``--repeats``
above 1, ``next`` hands out promotion and repeat jobs too (``search.engine.ladder``), each a Ray
trial of its own: its config carries the epochs and the checkpoint paths in the run folder. A
worker continues from the checkpoint when its node can read it (one machine, or a run folder on a
shared file system), and otherwise trains the rung from scratch, recorded as such.

Why a thin ``Searcher`` of our own and not Ray's ``OptunaSearch`` (checked against Ray 2.60):
OptunaSearch does accept a storage and a study name, but
- it tells a trial that returned without the metric as PRUNED, so a diverged or crashed network
  cannot be recorded as FAIL with our ``status``/``failure`` attributes and metrics, which
  ``trials.csv``, the summary and the budget read;
- it makes every sample a Ray trial: a sample over ``--max-macs`` or a duplicate architecture,
  which the local executor records without training, would cost a Ray trial, and it knows no
  budget counted in finished trials (``search.engine.study.finished_count``), only ``num_samples``;
- its ``save()``, which Tune calls to checkpoint the experiment, pickles the study, and a study
  on a journal file does not pickle.
``StudySearcher`` is therefore the local executor's ``TrialSteps`` behind Tune's
``suggest``/``on_trial_complete``, with the same budget check under the same lock.

Ray facts this module relies on:
- Workers load the data once per process (``_WORKER_DATA``) and actors are reused between trials
  (``reuse_actors``), so a trial costs ~20 ms more than with the local executor once the first
  one has started (~10 s; BENCHMARKS.md, "Ray executor overhead"). Data are never downloaded in
  a trial: the driver loads (downloads) them before Tune starts, and a worker that does not find
  CIFAR in ``--data-dir`` stops the run with a message instead of downloading.
- No trial schedulers (ASHA, HyperBand, PBT ...): they stop trials on one metric, and Ray records
  an early-stopped trial as complete, which would put half-trained networks on the Pareto front
  of a two-objective search. ``--scheduler`` is refused.
- Without ``--ray-address`` a private Ray instance is started on loopback and shut down with the
  run; with it the driver joins the cluster and leaves it running.
"""

from __future__ import annotations

import datetime
import functools
import logging
import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import blocks
import search
import space
from blocks.cost import Cost
from search.config import SearchConfig, SearchError
from search.engine.attributes import ATTR
from search.engine.ladder import Job, describe_job
from search.engine.session import Run
from search.engine.trial import AfterTrial, Proposal
from search.results.progress import TrialProgress
from search.train.data import load_dataset
from search.train.evaluator import Evaluation, ProxyEvaluator, describe_exception
from space.spec import ArchSpec

log = logging.getLogger("seesaw_nas.search")

# Set before Ray is imported (several are read at import). RAY_AIR_NEW_OUTPUT=0: Tune's new console
# output prints a table even with verbose=0; the old one is silent, and our tqdm bar shows progress.
RAY_ENVIRONMENT = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_CHDIR_TO_TRIAL_DIR": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_PRINT_ALL_TRIAL_ERRORS": "0",  # a dead worker's trial is recorded as failed, with Ray's message
}
# Only for the private instance started without --ray-address: bind to loopback, no token auth.
# A cluster that is joined keeps the settings it was started with.
LOCAL_RAY_ENVIRONMENT = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AUTH_MODE": "disabled",
}
# The worker's host:pid, recorded on each trained trial (the driver's host and pid are in ATTR.HOST/PID).
WORKER_ATTR = "ray_worker"
NODE_ATTR = "ray_node"  # the Ray node id that trained the trial (several nodes may share a host name)
# What a worker reports: our outcome, under one key so it never clashes with Tune's own result keys.
RESULT_KEY = "seesaw"
SETUP_FAILED = "worker_setup_failed"
# The folder of CIFAR files that torchvision expects under --data-dir.
CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


# ----------------------------------------------------------------------------- settings


def check_ray_config(cfg: SearchConfig) -> None:
    """Refuse settings the Ray executor cannot honour, before anything starts."""
    if cfg.scheduler is not None:
        raise SearchError(
            f"--scheduler {cfg.scheduler!r} is refused: the search has two objectives or more ({','.join(cfg.objectives)}) and Ray Tune "
            "schedulers such as ASHA stop trials on one metric and record early-stopped trials as complete; "
            "leave --scheduler out (shorten trials with --epochs instead)"
        )
    if cfg.workers != 1:
        raise SearchError(f"--workers {cfg.workers} is for --executor local; with --executor ray use --max-concurrent")
    if cfg.cpus_per_trial <= 0:
        raise SearchError(f"--cpus-per-trial must be > 0, got {cfg.cpus_per_trial}")
    if cfg.gpus_per_trial > 1 and not float(cfg.gpus_per_trial).is_integer():
        raise SearchError(f"--gpus-per-trial above 1 must be a whole number (Ray's rule), got {cfg.gpus_per_trial}")
    if cfg.max_concurrent < 0:
        raise SearchError(f"--max-concurrent must be >= 0 (0: as resources allow), got {cfg.max_concurrent}")
    if cfg.max_retries < 0:
        raise SearchError(f"--max-retries must be >= 0, got {cfg.max_retries}")


def check_ray_address(address: str | None, timeout_s: float = 5.0) -> None:
    """Fail fast on an address where no cluster listens: ``ray.init`` would wait for minutes."""
    if address is None or address in ("auto", "local"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SearchError(f"--ray-address must be HOST:PORT (as `ray start --head` prints it), got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise SearchError(f"--ray-address {address}: nothing answers at {host}:{port} ({exc.strerror or exc}); start "
                          f"the cluster with `ray start --head --port={port}` there, or check the address") from None


def preflight(cfg: SearchConfig) -> None:
    """The checks that need no Ray: run before the study is created, so a refusal leaves nothing behind."""
    check_ray_config(cfg)
    check_ray_address(cfg.ray_address)


@dataclass(frozen=True)
class TrialResources:
    cpus: float
    gpus: float
    max_concurrent: int

    @property
    def device(self) -> str:
        # Ray sets CUDA_VISIBLE_DEVICES for the trial, so its GPU is always cuda:0
        return "cuda" if self.gpus > 0 else "cpu"


def trial_resources(cfg: SearchConfig, driver_device: str, nodes: list[dict[str, float]]) -> TrialResources:
    """Resources per trial and the concurrency limit, checked against the cluster's nodes."""
    cluster_gpus = sum(n.get("GPU", 0.0) for n in nodes)
    cluster_cpus = sum(n.get("CPU", 0.0) for n in nodes)
    on_gpu = driver_device.startswith("cuda")
    if cfg.gpus_per_trial < 0:  # auto
        if on_gpu and cluster_gpus == 0:
            raise SearchError("--device resolved to cuda on this machine, but the Ray cluster has no GPU; pass --device cpu")
        gpus = 0.25 if on_gpu else 0.0
    else:
        gpus = float(cfg.gpus_per_trial)
        if gpus > 0 and not on_gpu:
            raise SearchError(f"--gpus-per-trial {gpus:g} needs --device cuda (or auto on a machine with a GPU); "
                              "got --device cpu")
        if gpus == 0 and on_gpu:
            raise SearchError("--gpus-per-trial 0 with --device cuda would train on CPUs with the GPU proxy; "
                              "pass --device cpu, or a fraction such as --gpus-per-trial 0.25")
    cpus = float(cfg.cpus_per_trial)
    if not any(n.get("CPU", 0.0) >= cpus and n.get("GPU", 0.0) >= gpus for n in nodes):
        raise SearchError(
            f"no Ray node has {cpus:g} CPUs and {gpus:g} GPUs for one trial (nodes: "
            + ", ".join(f"{n.get('CPU', 0):g} CPUs/{n.get('GPU', 0):g} GPUs" for n in nodes)
            + "); lower --cpus-per-trial / --gpus-per-trial"
        )
    if cfg.max_concurrent > 0:
        limit = cfg.max_concurrent
    else:
        fits = [math.floor(cluster_cpus / cpus + 1e-9)]
        if gpus > 0:
            fits.append(math.floor(cluster_gpus / gpus + 1e-9))
        limit = max(1, min(fits))
    return TrialResources(cpus=cpus, gpus=gpus, max_concurrent=limit)


# ----------------------------------------------------------------------------- worker side


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker needs besides the spec; the same for every trial of a run."""

    dataset: str
    data_dir: str  # absolute: the same path must hold the data on every node
    val_size: int
    split_seed: int
    device: str
    proxy: Any  # search.train.proxy.ProxyConfig
    threads: int  # torch intra-op threads of one trial (= its CPUs)

    @property
    def data_key(self) -> tuple:
        return (self.dataset, self.data_dir, self.device, self.val_size, self.split_seed)


# Loaded data per worker process, keyed by WorkerSetup.data_key: with reused actors a process
# trains many trials and loads the data set once.
_WORKER_DATA: dict[tuple, Any] = {}


def worker_data(setup: WorkerSetup) -> Any:
    if setup.data_key not in _WORKER_DATA:
        folder = CIFAR_FOLDERS.get(setup.dataset)
        if folder and not (Path(setup.data_dir) / folder).is_dir():
            # never download inside a trial (N workers would download N copies at once)
            raise FileNotFoundError(f"{setup.dataset} is not in {setup.data_dir} on this node; copy it there "
                                    "(or put --data-dir on a shared file system) and --resume")
        _WORKER_DATA[setup.data_key] = load_dataset(setup.dataset, setup.data_dir, device=setup.device,
                                                    val_size=setup.val_size, seed=setup.split_seed)
    return _WORKER_DATA[setup.data_key]


def evaluate_trial(config: dict[str, Any], setup: WorkerSetup) -> dict[str, Any]:
    """The Tune trainable: train one spec on this worker's resident data; returns the outcome."""
    torch.set_num_threads(setup.threads)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    import ray  # optional heavy dependency: this runs inside a Ray worker only

    node = ray.get_runtime_context().get_node_id()
    try:
        data = worker_data(setup)
    except Exception as exc:  # reported, and the driver stops the run: every trial here would fail the same way
        return {RESULT_KEY: {"status": SETUP_FAILED, "worker": worker,
                             "failure": f"worker {worker} could not load the data: {describe_exception(exc)}"}}
    evaluator = ProxyEvaluator(data, setup.proxy, setup.device, data.num_classes)
    cost = Cost(config["params"], config["macs"]) if "macs" in config else None
    train, from_scratch = job_train_kwargs(config)
    evaluation = evaluator(ArchSpec.from_dict(config["spec"]), seed=config["seed"], cost=cost, **train)
    return {RESULT_KEY: {"status": evaluation.status, "val_acc": evaluation.val_acc, "failure": evaluation.failure,
                         "metrics": evaluation.metrics, "worker": worker, "node": node, "from_scratch": from_scratch}}


def job_train_kwargs(config: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The evaluator's ``epochs``/``resume_from``/``save_to`` of a trial's config (a promotion, a repeat,
    or a rung-0 trial that keeps its state), and whether it trains from scratch because the checkpoint
    it would continue from is not on this node (written on another node's disk)."""
    train = {k: (Path(v) if k != "epochs" else v) for k, v in config.get("train", {}).items() if v is not None}
    missing = "resume_from" in train and not train["resume_from"].exists()
    if missing:
        del train["resume_from"]
    return train, missing


def unpack_result(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """Our outcome from a Tune result (Tune flattens nested keys to 'a/b' before the searcher sees them)."""
    if not result:
        return None
    if isinstance(result.get(RESULT_KEY), dict):
        return result[RESULT_KEY]
    prefix = RESULT_KEY + "/"
    flat = {k[len(prefix):]: v for k, v in result.items() if k.startswith(prefix)}
    if "status" not in flat:
        return None
    metrics = {k[len("metrics/"):]: v for k, v in flat.items() if k.startswith("metrics/")}
    return {**{k: v for k, v in flat.items() if not k.startswith("metrics/")}, "metrics": metrics}


# ----------------------------------------------------------------------------- driver side


@functools.cache
def study_searcher_class() -> type:
    """``StudySearcher``: Tune's ``Searcher`` with our steps (built on first use; Ray loads only here)."""
    from ray.tune.search import Searcher  # Ray is optional and heavy: imported only when the executor runs

    class StudySearcher(StudySteps, Searcher):
        __doc__ = StudySteps.__doc__

    return StudySearcher


class StudySteps:
    """Tune's ``Searcher`` over the run's study: ``suggest`` = budget check, ask, ``propose``;
    ``on_trial_complete`` = ``record``. Samples that need no training (over ``--max-macs``,
    duplicates) are recorded inside ``suggest`` and never become Ray trials."""

    def __init__(self, run: Run, after_trial: AfterTrial | None = None) -> None:
        super().__init__(metric=None, mode=None)
        self.run = run
        self.steps = run.steps(after_trial, wait_for_twins=False)  # suggest must not block Tune
        self.pending: dict[str, Proposal | Job] = {}  # Tune trial id -> proposal or job being trained
        self.errored: dict[str, Proposal | Job] = {}  # errored in Ray, waiting for the error message
        self.stop_reason: str | None = None  # set when the run must stop (bad data on a worker)
        self.error: BaseException | None = None  # an exception on the driver, re-raised after Tune

    # Tune pickles its search algorithm into the experiment folder (tuner.pkl) for Tuner.restore.
    # A study does not pickle and is not needed there: a run resumes with --resume from the study.
    def __getstate__(self) -> dict[str, Any]:
        return {"_metric": None, "_mode": None}

    def save(self, checkpoint_path: str) -> None:  # the study is the searcher's state
        pass

    def restore(self, checkpoint_path: str) -> None:
        raise NotImplementedError("resume a search with launch_search.py --resume, not Tuner.restore")

    # -- Tune's hooks

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.error is not None or self.stop_reason is not None:
            return self.FINISHED
        try:
            return self._suggest(trial_id)
        except Exception as exc:  # raised again by run_ray once Tune has stopped
            self.error = exc
            return self.FINISHED

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        proposal = self.pending.pop(trial_id, None)
        if proposal is None:
            return
        if error:
            self.errored[trial_id] = proposal  # recorded by record_worker_error with Ray's message
            return
        outcome = unpack_result(result)
        try:
            if outcome is None:  # stopped by Tune before it reported (Ctrl-C, end of run)
                self.steps.cut_off(proposal)
            elif outcome["status"] == SETUP_FAILED:
                self.stop_reason = outcome["failure"]
                self.steps.cut_off(proposal, f"{outcome['failure']}; re-run on --resume")
            else:
                proposal.trial.set_user_attr(WORKER_ATTR, outcome.get("worker"))
                if outcome.get("node"):
                    proposal.trial.set_user_attr(NODE_ATTR, outcome["node"])
                if outcome.get("from_scratch") and isinstance(proposal, Job):  # counted as a whole rung's training
                    log.info(f"{describe_job(proposal)}: its checkpoint is not on the node that trained it; "
                             "it trained the whole rung from scratch")
                    proposal.trial.set_user_attr(ATTR.FROM_SCRATCH, True)
                evaluation = Evaluation(status=outcome["status"], val_acc=_number(outcome.get("val_acc")),
                                        metrics=dict(outcome.get("metrics") or {}), failure=outcome.get("failure"))
                self.steps.finish(proposal, evaluation)
        except Exception as exc:
            self.error = self.error or exc

    def record_worker_error(self, trial_id: str, text: str) -> None:
        """A trial whose Ray worker died (out of memory, node lost) after --max-retries retries; ``text``
        is Ray's whole error text: a lost node is read from all of it, not from its one-line summary
        (which can be empty: "no message")."""
        proposal = self.errored.pop(trial_id, None)
        if proposal is None:
            return
        message = error_summary(text)
        retries = self.run.cfg.max_retries
        failure = f"the Ray worker died (retried {retries} time{'' if retries == 1 else 's'}): {message}"
        try:
            if node_lost(text):  # not the network's fault: not counted, its architecture runs again
                self.steps.cut_off(proposal, f"its Ray node was lost ({message}); its architecture runs again")
                return
            self.steps.finish(proposal, Evaluation(status="failed", failure=failure))
        except Exception as exc:
            self.error = self.error or exc

    def close(self) -> int:
        """After Tune: record what it left unfinished; returns how many trials Ctrl-C cut off."""
        for trial_id in list(self.errored):
            self.record_worker_error(trial_id, "see the trial's error.txt under the run's ray/ folder")
        # Tune stops running trials on Ctrl-C without telling the searcher
        cut_off = len(self.pending)
        for proposal in self.pending.values():
            self.steps.cut_off(proposal)
        self.pending.clear()
        return cut_off

    # -- the trial step

    def _suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        proposal = self.steps.next()
        if proposal is None:
            # the budget is met or covered by running trials: ours will report, others' too
            return None if self.pending else self.FINISHED
        self.pending[trial_id] = proposal
        name = f"trial_{proposal.number}"
        if isinstance(proposal, Job):  # a promotion or repeat of trial N: a Ray trial (and folder) of its own
            name += f"_rung{proposal.rung}_repeat{proposal.repeat}"
        train = {k: (str(v) if isinstance(v, Path) else v) for k, v in proposal.train_kwargs().items()}
        return {"number": proposal.number, "name": name, "seed": proposal.seed, "spec": proposal.spec.to_dict(),
                "params": proposal.params, "macs": proposal.macs, "train": train}


# Ray's words for a trial whose node (not its own process) went away. Tune's retries of such a
# trial can land on the dead actor again, so it is re-enqueued instead of counted as failed.
NODE_LOST_MARKERS = ("is unavailable", "NodeDiedError", "node died", "Failed to connect to remote host")


def node_lost(message: str) -> bool:
    """Whether Ray's error message of a trial says that its node was lost."""
    return any(marker.lower() in message.lower() for marker in NODE_LOST_MARKERS)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else float("nan")


def _trial_name(trial: Any) -> str:
    return trial.config.get("name") or f"trial_{trial.config['number']}"


def error_summary(text: str, limit: int = 300) -> str:
    """One line from Ray's error text of a trial: its last failure, without the actor's metadata."""
    last = text.split("Failure # ")[-1].splitlines()[1:] if "Failure # " in text else text.splitlines()
    lines = [line.strip() for line in last if line.strip() and not line[:1].isspace() and not line.startswith("Traceback")]
    summary = " ".join(lines) or "no message"
    return summary if len(summary) <= limit else summary[: limit - 3] + "..."


class _DropTrialsDidNotComplete(logging.Filter):
    """Tune logs every errored trial again at the end; ours are in trials.csv and the summary."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Trials did not complete")


@functools.cache
def error_messages_class() -> type:
    """A Tune callback that hands Ray's message about a dead trial to the searcher (which Tune
    tells first, without the message)."""
    from ray.tune import Callback  # optional, heavy: see study_searcher_class

    class TrialErrorMessages(Callback):
        def __init__(self, searcher: StudySteps) -> None:
            self.searcher = searcher

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            error = trial.get_error()
            self.searcher.record_worker_error(trial.trial_id, str(error) if error is not None else "")

        def __getstate__(self) -> dict[str, Any]:  # see StudySearcher.__getstate__
            return {}

    return TrialErrorMessages


# ----------------------------------------------------------------------------- Ray session


def set_ray_environment(local: bool) -> None:
    """Environment for Ray; the user's own settings win."""
    for key, value in {**RAY_ENVIRONMENT, **(LOCAL_RAY_ENVIRONMENT if local else {})}.items():
        os.environ.setdefault(key, value)


def connect(cfg: SearchConfig) -> bool:
    """Join --ray-address, or start a private local instance; returns whether we must shut it down."""
    import ray  # optional, heavy: see study_searcher_class

    if ray.is_initialized():  # a caller (a notebook, a test) manages Ray itself
        return False
    # Our packages travel to the workers with the job, so nodes of a cluster need no checkout.
    runtime_env = {"py_modules": [space, blocks, search], "env_vars": {"RAY_CHDIR_TO_TRIAL_DIR": "0"}}
    common = dict(runtime_env=runtime_env, log_to_driver=False, logging_level=logging.ERROR)
    if cfg.ray_address is None:
        ray.init(address="local", include_dashboard=False, **common)
    else:
        try:
            ray.init(address=cfg.ray_address, **common)
        except (ConnectionError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SearchError(f"--ray-address {cfg.ray_address}: cannot join the Ray cluster ({first}); start it with "
                              "`ray start --head` and pass the address it prints") from None
    return True


def run_ray(run: "Run") -> None:
    """Run trials on Ray until the study has ``--budget`` counted trials."""
    cfg = run.cfg
    preflight(cfg)
    set_ray_environment(local=cfg.ray_address is None)
    import ray  # optional, heavy: imported after set_ray_environment, which Ray reads at import
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    logging.getLogger("ray").setLevel(logging.ERROR)
    started = connect(cfg)
    try:
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        resources = trial_resources(cfg, run.device, nodes)
        setup = WorkerSetup(dataset=cfg.dataset, data_dir=str(Path(cfg.data_dir).resolve()), val_size=cfg.val_size,
                            split_seed=cfg.seed, device=resources.device, proxy=run.proxy,
                            threads=max(1, int(resources.cpus)))
        log.info(f"ray: {len(nodes)} node(s), {resources.cpus:g} CPUs and {resources.gpus:g} GPUs per trial, "
                 f"up to {resources.max_concurrent} at once")
        trainable = tune.with_resources(tune.with_parameters(evaluate_trial, setup=setup),
                                        {"cpu": resources.cpus, "gpu": resources.gpus})
        with TrialProgress(run.study, cfg) as progress:
            searcher = study_searcher_class()(run, after_trial=progress.update)
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=ConcurrencyLimiter(searcher, max_concurrent=resources.max_concurrent),
                    num_samples=-1,  # the searcher says when the budget is met
                    reuse_actors=True,
                    trial_name_creator=_trial_name,
                    trial_dirname_creator=_trial_name,
                ),
                run_config=tune.RunConfig(
                    name=f"tune-{datetime.datetime.now():%Y%m%d-%H%M%S}",
                    storage_path=str(cfg.run_dir.resolve() / "ray"),
                    verbose=0,
                    failure_config=tune.FailureConfig(max_failures=cfg.max_retries),
                    callbacks=[error_messages_class()(searcher)],
                ),
            )
            quiet = _DropTrialsDidNotComplete()
            logging.getLogger("ray.tune.tune").addFilter(quiet)
            try:
                tuner.fit()
            finally:
                logging.getLogger("ray.tune.tune").removeFilter(quiet)
                cut_off = searcher.close()
    finally:
        if started:
            ray.shutdown()
    if searcher.error is not None:
        raise searcher.error
    if searcher.stop_reason is not None:
        raise SearchError(f"stopped: {searcher.stop_reason}")
    if cut_off:
        raise KeyboardInterrupt  # Tune caught Ctrl-C and stopped the trials; they run again on --resume
