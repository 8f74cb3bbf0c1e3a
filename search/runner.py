"""A whole search run: set up the run folder and study, run the executor, write every artifact.

    run_search(SearchConfig(space="seesaw", budget=200))

leaves in ``results/<name>/``: the study (``study.journal``), ``trials.csv``, ``pareto.html`` and
``pareto.png``, ``hypervolume.csv``/``.html``, ``best_block.yaml``, ``run.json`` and ``search.log``;
and prints a summary table.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

from search.config import SearchConfig
from search.engine.heartbeat import budget_lock
from search.engine.session import Run, open_run, proxy_name
from search.engine.study import enqueue_references, finished_count, load_study_readonly, recover_stale_trials
from search.engine.attributes import ATTR
from search.engine.ladder import open_jobs_study, planned_units, training_cost
from search.errors import SearchError
from search.executors import local, ray_tune
from search.results.artifacts import write_run_json
from search.results.export import export_trial
from search.results.rung_view import rung_view
from search.results.summary import write_artifacts
from search.train.data import default_num_classes

__all__ = ["check_resume", "export_trial_of_run", "finalize", "run_search"]


def run_search(cfg: SearchConfig) -> dict[str, Any]:
    """Run (or resume) a search to its budget and write every artifact; returns the summary.

    A refused run (bad settings, missing data, unreachable storage ...) leaves nothing behind: the
    checks run before anything is written, and a run folder this launch created is removed if
    setting up the study fails after all."""
    cfg.validate()
    if cfg.executor == "ray":
        ray_tune.preflight(cfg)  # settings and the cluster's address; Ray is not imported
    run_dir = cfg.run_dir
    journal = run_dir / "study.journal"
    if not cfg.resume and journal.exists() and cfg.storage is None:
        raise SearchError(f"{run_dir} already holds a search; pass --resume to continue it or --name for a new run")
    if cfg.resume:
        check_resume(cfg)
    created = _first_missing(run_dir.resolve())
    try:
        run = open_run(cfg, create=True)
        with budget_lock(cfg):  # with other hosts on the study: one at a time
            recovered = recover_stale_trials(run.study)
            if run.ladder is not None:
                recovered_jobs = run.ladder.recover(dead_pids=True)
                if recovered_jobs:
                    print(f"resume: promotion/repeat jobs {recovered_jobs} were cut off by a dead process; they run again")
            added = enqueue_references(run.study, run.space.reference_params()) if cfg.references else 0
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    if recovered:
        print(f"resume: trials {recovered} were cut off by a dead process; their architectures run again")
    cfg = run.cfg  # --rungs / --repeats resolved for the proxy preset
    write_run_json(run_dir, cfg.to_dict(), run.device, {
        "proxy_name": proxy_name(cfg, run.device), "proxy": dataclasses.asdict(run.proxy),
        "num_classes": run.num_classes, "input_size": run.space.input_size,
    })
    done = finished_count(run.study)
    print(f"search {cfg.name!r}: space {cfg.space} ({run.space.size():.2e} choices), {cfg.dataset}, "
          f"device {run.device}, proxy {proxy_name(cfg, run.device)}, sampler {cfg.sampler}, "
          f"{done}/{cfg.budget} trials done, {added} references enqueued; folder {run_dir}")
    if cfg.ladder:
        print(describe_training_cost(cfg, len(run.space.reference_params()) if cfg.references else 0))
    interrupted = False
    try:
        if cfg.executor == "ray":
            ray_tune.run_ray(run)
        else:
            local.run_local(run)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: finished trials are saved; continue with --resume")
    summary = finalize(run)
    summary["interrupted"] = interrupted
    return summary


def describe_training_cost(cfg: SearchConfig, references: int) -> str:
    """The run's training cost in rung-0 units (one rung-0 training of one network), printed first."""
    units = training_cost(cfg.budget, cfg.rungs, cfg.eta)
    top = cfg.eta ** (cfg.rungs - 1)
    line = (f"training cost: {'at least ' if cfg.rungs > 1 else ''}{units:g} rung-0 units ({cfg.budget} networks at rung 0"
            + (f", promotions to {cfg.rungs} rungs with eta {cfg.eta}; asynchronous promotion adds some"
               if cfg.rungs > 1 else "") + ")")
    if cfg.repeats > 1:
        per = (cfg.repeats - 1) * top
        line += (f" + {per:g} unit{'s' * (per != 1)} per network repeated ({cfg.repeats} seeds at the top rung for the final front "
                 f"and the {references} references: at least "
                 f"{planned_units(cfg.budget, cfg.rungs, cfg.eta, cfg.repeats, references):g} in all)")
    return line


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (what creating it would add)."""
    missing = None
    while not path.exists():
        missing, path = path, path.parent
    return missing


def check_resume(cfg: SearchConfig) -> None:
    """``--resume`` continues a run that exists: refused otherwise, before anything is written. (The
    study checks the settings that define its search and gives its proxy recipe and its
    ``--rungs``/``--eta``/``--repeats``: ``open_run``.)"""
    run_dir = cfg.run_dir
    if cfg.storage is None and not (run_dir / "study.journal").exists():
        raise SearchError(f"--resume: there is no run {cfg.name!r} in {cfg.results_dir} (no {run_dir / 'study.journal'}); "
                          "leave out --resume to start it")
    if run_dir.exists() and not os.access(run_dir, os.W_OK):
        raise SearchError(f"--resume: the run folder {run_dir} is not writable")


def finalize(run: Run) -> dict[str, Any]:
    """Write trials.csv, plots, hypervolume, best_block.yaml; print and return the summary."""
    return write_artifacts(run.study, run.cfg, num_classes=run.num_classes, input_size=run.space.input_size,
                           proxy=proxy_name(run.cfg, run.device), proxy_config=dataclasses.asdict(run.proxy))


def export_trial_of_run(cfg: SearchConfig, trial_number: int, out: Path | None = None) -> Path:
    """``launch_search.py --export N --name RUN``: write trial N's architecture to YAML."""
    run_dir = cfg.run_dir
    if cfg.storage is None and not (run_dir / "study.journal").exists():
        raise SearchError(f"no search in {run_dir}; pass the run's --name (and --results-dir) or --storage")
    study = load_study_readonly(cfg.storage_url, cfg.name)
    if open_jobs_study(study, create=False) is not None:  # promoted or repeated: export its highest rung
        study = rung_view(study, cfg)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if trial_number not in trials:
        raise SearchError(f"run {cfg.name!r} has no trial {trial_number}; it has trials 0..{max(trials, default=-1)}")
    trial = trials[trial_number]
    if ATTR.SPEC not in trial.user_attrs:
        raise SearchError(f"trial {trial_number} has no architecture recorded (state {trial.state.name}); pick another")
    path = out or run_dir / f"trial_{trial_number}.yaml"
    try:
        export_trial(trial, path, run=_run_info(cfg), pick=f"trial {trial_number}")
    except OSError as exc:
        raise SearchError(f"cannot write {path}: {exc.strerror}; the run folder must be writable") from None
    return path


def _run_info(cfg: SearchConfig) -> dict[str, Any]:
    """What an export says about its run: from run.json when the run wrote one, else the config."""
    info: dict[str, Any] = {"name": cfg.name, "space": cfg.space, "dataset": cfg.dataset, "seed": cfg.seed}
    path = cfg.run_dir / "run.json"
    if path.exists():
        saved = json.loads(path.read_text())
        info.update(num_classes=saved.get("num_classes"), proxy=saved.get("proxy_name"))
        info.update({k: saved["config"][k] for k in ("space", "dataset", "seed") if k in saved.get("config", {})})
    if not info.get("num_classes"):
        info["num_classes"] = default_num_classes(info["dataset"])
    return info
