"""The Optuna study that records a search: storage, sampler, warm start, budget and recovery.

The study on disk is the record of a run: resume, plots, the Pareto front and export all read it,
whichever executor ran the trials. Objectives: ``--objectives`` (``search.engine.objectives``; by
default validation accuracy: maximise, MACs: minimise), stored as the study's metric names.
What a trial records and what counts towards ``--budget``: ``search.engine.attributes``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import warnings
from pathlib import Path
from typing import Any, Iterator

import optuna
import sqlalchemy
from filelock import FileLock
from optuna.trial import FrozenTrial, TrialState

from search.choices import SAMPLERS
from search.engine.attributes import ATTR, STATUS, counted
from search.engine.objectives import DEFAULT_OBJECTIVES, Objectives
from search.engine.journal import JournalError, check_journal, journal_backend
from search.engine.outcome import finish, recorded_outcome
from search.engine.rdb import RetryingRDBStorage, advisory_lock, is_postgres
from search.errors import SearchError, StudyError
from search.files import file_lock

# We use group-decomposed TPE and metric names on purpose; their "experimental" notes are noise.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
# Our workers beat from their own thread (search.engine.heartbeat), which Optuna's ask cannot see.
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")

DIRECTIONS = tuple(Objectives.parse(DEFAULT_OBJECTIVES).directions)  # of the default objectives
OBJECTIVE_NAMES = tuple(Objectives.parse(DEFAULT_OBJECTIVES).metric_names)
DEFAULT_HEARTBEAT_GRACE_S = 60.0  # --heartbeat-grace
HOST_ID_ENV = "SEESAW_HOST_ID"  # overrides the host name a worker records (tests run "hosts" on one machine)
STUDY_RECIPE = "proxy_recipe"  # study attribute: the accuracy settings of the proxy its trials train with
STUDY_LADDER = "ladder"  # study attribute: --rungs, --eta, --repeats, which decide what jobs are due
STUDY_SEARCH = "search"  # study attribute: --space, --shared-block, --dataset (and the latency target)
STUDY_PROXY = "proxy"  # study attribute: the name of the proxy preset its recipe started from


def host_id() -> str:
    """The name this worker's host records on its trials: $SEESAW_HOST_ID, else the host name."""
    return os.environ.get(HOST_ID_ENV) or socket.gethostname()


def ask_lock(run_dir: Path) -> FileLock:
    """The run's ask lock: one process of this host at a time checks the budget, asks, claims and
    recovers trials (a context manager)."""
    return file_lock(run_dir / ".ask.lock")


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """A sampler by name; TPE is Optuna 5's multi-objective default."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=10)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed)
    raise StudyError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}")


def journal_path(url: str) -> Path | None:
    """The file of a ``journal://PATH`` storage URL (None for other URLs)."""
    if not url.startswith("journal://"):
        return None
    if not url[len("journal://"):].strip():
        raise StudyError("--storage journal:// needs a file path, e.g. journal:///data/runs/study.journal")
    return Path(url[len("journal://"):])


def _password(url: str) -> str | None:
    try:
        return sqlalchemy.engine.make_url(url).password or None
    except Exception:  # not a database URL: no password
        return None


def redact_url(url: str) -> str:
    """The storage URL with its password masked (for messages and logs)."""
    if _password(url) is None:
        return url
    return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)


