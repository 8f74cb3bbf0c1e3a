"""What a run leaves in ``results/<name>/``: run.json, trials.csv, hypervolume.csv and the summary."""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import optuna
from optuna.trial import FrozenTrial

from search.study import ATTR, trial_status

TRIAL_COLUMNS = (
    "number", "state", "status", "reference", "canonical_key", "params", "macs", "val_acc",
    "val_loss", "train_time_s", "images_per_s", "duplicate_of", "failure", "prescreen_score",
)


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "optuna", "ray", "plotly", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


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
        "val_acc": a.get("metric_val_acc", ""),
        "val_loss": a.get("metric_val_loss", ""),
        "train_time_s": a.get("metric_train_time_s", ""),
        "images_per_s": a.get("metric_images_per_s", ""),
        "duplicate_of": a.get(ATTR.DUPLICATE_OF, ""),
        "failure": a.get(ATTR.FAILURE, ""),
        "prescreen_score": a.get("prescreen_score", ""),  # with --prescreen (search/prescreen.py)
    }


def write_trials_csv(study: optuna.Study, path: Path) -> list[dict[str, Any]]:
    rows = [trial_row(t) for t in study.get_trials(deepcopy=False)]
    write_csv(path, TRIAL_COLUMNS, rows)
    return rows


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, buf.getvalue())


def format_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain aligned text table (hand-rolled: a dozen lines beat a dependency for the console)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
