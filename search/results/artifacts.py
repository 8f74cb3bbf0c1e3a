"""What a run leaves in ``results/<name>/``: run.json, trials.csv, hypervolume.csv and the summary."""

from __future__ import annotations

import csv
import io
import json
import platform
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

import optuna
from optuna.trial import FrozenTrial

from search.engine.attributes import ATTR, trial_status
from search.files import write_atomic
from search.provenance import git_commit, package_versions

TRIAL_COLUMNS = (
    "number", "state", "status", "reference", "canonical_key", "params", "macs", "val_acc",
    "val_loss", "train_time_s", "images_per_s", "duplicate_of", "failure", "prescreen_score",
    "latency_ms", "latency_target", "latency_mode",
)


def write_run_json(run_dir: Path, config: dict[str, Any], device: str, extra: dict[str, Any] | None = None) -> None:
    """run.json: command line, config, seed, package versions, git commit, device. Resumes append."""
    path = run_dir / "run.json"
    entry = {
        "argv": sys.argv,
        "config": config,
        "device": device,
        "host": platform.node(),
        "git_commit": git_commit(),
        "versions": package_versions(),
        **(extra or {}),
    }
    history = json.loads(path.read_text()).get("launches", []) if path.exists() else []
    write_atomic(path, json.dumps({**entry, "launches": history + [entry]}, indent=2, default=str))


def trial_row(t: FrozenTrial) -> dict[str, Any]:
    a = t.user_attrs
    return {
        "number": t.number,
        "state": t.state.name,
        "status": trial_status(t),
        "reference": a.get(ATTR.REFERENCE, ""),
        "canonical_key": a.get(ATTR.KEY, ""),
        "params": a.get(ATTR.PARAMS, ""),
        "macs": a.get(ATTR.MACS, ""),
        "val_acc": a.get(ATTR.VAL_ACC, ""),
        "val_loss": a.get(ATTR.VAL_LOSS, ""),
        "train_time_s": a.get(ATTR.TRAIN_TIME, ""),
        "images_per_s": a.get(ATTR.IMAGES_PER_S, ""),
        "duplicate_of": a.get(ATTR.DUPLICATE_OF, ""),
        "failure": a.get(ATTR.FAILURE, ""),
        "prescreen_score": a.get(ATTR.PRESCREEN_SCORE, ""),
        "latency_ms": a.get(ATTR.LATENCY, ""),
        "latency_target": a.get(ATTR.LATENCY_TARGET, ""),
        "latency_mode": a.get(ATTR.LATENCY_MODE, ""),
    }


def write_trials_csv(study: optuna.Study, path: Path, extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    """trials.csv; ``extra``: user attributes written as further columns (the rungs and seeds of
    ``search.results.rung_view``), empty where a trial has none."""
    rows = [trial_row(t) | {k: _cell(t.user_attrs.get(k, "")) for k in extra} for t in study.get_trials(deepcopy=False)]
    write_csv(path, (*TRIAL_COLUMNS, *extra), rows)
    return rows


def _cell(value: Any) -> Any:
    return "" if value is None else value


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, buf.getvalue())


