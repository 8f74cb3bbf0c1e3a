"""Export a trial's architecture to YAML that rebuilds the same network.

The file holds the spec (``ArchSpec.from_yaml`` reads it back, skipping the rest), its metrics and
its provenance. ``load_export`` gives the spec and class count for ``blocks.build_model``.
"""

from __future__ import annotations

import datetime
import warnings
from pathlib import Path
from typing import Any

import optuna
import yaml

from search.files import write_atomic
from search.provenance import git_commit
from search.engine.attributes import ATTR
from space.spec import ArchSpec, SpecError


def export_trial(trial: optuna.trial.FrozenTrial, path: Path, *, run: dict[str, Any], pick: str | None = None) -> dict[str, Any]:
    """Write ``trial``'s architecture, metrics and provenance to ``path``; returns the document."""
    if ATTR.SPEC not in trial.user_attrs:
        raise ValueError(f"trial {trial.number} has no architecture recorded (state {trial.state.name})")
    spec = ArchSpec.from_dict(trial.user_attrs[ATTR.SPEC])
    a = trial.user_attrs
    doc = {
        "name": f"{run.get('name', 'run')}_trial{trial.number}",
        "canonical_key": spec.canonical_key(),
        "num_classes": run["num_classes"],
        "input_size": run.get("input_size", 32),
        "metrics": {
            "val_acc": a.get(ATTR.VAL_ACC),
            "macs": a.get(ATTR.MACS),
            "params": a.get(ATTR.PARAMS),
            "train_time_s": a.get(ATTR.TRAIN_TIME),
            "status": a.get(ATTR.STATUS),
            **({"latency_ms": a[ATTR.LATENCY], "latency_target": a.get(ATTR.LATENCY_TARGET),
                "latency_mode": a.get(ATTR.LATENCY_MODE)} if ATTR.LATENCY in a else {}),
        },
        "provenance": {
            "run": run.get("name"),
            "trial": trial.number,
            "pick": pick,
            **({"objectives": run["objectives"]} if run.get("objectives") else {}),
            "reference": a.get(ATTR.REFERENCE),
            "space": run.get("space"),
            "dataset": run.get("dataset"),
            "proxy": run.get("proxy"),
            "seed": run.get("seed"),
            "git_commit": git_commit(),
            "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
        "spec": spec.to_dict(),
    }
    if ATTR.ACC_MEAN in a:  # trained beyond rung 0 (search/results/rung_view.py): val_acc is its mean there
        doc["metrics"].update({
            "rung": a.get(ATTR.RUNG_REACHED), "val_acc_mean": a.get(ATTR.ACC_MEAN), "val_acc_std": a.get(ATTR.ACC_STD),
            "val_acc_ci95": a.get(ATTR.ACC_CI95), "val_acc_seeds": a.get(ATTR.ACC_SEEDS),
            "seeds": a.get(ATTR.TRAINING_SEEDS),
            **{k: v for k, v in a.items() if k.startswith(ATTR.ACC_RUNG)},
        })
    write_atomic(path, yaml.safe_dump(doc, sort_keys=False))
    return doc


class EditedExportWarning(UserWarning):
    """An exported YAML whose spec no longer has the canonical key it was exported with."""


def load_export(path: str | Path) -> tuple[ArchSpec, int]:
    """(spec, num_classes) from an exported YAML (or a bare spec, which defaults to 10 classes).

    The canonical key is recomputed from the spec; when a hand edit changed it, an
    ``EditedExportWarning`` says that the file's metrics belong to the network it was exported as.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise SpecError(f"{p}: cannot read the file ({exc.strerror})") from None
    try:
        spec = ArchSpec.from_yaml(text)
    except SpecError as exc:
        raise SpecError(f"{p}: {exc}") from None
    data = yaml.safe_load(text)
    num_classes = data.get("num_classes", 10) if isinstance(data, dict) else 10
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise SpecError(f"{p}: num_classes must be a positive integer, got {num_classes!r}")
    recorded = data.get("canonical_key") if isinstance(data, dict) else None
    if recorded is not None and recorded != spec.canonical_key():
        warnings.warn(f"{p}: the spec was edited after export (canonical key {spec.canonical_key()}, exported as "
                      f"{recorded}); its metrics and provenance belong to the exported network, not to this one",
                      EditedExportWarning, stacklevel=2)
    return spec, num_classes
