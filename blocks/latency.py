"""Measured inference latency of a network on a named target, whole or from a per-block table.

    target = LatencyTarget("cpu", batch=1, threads=1)
    table = LatencyTable.open("~/.cache/seesaw-nas/latency.json", target)   # once per process
    seconds = predict_latency(spec, num_classes=10, input_size=32, table=table)
    record = latency_record(spec, 10, 32, table)   # {"latency_s", "latency_device", ...} for a trial

Timing without the speed probe (a GPU, or ``probe=False``): ``torch.utils.benchmark.Timer`` (it
sets and restores torch's thread count, warms up, and synchronises the accelerator around every
block of calls) in ``torch.inference_mode`` on ``model.eval()``; the result is the median over
blocks of ``blocked_autorange``, in seconds per forward pass of one batch. On one CPU thread the clock is that thread's CPU time by default
(``LatencyTarget.clock``): on a shared machine wall time also counts other jobs' turns.

Speed probe (CPU targets, on by default in a ``LatencyTable``): the speed of one core of this
machine (a virtual CPU) moves by up to 2x within seconds, idle or not, so a part timed for 0.1 s
during a slow phase was entered up to 2x too slow, and two tables of the same networks did not
agree on their order (BENCHMARKS.md). With a probe, every timed call sits between calls of a fixed
small network (``SpeedProbe``); the call's time divided by the probe's around it is the part's
time in probe units, which a slow phase scales nearly alike (BENCHMARKS.md: how nearly). The
median of these ratios, times the probe's time on the machine's fast phase (``SpeedProbe.nominal``:
its fastest call in a calibration when the table's section is made, kept in the file so every
entry shares it), is the entry in seconds.

Lookup (the FBNet / ProxylessNAS latency table): a network is stem + each block + each stage
post-attention + tail (head conv, pool, dropout, classifier). Each distinct part, keyed by its
spec, channels, stride and input shape, is timed once on its own and stored in a JSON file under
the target's key (device name, torch version, threads, batch, clock) and how parts are timed.
Several processes may share the file: saves merge under a file lock and replace it atomically.
Parts are timed alone, over and over (cache-hot); ``rotate_bytes`` times them over copies that
take turns instead (weights out of the core's cache, as inside a network). On the shared CPU of
BENCHMARKS.md the rotation did not bring the sum closer to the whole, so it is off by default.

A prediction is exactly the sum of its entries. How close that sum comes to the whole network's
time is measured by ``benchmarks/latency_lookup.py`` (BENCHMARKS.md, "Latency lookup vs
whole-network timing").
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import platform
import time
import timeit
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal, NamedTuple

import torch
import torch.nn as nn

# torch.utils.benchmark imports torch.utils.cpp_extension, which logs "No CUDA runtime is found" on a
# machine with a CUDA toolkit but no GPU: noise on every command (whose errors are one line), quieted
# for this import only.
_cpp_extension_log = logging.getLogger("torch.utils.cpp_extension")
_level = _cpp_extension_log.level
_cpp_extension_log.setLevel(logging.ERROR)
try:
    from torch.utils.benchmark import Timer
    from torch.utils.benchmark.utils.timer import timer as synchronizing_timer
finally:
    _cpp_extension_log.setLevel(_level)

from blocks.cache import read_json, update_json
from blocks.model import build_model
from space.spec import ArchSpec

__all__ = [
    "LatencyTable",
    "LatencyTarget",
    "Part",
    "SpeedProbe",
    "latency_record",
    "measure_latency",
    "network_parts",
    "predict_latency",
    "time_module",
]

CACHE_VERSION = 1
DEFAULT_PART_RUN_TIME = 0.1  # seconds of timed calls per table entry
DEFAULT_NETWORK_RUN_TIME = 0.5  # seconds of timed calls per whole network
PROBE_CALIBRATION_TIME = 2.0  # seconds of probe calls whose fastest sets a table's nominal probe time
MIN_PROBED_CALLS = 5  # timed calls of a module between probes, at least


# ----------------------------------------------------------------------------- target


@functools.lru_cache(maxsize=1)
def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class LatencyTarget:
    """Where and how latency is measured: ``device`` 'cpu' or 'cuda[:N]', ``batch`` images per
    forward pass, ``threads`` torch CPU threads (CPU only; None = torch's current setting, fixed
    when the target is made). Invalid targets raise a one-line ValueError saying what to do.

    ``clock``: 'wall' (``timeit.default_timer``; on CUDA the Timer synchronises) or 'thread', the
    CPU time of the calling thread, for one-thread CPU targets only. 'auto' (default) takes
    'thread' for one CPU thread and 'wall' otherwise: on a CPU shared with other jobs, wall time
    counts the time the scheduler gives to others, which hits a whole network (one long call)
    far more often than its short parts (see BENCHMARKS.md); with one thread all of torch's work
    runs on the calling thread, so its CPU time is the latency without the waiting.
    """

    device: str = "cpu"
    batch: int = 1
    threads: int | None = 1
    clock: str = "auto"

    def __post_init__(self) -> None:
        device = str(self.device).strip().lower()
        kind, _, index = device.partition(":")
        if kind not in ("cpu", "cuda") or (kind == "cpu" and index) or (index and not index.isdigit()):
            raise ValueError(f"latency device {self.device!r} is not supported; use 'cpu', 'cuda' or 'cuda:N'")
        if kind == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(
                    f"latency device {self.device!r}: CUDA is not available here (torch {torch.__version__}); "
                    "use device='cpu' or run on a machine with a GPU"
                )
            count = torch.cuda.device_count()
            n = int(index) if index else torch.cuda.current_device()
            if n >= count:
                raise ValueError(f"latency device {self.device!r}: only {count} GPU(s) visible; use cuda:0 .. cuda:{count - 1}")
            device = f"cuda:{n}"
            object.__setattr__(self, "threads", None)  # host threads do not time a GPU
        elif self.threads is None:
            object.__setattr__(self, "threads", torch.get_num_threads())
        elif not _is_count(self.threads) or self.threads < 1:
            raise ValueError(
                f"latency threads must be an integer >= 1, got {self.threads!r}; use threads=1 "
                f"(or up to the {os.cpu_count()} cores here)"
            )
        clock = {"auto": "thread" if device == "cpu" and self.threads == 1 else "wall"}.get(self.clock, self.clock)
        if clock not in ("wall", "thread"):
            raise ValueError(f"latency clock {self.clock!r} is not known; use 'auto', 'wall' or 'thread'")
        if clock == "thread" and not (device == "cpu" and self.threads == 1):
            raise ValueError(f"latency clock 'thread' times one CPU thread; use clock='wall' for {device} with {self.threads} threads")
        object.__setattr__(self, "clock", clock)
        if not _is_count(self.batch) or self.batch < 1:
            raise ValueError(f"latency batch must be an integer >= 1, got {self.batch!r}; use batch=1 (one image per call)")
        object.__setattr__(self, "device", device)

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    def device_name(self) -> str:
        """The hardware, not its index: 'cpu: AMD EPYC' or 'cuda: NVIDIA H200'."""
        if self.device == "cpu":
            return f"cpu: {_cpu_name()}"
        return f"cuda: {torch.cuda.get_device_name(self.torch_device)}"

    def settings(self) -> dict[str, Any]:
        """What a measured time depends on (and so the table's key)."""
        return {"device": self.device_name(), "torch": torch.__version__, "threads": self.threads, "batch": self.batch,
                "clock": self.clock}

    def key(self) -> str:
        return json.dumps(self.settings(), sort_keys=True, separators=(",", ":"))

    def describe(self) -> str:
        """One line to record beside a latency: 'cpu: AMD EPYC, 1 thread, batch 1, thread clock, torch 2.14.1'."""
        s = self.settings()
        threads = "" if s["threads"] is None else f", {s['threads']} thread{'s' if s['threads'] != 1 else ''}"
        return f"{s['device']}{threads}, batch {s['batch']}, {s['clock']} clock, torch {s['torch']}"


# ----------------------------------------------------------------------------- timing


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch.set_num_threads(threads) inside, the previous count restored after (None: unchanged)."""
    previous = torch.get_num_threads()
    if threads is not None and threads != previous:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


@contextlib.contextmanager
def _on(target: LatencyTarget) -> Iterator[None]:
    """Inference mode, the target's threads, and on CUDA its device as current (Timer synchronises
    the current accelerator)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(_torch_threads(target.threads))
        if target.device.startswith("cuda"):
            stack.enter_context(torch.cuda.device(target.torch_device))
        stack.enter_context(torch.inference_mode())
        yield