def open_storage(url: str, heartbeat_grace_s: float | None = None, *,
                 repair: bool = True) -> optuna.storages.BaseStorage | str:
    """``journal://PATH`` (one host, several processes) or any Optuna RDB URL (several hosts).

    A journal is checked first (``search.engine.journal.check_journal``): a tail cut off by a crash
    is backed up and dropped (one line printed; with ``repair=False`` refused instead), damage in
    the middle is refused. An RDB storage gets Optuna's heartbeat table (times from the database
    server's clock, so hosts need not agree on the time): a running trial whose heartbeat is older
    than ``heartbeat_grace_s`` is stale, and ``search.engine.heartbeat.recover_stale`` fails it and
    re-enqueues its architecture. Its calls are retried while the server is unreachable.
    """
    path = journal_path(url)
    if path is not None:
        try:
            note = check_journal(path, repair=repair)
            if note:
                print(note)
            path.parent.mkdir(parents=True, exist_ok=True)
            backend = journal_backend(path)
        except JournalError as exc:
            raise StudyError(str(exc)) from None
        except OSError as exc:
            raise StudyError(f"cannot open the journal storage {path}: {exc.strerror}; pass --storage with a writable path") from None
        try:
            return optuna.storages.JournalStorage(backend)
        except (ValueError, UnicodeDecodeError) as exc:  # not a journal at all
            raise StudyError(f"{path} is not an Optuna journal ({type(exc).__name__}: {exc}); move it aside") from None
    grace = float(heartbeat_grace_s or DEFAULT_HEARTBEAT_GRACE_S)
    try:
        # Optuna 5 beats only inside study.optimize; our ask/tell workers beat from their own thread
        # (search.engine.heartbeat.Heartbeat). The interval here is Optuna's, unused by us.
        return RetryingRDBStorage(url, heartbeat_interval=max(1, int(grace // 4)), grace_period=grace)
    except Exception as exc:  # SQLAlchemy raises many types; the message is what matters here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        password = _password(url)
        if password:
            first = first.replace(password, "***")
        raise StudyError(f"cannot open the storage {redact_url(url)!r}: {first}; check the URL (e.g. postgresql://user:pw@host/db) or leave --storage out") from None


def open_study(storage_url: str, study_name: str, sampler: optuna.samplers.BaseSampler, *, resume: bool,
               heartbeat_grace_s: float | None = None, objectives: Objectives | None = None,
               recipe: dict[str, Any] | None = None, ladder: dict[str, Any] | None = None,
               search: dict[str, Any] | None = None, proxy: str | None = None) -> optuna.Study:
    """Create the study, or load it when ``resume`` (or when joining workers) and it exists.

    ``objectives`` (default: accuracy, macs) become the study's directions and metric names; an
    existing study made with other objectives is refused. ``recipe`` (the accuracy settings of the
    proxy this process trains with) is recorded by the study that it creates; an existing study that
    recorded another is refused, so no process, on any host, adds accuracies of another recipe.
    ``ladder`` (``SearchConfig.ladder_settings``) is recorded and checked alike: a process promoting
    with another ``--rungs``/``--eta``/``--repeats`` would start jobs the others never would.
    ``search`` (``SearchConfig.search_settings``) alike: a process of another space or data set
    would add trials of another search (a resume, a host joining a ``--storage`` study). ``proxy``,
    the preset's name, is only recorded: with the recipe, it lets a resume rebuild the proxy. A study
    created without them (bare) is recorded by the first process to join it (``record_lock``)."""
    objectives = objectives or Objectives.parse(DEFAULT_OBJECTIVES)
    storage = open_storage(storage_url, heartbeat_grace_s)
    exists = study_name in {s.study_name for s in optuna.get_all_study_summaries(storage)}
    if exists and not resume:
        raise StudyError(f"a study named {study_name!r} already exists in {redact_url(storage_url)}; pass --resume to continue it or --name for a new run")
    if not exists and resume:
        raise StudyError(f"--resume: no study named {study_name!r} in {redact_url(storage_url)}; leave out --resume to start it")
    if exists:  # load_study writes nothing (create_study(load_if_exists=True) appends a record each time)
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
        try:
            existing = Objectives.of_study(study)
        except SearchError as exc:
            raise StudyError(str(exc)) from None
        if len(study.directions) != len(existing) or existing.names != objectives.names:
            raise StudyError(f"study {study_name!r} optimises {','.join(existing.names)}, not "
                             f"{','.join(objectives.names)}; resume it with --objectives {','.join(existing.names)} "
                             "or start a new --name")
    else:
        study = optuna.create_study(
            storage=storage, study_name=study_name, sampler=sampler, directions=objectives.directions, load_if_exists=True
        )
    if study.metric_names != objectives.metric_names:
        study.set_metric_names(objectives.metric_names)
    settings = {STUDY_RECIPE: recipe, STUDY_LADDER: ladder, STUDY_SEARCH: search, STUDY_PROXY: proxy}
    if not exists:
        _record_missing(study, settings)
        return study
    with record_lock(storage_url, study_name):  # the attributes are read afresh inside it
        if search is not None:
            check_search(study_name, study.user_attrs, search)
        if recipe is not None:
            check_recipe(study, recipe)
        if ladder is not None:
            check_ladder(study, ladder)
        # A study created bare (``open_study(url, name, sampler, resume=False)``, as the multi-host
        # recipe of docs/scaling_out.md does) recorded nothing: the first process to join records its
        # settings, and every later one is checked against them.
        _record_missing(study, settings)
    return study


def _record_missing(study: optuna.Study, settings: dict[str, Any]) -> None:
    recorded = study.user_attrs
    for attr, value in settings.items():
        if value is not None and attr not in recorded:
            study.set_user_attr(attr, value)


@contextlib.contextmanager
def record_lock(storage_url: str, study_name: str) -> Iterator[None]:
    """One process at a time checks and records a study's settings: a file lock beside a journal
    (one host), PostgreSQL's advisory lock on the server (any host); other databases go unlocked."""
    path = journal_path(storage_url)
    if path is not None:
        with file_lock(path.with_name(path.name + ".record.lock")):
            yield
    elif is_postgres(storage_url):
        with advisory_lock(storage_url, f"record:{study_name}"):
            yield
    else:
        yield


def recorded_settings(storage_url: str, study_name: str) -> dict[str, Any]:
    """The attributes an existing study recorded (``open_study``: proxy and recipe, ladder, search),
    read without writing; empty where there is no such study yet. A resume or a joining host checks
    its settings against them before it loads any data, and takes the proxy recipe and the ladder it
    leaves out from them: the study, not a file of one host, is the run's record."""
    path = journal_path(storage_url)
    if path is not None and not path.exists():
        return {}
    try:
        return dict(load_study_readonly(storage_url, study_name).user_attrs)
    except StudyError:  # no such study (open_study says so), or a journal to repair first (open_study does)
        return {}


def check_ladder(study: optuna.Study, ladder: dict[str, Any]) -> None:
    """Refuse a process whose ``--rungs``/``--eta``/``--repeats`` differ from those the study recorded
    (a study from before the record has none: nothing to check)."""
    recorded = study.user_attrs.get(STUDY_LADDER)
    if recorded is None or recorded == ladder:
        return

    def flags(values: dict[str, Any]) -> str:
        return " ".join(f"--{k} {v}" for k, v in values.items() if v is not None)
    raise StudyError(f"study {study.study_name!r} promotes and repeats with {flags(recorded)}, not {flags(ladder)}; "
                     "join it with those (they decide which promotions and repeats are due), or start a new --name")


def check_search(study_name: str, attrs: dict[str, Any], search: dict[str, Any]) -> None:
    """Refuse a process whose ``search`` settings differ from those a study recorded in its ``attrs``
    (only the recorded keys are compared; a study from before the record has none: nothing to check)."""
    recorded = attrs.get(STUDY_SEARCH) or {}
    changed = [k for k in recorded if k in search and recorded[k] != search[k]]
    if not changed:
        return

    def flags(values: dict[str, Any]) -> str:
        shown = {True: "--{}", False: "no --{}"}
        return ", ".join(shown.get(values[k], "--{} " + str(values[k])).format(k.replace("_", "-")) for k in changed)
    raise StudyError(f"run {study_name!r} was made with {flags(recorded)}, not {flags(search)}; resume or join "
                     "it with the same settings, or start a new --name")


def check_recipe(study: optuna.Study, recipe: dict[str, Any]) -> None:
    """Refuse to add trials of ``recipe`` to a study that recorded another (a study from before
    the record has none: nothing to check)."""
    recorded = study.user_attrs.get(STUDY_RECIPE)
    if recorded is None or recorded == recipe:
        return
    changed = sorted(k for k in {*recorded, *recipe} if recorded.get(k) != recipe.get(k))
    shown = ", ".join(f"{k} {recorded.get(k)!r} -> {recipe.get(k)!r}" for k in changed)
    raise StudyError(f"study {study.study_name!r} trained its networks with another proxy recipe ({shown}); "
                     "join it with the run's --proxy and proxy flags (--proxy auto picks gpu on a CUDA host, cpu "
                     "elsewhere), or start a new --name")


def load_study_readonly(storage_url: str, study_name: str) -> optuna.Study:
    """An existing study, for reading (``--export``): nothing is written, a damaged journal is refused."""
    storage = open_storage(storage_url, repair=False)
    if study_name not in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        raise StudyError(f"no study named {study_name!r} in {redact_url(storage_url)}; pass the run's --name")
    return optuna.load_study(study_name=study_name, storage=storage, sampler=make_sampler("random", 0))


def finished_count(study: optuna.Study) -> int:
    return sum(counted(t) for t in study.get_trials(deepcopy=False))


def running_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def enqueue_references(study: optuna.Study, reference_params: dict[str, dict[str, Any]]) -> int:
    """Enqueue each reference once per study (warm start); returns how many were added."""
    done = {t.user_attrs.get(ATTR.REFERENCE) for t in study.get_trials(deepcopy=False)}
    added = 0
    for name, params in reference_params.items():
        if name not in done:
            study.enqueue_trial(params, user_attrs={ATTR.REFERENCE: name}, skip_if_exists=False)
            added += 1
    return added


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(trial: optuna.Trial) -> None:
    """Record which process runs ``trial``; call right after ``ask``, under the ask lock."""
    trial.set_user_attr(ATTR.HOST, host_id())
    trial.set_user_attr(ATTR.PID, os.getpid())


def rerun_params(trial: FrozenTrial) -> dict[str, Any]:
    """The parameters that rebuild ``trial``'s architecture: an enqueued trial's fixed ones (even
    when it was cut off before sampling them all), else what it sampled."""
    return dict(trial.system_attrs.get("fixed_params") or trial.params)


def requeue(study: optuna.Study, trial: optuna.Trial | FrozenTrial, *, status: str | None = None,
            reason: str | None = None) -> None:
    """Fail a running trial without counting it and enqueue its architecture again: the one way a
    cut-off trial is re-run (Ctrl-C, a dead Ray worker, a dead process).

    ``status``/``reason`` (a live ``optuna.Trial`` only) are recorded on the trial; without a status
    it stays "running" and shows as "stale". A trial cut off before it sampled anything, and not
    enqueued, has nothing to re-run.
    """
    if status is not None:
        trial.set_user_attr(ATTR.STATUS, status)
    if reason is not None:
        trial.set_user_attr(ATTR.FAILURE, reason)
    frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
    study.tell(trial.number, state=TrialState.FAIL)
    enqueue_again(study, frozen)


def enqueue_again(study: optuna.Study, frozen: FrozenTrial) -> None:
    """Enqueue the architecture of a trial that was cut off (nothing when it sampled nothing)."""
    params = rerun_params(frozen)
    reference = frozen.user_attrs.get(ATTR.REFERENCE)
    if params or reference:
        study.enqueue_trial(params, user_attrs={ATTR.REFERENCE: reference} if reference else None)


def recover_stale_trials(study: optuna.Study) -> list[int]:
    """Mark RUNNING trials of dead processes on this host as failed ('stale') and re-enqueue them.
    Call it holding the ask lock (``ask_lock``).

    Journal storages have no heartbeat; a trial records its host and pid when it starts, so a
    process on the same host can tell whether its owner is gone (kill -9, power loss). A trial
    that stored its outcome before its process died is finished with it instead
    (``search.engine.outcome``): its training is not repeated.
    """
    host = host_id()
    recovered = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner_host, pid = t.user_attrs.get(ATTR.HOST), t.user_attrs.get(ATTR.PID)
        # No owner recorded: its process died between ask and claim, which happen under the ask
        # lock that the caller holds, so no live worker can be in that gap now.
        if pid is not None and (owner_host != host or _alive(int(pid))):
            continue
        outcome = recorded_outcome(t)
        if outcome is not None:  # trained and recorded, killed before tell: finish it, do not train again
            finish(study, t, outcome)
            continue
        if t.user_attrs.get(ATTR.STATUS, STATUS.RUNNING) != STATUS.RUNNING:  # a status without its outcome:
            optuna.Trial(study, t._trial_id).set_user_attr(ATTR.STATUS, STATUS.RUNNING)  # not counted, "stale"
        requeue(study, t)  # its status stays "running": shown as "stale"
        recovered.append(t.number)
    return recovered
