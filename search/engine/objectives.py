"""Which objectives a search optimises, their directions, and how to read a trial's value of each.

    objs = Objectives.parse("accuracy,macs,latency")   # --objectives; the default is accuracy,macs
    objs.directions        # ('maximize', 'minimize', 'minimize'): the study's directions
    objs.value(trial, "latency")   # the trial's latency in ms, from its values

The run's objectives are a setting of ``SearchConfig`` (``objectives``) and are stored with the
study as its metric names (``open_study``), so results, plots and picks read them back from the
study (``Objectives.of_study``); a study without metric names is the default (accuracy, macs).
The latency of a trial is measured by ``LatencyMeter`` (``blocks.latency``) before training, at the
exported network's size and input resolution, only when latency is an objective or constrained.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import optuna
from optuna.trial import FrozenTrial

from blocks.cache import user_cache_dir
from blocks.latency import LatencyTable, LatencyTarget
from search.engine.attributes import ATTR
from search.choices import DEFAULT_OBJECTIVES, LATENCY_MODES, parse_latency_ms
from search.errors import SearchError
from space.spec import ArchSpec

__all__ = ["DEFAULT_OBJECTIVES", "LATENCY_MODES", "OBJECTIVES", "LatencyMeter", "Objective", "Objectives",
           "latency_table_path", "parse_latency_ms"]


@dataclass(frozen=True)
class Objective:
    """One objective: its ``--objectives`` name, the study's metric name, direction, the user
    attribute that also holds it, and how it is shown (``scale`` x value, in ``unit``)."""

    name: str
    metric: str
    direction: str
    attr: str
    title: str  # axis title
    column: str  # summary column
    show_mul: float  # value x show_mul / show_div = the number shown (accuracy in %, MACs in millions)
    show_div: float
    hv_divisor: float  # value / hv_divisor = the number the hypervolume multiplies (MACs in millions)
    hover: str  # plotly hover format of the shown number, V standing for the axis

    def shown(self, value: float) -> float:
        """The value as plots and tables show it."""
        return value * self.show_mul if self.show_div == 1.0 else value / self.show_div

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"


OBJECTIVES: dict[str, Objective] = {
    "accuracy": Objective("accuracy", "val_acc", "maximize", ATTR.VAL_ACC, "proxy validation accuracy (%)",
                          "val_acc%", 100.0, 1.0, 1.0, "%{V:.2f}%"),
    "macs": Objective("macs", "macs", "minimize", ATTR.MACS, "MACs (millions, 32x32 input)", "MMACs", 1.0, 1e6, 1e6, "%{V:.1f}M MACs"),
    "params": Objective("params", "params", "minimize", ATTR.PARAMS, "parameters (millions)", "Mparams", 1.0, 1e6, 1e6, "%{V:.2f}M params"),
    "latency": Objective("latency", "latency_ms", "minimize", ATTR.LATENCY, "latency (ms per forward pass)",
                         "latency_ms", 1.0, 1.0, 1.0, "%{V:.3f} ms"),
}
_BY_METRIC = {o.metric: o for o in OBJECTIVES.values()}


class Objectives(tuple):
    """The run's objectives, in the order of the study's values (a tuple of ``Objective``)."""

    @classmethod
    def parse(cls, names: str | Sequence[str]) -> "Objectives":
        """``'accuracy,macs'`` or a sequence of names; two or three distinct known names, else SearchError."""
        items = [n.strip() for n in names.split(",")] if isinstance(names, str) else [str(n).strip() for n in names]
        unknown = [n for n in items if n not in OBJECTIVES]
        if unknown:
            raise SearchError(f"unknown objective {unknown[0]!r} in --objectives; valid: {', '.join(OBJECTIVES)}")
        if len(set(items)) != len(items):
            dup = next(n for n in items if items.count(n) > 1)
            raise SearchError(f"--objectives names {dup!r} twice; name each objective once")
        if not 2 <= len(items) <= 3:
            raise SearchError(f"--objectives takes two or three of {', '.join(OBJECTIVES)}, got {len(items)} "
                              f"({','.join(items) or 'none'}); e.g. --objectives accuracy,latency")
        return cls(OBJECTIVES[n] for n in items)

    @classmethod
    def of_study(cls, study: optuna.Study) -> "Objectives":
        """The objectives a study was created with (its metric names; none: the default)."""
        names = study.metric_names
        if names is None:
            return cls.parse(DEFAULT_OBJECTIVES)
        unknown = [n for n in names if n not in _BY_METRIC]
        if unknown:
            raise SearchError(f"the study has an objective {unknown[0]!r} this version does not know")
        return cls(_BY_METRIC[n] for n in names)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self)

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self]

    @property
    def metric_names(self) -> list[str]:
        return [o.metric for o in self]

    @property
    def is_default(self) -> bool:
        return self.names == DEFAULT_OBJECTIVES

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def index(self, name: str) -> int:  # type: ignore[override]
        return self.names.index(name)

    def value(self, trial: FrozenTrial, name: str) -> float:
        """The trial's value of objective ``name`` (from its values, in the study's units)."""
        return trial.values[self.index(name)]

    def costs(self) -> list[Objective]:
        """The objectives to minimise, in order."""
        return [o for o in self if not o.maximize]

    def axes(self, given: Sequence[str] | None = None) -> tuple[str, str]:
        """(x, y) of the main plot and of ``--pick``: ``given`` (--plot-axes), else the first cost
        objective against accuracy, else the first two objectives."""
        if given:
            return (given[0], given[1])
        if "accuracy" in self:
            return (self.costs()[0].name, "accuracy")
        return (self.names[0], self.names[1])

    def pairs(self) -> list[tuple[str, str]]:
        """Every pair of objectives, as (x, y) plot axes (accuracy on y when present)."""
        out = []
        for i, a in enumerate(self.names):
            for b in self.names[i + 1:]:
                out.append((b, a) if a == "accuracy" else (a, b))
        return out

    def describe(self) -> str:
        """'accuracy (max), macs (min)'."""
        return ", ".join(f"{o.name} ({o.direction[:3]})" for o in self)

    def values_of(self, *, val_acc: float, params: int, macs: int, latency_ms: float | None) -> list[float]:
        """A trial's values in the study's order."""
        raw = {"accuracy": val_acc, "macs": macs, "params": params, "latency": latency_ms}
        if "latency" in self and latency_ms is None:
            raise ValueError("latency is an objective but was not measured")
        return [float(raw[o.name]) for o in self]


def latency_table_path() -> Path:
    """The lookup table shared by every run of this user: ``user_cache_dir()/latency.json`` (default
    ~/.cache/seesaw-nas/latency.json); its sections are keyed by device, torch, threads, batch,
    clock and how parts are timed (the speed probe)."""
    return user_cache_dir() / "latency.json"


class LatencyMeter:
    """A trial's latency on the run's target: ``meter(spec, num_classes, input_size)`` -> the user
    attributes to record (``ATTR.LATENCY`` in ms, ``ATTR.LATENCY_TARGET``, ``ATTR.LATENCY_MODE``).

    ``lookup`` sums per-part times from the table file (parts timed once, saved atomically under a
    file lock, shared by workers and runs); ``exact`` times the whole network each time, in the table's
    unit (its speed probe on a CPU)."""

    def __init__(self, device: str = "cpu", batch: int = 1, threads: int = 1, mode: str = "lookup",
                 table_path: str | os.PathLike | None = None) -> None:
        if mode not in LATENCY_MODES:
            raise SearchError(f"unknown --latency {mode!r}; valid: {', '.join(LATENCY_MODES)}")
        try:
            self.target = LatencyTarget(device, batch=batch, threads=threads)
        except ValueError as exc:
            raise SearchError(str(exc).replace("latency device", "--latency-device", 1)
                              .replace("latency threads", "--latency-threads", 1)
                              .replace("latency batch", "--latency-batch", 1)
                              .replace("use device='cpu'", "use --latency-device cpu")) from None
        self.mode = mode
        self.table_path = Path(table_path) if table_path is not None else latency_table_path()
        self._table: LatencyTable | None = None

    def describe(self) -> str:
        return f"{self.target.describe()}, {self.mode}"

    def seconds(self, spec: ArchSpec, num_classes: int, input_size: int) -> float:
        if self._table is None:  # exact mode too: its speed probe's unit is the table's
            try:
                self._table = LatencyTable.open(self.table_path, self.target)
            except ValueError as exc:
                raise SearchError(str(exc)) from None
        if self.mode == "exact":
            return self._table.measure(spec, num_classes, input_size)
        return self._table.predict(spec, num_classes, input_size)

    def __call__(self, spec: ArchSpec, num_classes: int, input_size: int) -> dict[str, Any]:
        return {ATTR.LATENCY: 1e3 * self.seconds(spec, num_classes, input_size),
                ATTR.LATENCY_TARGET: self.target.describe(), ATTR.LATENCY_MODE: self.mode}