def _clock(target: LatencyTarget) -> Any:
    """The target's clock: the thread's CPU time, the wall clock, or (CUDA) the synchronising one."""
    if target.clock == "thread":
        return time.thread_time
    if target.device == "cpu":
        return timeit.default_timer
    return synchronizing_timer  # synchronises the current accelerator, then reads the wall clock


class SpeedProbe:
    """A fixed small network (1x1 conv, BN, ReLU, depthwise 3x3, 1x1 conv; 32 channels at 16x16:
    the ops of the blocks searched here) whose time, taken right around another call, says how fast
    the CPU runs at that moment. ``nominal``: seconds per probe call on the machine's fast phase
    (``calibrate``), the unit that turns probe ratios back into seconds. CPU targets only: the
    probe would time a GPU's host, not the GPU.
    """

    INPUT_SHAPE = (1, 32, 16, 16)

    @staticmethod
    def check_target(target: LatencyTarget) -> None:
        """A one-line ValueError unless ``target`` is a CPU."""
        if target.device != "cpu":
            raise ValueError(f"the speed probe times CPU targets only, not {target.device}; use probe=False")

    def __init__(self, target: LatencyTarget, nominal: float | None = None) -> None:
        self.check_target(target)
        self.target = target
        self.nominal = nominal
        with torch.random.fork_rng(devices=[]):  # the same probe in every process; the caller's stream untouched
            torch.manual_seed(0)
            self.module = nn.Sequential(
                nn.Conv2d(32, 64, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                nn.Conv2d(64, 64, 3, padding=1, groups=64, bias=False), nn.Conv2d(64, 32, 1, bias=False),
            ).eval()
            self.x = torch.randn(*self.INPUT_SHAPE)
        self.clock = _clock(target)

    def time(self, calls: int = 3) -> float:
        """Median seconds of ``calls`` probe calls now (call inside ``_on(target)``)."""
        ts = []
        for _ in range(calls):
            t0 = self.clock()
            self.module(self.x)
            ts.append(self.clock() - t0)
        return sorted(ts)[len(ts) // 2]

    def calibrate(self, seconds: float = PROBE_CALIBRATION_TIME) -> float:
        """The fastest probe call in ``seconds`` of calls: the probe's time on the fast phase."""
        with _on(self.target):
            for _ in range(10):  # warm-up
                self.module(self.x)
            fastest, deadline = math.inf, time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                fastest = min(fastest, self.time(1))
        return fastest


def time_module(
    module: nn.Module,
    input_shape: tuple[int, ...],
    target: LatencyTarget,
    *,
    min_run_time: float = DEFAULT_PART_RUN_TIME,
    rotate_bytes: int = 0,
    probe: SpeedProbe | None = None,
) -> tuple[float, tuple[int, ...]]:
    """Seconds per ``module(x)`` call for a random ``x`` of ``input_shape`` on the target (the
    module is moved there and put in eval mode), and the output shape.

    A warm-up call, then ``Timer.blocked_autorange`` (which first grows its block size, more
    warm-up) for at least ``min_run_time`` seconds; the median over blocks.

    ``rotate_bytes``: time calls of enough copies of the module (same input, at most 64) that
    their weights take at least this many bytes, in turn, so each call finds its weights out of
    the cache as inside a network whose other parts ran in between (0: one module, cache-hot).

    ``probe`` (a calibrated ``SpeedProbe``, CPU): instead, single calls between probe calls, for at
    least ``min_run_time`` seconds and ``MIN_PROBED_CALLS`` calls; the median ratio of a call to the
    probe around it, times ``probe.nominal``. Hand-rolled because ``Timer`` times blocks of calls
    and cannot interleave another measurement.
    """
    module = module.to(target.torch_device).eval()
    x = torch.randn(*input_shape, device=target.torch_device)
    with _on(target):
        out = module(x)
        shape = tuple(out.shape)
        clock = _clock(target)
        threads = target.threads or torch.get_num_threads()
        copies = [module]
        if rotate_bytes > 0:
            weight_bytes = sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])
            k = min(64, max(1, -(-rotate_bytes // max(weight_bytes, 1))))
            copies += [copy.deepcopy(module) for _ in range(k - 1)]
        if probe is not None:
            return _probed_seconds(copies, x, probe, min_run_time), shape
        stmt = "module(x)" if len(copies) == 1 else "for module in copies: module(x)"
        timer = Timer(stmt=stmt, globals={"module": module, "copies": copies, "x": x}, num_threads=threads, timer=clock)
        seconds = timer.blocked_autorange(min_run_time=min_run_time).median / len(copies)
    return float(seconds), shape


def _probed_seconds(copies: list[nn.Module], x: torch.Tensor, probe: SpeedProbe, min_run_time: float) -> float:
    """Seconds per call of ``copies`` (in turn): the median ratio to the probe times its nominal."""
    if probe.nominal is None:
        raise ValueError("the speed probe is not calibrated; set probe.nominal = probe.calibrate() first")
    ratios: list[float] = []
    deadline = time.perf_counter() + min_run_time
    after = probe.time()
    while len(ratios) < MIN_PROBED_CALLS or time.perf_counter() < deadline:
        before = after
        t0 = probe.clock()
        for module in copies:
            module(x)
        seconds = (probe.clock() - t0) / len(copies)
        after = probe.time()
        ratios.append(seconds / ((before + after) / 2))
    ratios.sort()
    return float(ratios[len(ratios) // 2] * probe.nominal)


def measure_latency(
    spec: ArchSpec,
    num_classes: int,
    input_size: int,
    target: LatencyTarget,
    *,
    min_run_time: float = DEFAULT_NETWORK_RUN_TIME,
    probe: SpeedProbe | None = None,
) -> float:
    """Seconds per forward pass of the whole network on ``target`` (a batch of ``target.batch``
    images of ``input_size`` x ``input_size``): the exact measurement, no table entries (a
    table's ``measure`` times it with the table's probe)."""
    model = build_model(spec, num_classes)
    seconds, _ = time_module(model, (target.batch, 3, input_size, input_size), target, min_run_time=min_run_time,
                             probe=probe)
    return seconds


# ----------------------------------------------------------------------------- network parts


def _plain(obj: Any) -> Any:
    """A spec dataclass as JSON-able data (with its block ``kind``); fractions as '1/4'."""
    if dataclasses.is_dataclass(obj):
        out = {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        kind = getattr(type(obj), "kind", None)
        if isinstance(kind, str):
            out["kind"] = kind
        return out
    if isinstance(obj, (tuple, list)):
        return [_plain(x) for x in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)  # Fraction


class Part(NamedTuple):
    """One table entry of a network: what it is (JSON-able, the key's content) and a short name."""

    what: dict[str, Any]
    name: str

    def key(self, input_shape: tuple[int, ...]) -> str:
        blob = json.dumps({**self.what, "input": list(input_shape)}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


class _Tail(nn.Module):
    """Network.forward after the stages: head conv, pool, flatten, dropout, classifier."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.head, self.pool, self.dropout, self.classifier = net.head, net.pool, net.dropout, net.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.pool(self.head(x)).flatten(1)))


def network_parts(spec: ArchSpec, num_classes: int) -> list[Part]:
    """The parts of the network in forward order: stem, every block (and each stage's
    post-attention), tail; ``_part_modules`` gives their modules from a built network."""
    parts = [Part({"part": "stem", "stem": _plain(spec.stem)}, "stem")]
    in_ch = spec.stem.channels
    for i, stage in enumerate(spec.stages):
        for j, (block, stride) in enumerate(stage.blocks()):
            what = {"part": "block", "block": _plain(block), "in_ch": in_ch, "out_ch": stage.out_channels, "stride": stride}
            parts.append(Part(what, f"s{i}.b{j} {block.kind} {in_ch}->{stage.out_channels}/{stride}"))
            in_ch = stage.out_channels
        if stage.post_attention is not None:
            what = {"part": "attention", "attention": _plain(stage.post_attention), "channels": in_ch}
            parts.append(Part(what, f"s{i}.post {stage.post_attention.kind} {in_ch}"))
    parts.append(Part({"part": "tail", "head": _plain(spec.head), "in_ch": in_ch, "num_classes": num_classes}, "tail"))
    return parts


def _part_modules(net: nn.Module) -> list[nn.Module]:
    """The modules of a built ``Network`` in ``network_parts`` order (the exported network's own)."""
    modules: list[nn.Module] = [net.stem]
    for stage in net.stages:
        modules.extend(stage)
    modules.append(_Tail(net))
    return modules


# ----------------------------------------------------------------------------- the table


class LatencyTable:
    """Per-part latencies of one target, backed by a JSON file shared by processes.

    ``open`` gives one instance per (file, target) and process, so a search loads the file once.
    ``measurements`` counts the parts this instance timed; entries other processes saved are
    picked up on every ``save``.

    ``probe`` (default: on for CPU targets) times every part and ``measure`` between speed-probe
    calls (``SpeedProbe``). The probe's nominal time is calibrated when the first part of the
    section is timed and saved in the section; the first process to save it wins, so every entry
    of a section is in the same unit.
    """

    _open: dict[tuple[str, str], "LatencyTable"] = {}

    def __init__(
        self,
        path: str | os.PathLike,
        target: LatencyTarget,
        *,
        min_run_time: float = DEFAULT_PART_RUN_TIME,
        rotate_bytes: int = 0,
        probe: bool | None = None,
        calibration_time: float = PROBE_CALIBRATION_TIME,
    ) -> None:
        self.path = Path(path).expanduser()
        self.calibration_time = calibration_time
        self.target = target
        self.min_run_time = min_run_time
        self.rotate_bytes = rotate_bytes
        self.probe = target.device == "cpu" if probe is None else bool(probe)
        if self.probe:
            SpeedProbe.check_target(target)  # refused here, before any part is timed
        self.measurements = 0
        self.entries: dict[str, dict[str, Any]] = {}
        self._new: dict[str, dict[str, Any]] = {}
        self._speed_probe: SpeedProbe | None = None
        section = self._read().get("targets", {}).get(self.key(), {})
        self.entries.update(section.get("entries", {}))
        self.probe_s: float | None = section.get("probe_s")  # the probe's nominal seconds, once calibrated

    @classmethod
    def open(cls, path: str | os.PathLike, target: LatencyTarget, **kwargs: Any) -> "LatencyTable":
        """The process's table for ``path`` and ``target`` (loaded on first use)."""
        key = (str(Path(path).expanduser().resolve()), target.key() + repr(sorted(kwargs.items())))
        if key not in cls._open:
            cls._open[key] = cls(path, target, **kwargs)
        return cls._open[key]

    def __len__(self) -> int:
        return len(self.entries)

    def settings(self) -> dict[str, Any]:
        """The target's settings and how parts are timed: what the entries depend on."""
        return {**self.target.settings(), "rotate_bytes": self.rotate_bytes, "probe": self.probe}

    def key(self) -> str:
        """The key of this table's section of the file."""
        return json.dumps(self.settings(), sort_keys=True, separators=(",", ":"))

    # -- file
    def _read(self) -> dict[str, Any]:
        try:
            data = read_json(self.path)
        except json.JSONDecodeError as exc:
            raise ValueError(f"latency table {self.path} is not valid JSON ({exc}); delete it to start a new one") from None
        return self._checked(data)

    def _checked(self, data: Any) -> dict[str, Any]:
        if data is None:
            return {"version": CACHE_VERSION, "targets": {}}
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            raise ValueError(f"latency table {self.path} is not a version-{CACHE_VERSION} table; delete it or pass another path")
        return data

    def save(self) -> None:
        """Merge this process's new entries into the file under a lock and replace it atomically;
        afterwards this table also holds every entry other processes saved."""

        def merge(current: Any) -> dict[str, Any]:
            data = self._checked(current)
            section = data.setdefault("targets", {}).setdefault(self.key(), {"target": self.settings(), "entries": {}})
            if self.probe_s is not None:
                section.setdefault("probe_s", self.probe_s)  # first calibration wins, as entries do
            for key, entry in self._new.items():
                section["entries"].setdefault(key, entry)  # first measurement wins: all processes agree
            return data

        try:
            data = update_json(self.path, merge)
        except json.JSONDecodeError as exc:
            raise ValueError(f"latency table {self.path} is not valid JSON ({exc}); delete it to start a new one") from None
        section = data["targets"][self.key()]
        self.entries.update(section["entries"])
        self.probe_s = section.get("probe_s", self.probe_s)
        if self._speed_probe is not None:
            self._speed_probe.nominal = self.probe_s
        self._new.clear()

    def speed_probe(self) -> SpeedProbe | None:
        """The table's calibrated probe (None without one): the nominal time from the file, or
        calibrated now and saved at once, so that other processes time in the same unit."""
        if not self.probe:
            return None
        if self._speed_probe is None:
            self._speed_probe = SpeedProbe(self.target, self.probe_s)
            if self.probe_s is None:
                self.probe_s = self._speed_probe.calibrate(self.calibration_time)
                self.save()  # another process's earlier calibration replaces ours here
        return self._speed_probe

    # -- lookup
    def lookup(self, spec: ArchSpec, num_classes: int, input_size: int, *, save: bool = True) -> list[tuple[str, float]]:
        """(part name, seconds) of every part of the network, timing the parts not yet in the
        table (the network is built once, on the target, when one is missing)."""
        net: nn.Module | None = None
        modules: list[nn.Module] = []
        shape: tuple[int, ...] = (self.target.batch, 3, input_size, input_size)
        out: list[tuple[str, float]] = []
        for i, part in enumerate(network_parts(spec, num_classes)):
            key = part.key(shape)
            entry = self.entries.get(key)
            if entry is None:
                if net is None:
                    net = build_model(spec, num_classes)
                    modules = _part_modules(net)
                seconds, out_shape = time_module(
                    modules[i], shape, self.target, min_run_time=self.min_run_time, rotate_bytes=self.rotate_bytes,
                    probe=self.speed_probe(),
                )
                entry = {"seconds": seconds, "output": list(out_shape), "name": part.name}
                self.entries[key] = self._new[key] = entry
                self.measurements += 1
            out.append((part.name, entry["seconds"]))
            shape = tuple(entry["output"])
        if save and self._new:
            self.save()
        return out

    def predict(self, spec: ArchSpec, num_classes: int, input_size: int) -> float:
        """Seconds per forward pass: the sum of the network's entries."""
        return math.fsum(s for _, s in self.lookup(spec, num_classes, input_size))

    def measure(self, spec: ArchSpec, num_classes: int, input_size: int, *,
                min_run_time: float = DEFAULT_NETWORK_RUN_TIME) -> float:
        """Seconds per forward pass of the whole network, timed now with the table's probe (the
        same unit as its entries); adds no entry."""
        return measure_latency(spec, num_classes, input_size, self.target, min_run_time=min_run_time,
                               probe=self.speed_probe())


def predict_latency(
    spec: ArchSpec,
    num_classes: int,
    input_size: int,
    table: LatencyTable,
    *,
    mode: Literal["lookup", "exact"] = "lookup",
) -> float:
    """Seconds per forward pass of ``spec`` on ``table.target``: the sum of its table entries
    (``lookup``, parts timed once and cached) or the whole network timed now (``exact``, with
    the table's probe)."""
    if mode == "lookup":
        return table.predict(spec, num_classes, input_size)
    if mode == "exact":
        return table.measure(spec, num_classes, input_size)
    raise ValueError(f"latency mode {mode!r} is not known; use 'lookup' or 'exact'")


def latency_record(
    spec: ArchSpec, num_classes: int, input_size: int, table: LatencyTable, *, mode: Literal["lookup", "exact"] = "lookup"
) -> dict[str, Any]:
    """What a trial stores: latency in seconds, the target's one-line description, the mode."""
    return {
        "latency_s": predict_latency(spec, num_classes, input_size, table, mode=mode),
        "latency_device": table.target.describe(),
        "latency_mode": mode,
    }
