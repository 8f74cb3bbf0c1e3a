"""The GPU check (issue 15): one self-limiting command that measures the tool on one device and
prints a single JSON object as its last line (also written to ``$OUT/gpu_check.json`` when
``$OUT`` is set).

Phases, each inside its share of ``--budget-s`` (default 480 s; checked between phases and inside
every loop, and a watchdog prints the JSON with whatever was measured before the budget ends):

1. data: load the data set once onto the device (``--data-dir``: an image-folder ``.zip``, folder,
   or ``.tar.xz`` of one, as ``gpu_wheels.sh`` packs CIFAR-10; synthetic without it in ``--smoke``).
2. throughput: ours (``train_proxy`` on resident data) against a torchvision ``DataLoader``
   pipeline with the same augmentation, same network, gpu preset recipe, side by side
   (``benchmarks/proxy_throughput.py``'s two trials; on CUDA both in bf16 autocast + channels_last).
   On CUDA also: host syncs in one epoch of ``Trainer.train_epoch`` (CUDA's sync debug mode).
3. workers: 1, 2, 4, 8 concurrent trials (processes, each holding the data: spawned on CUDA,
   forked on a CPU) on one device, each training sampled ``seesaw`` networks with the search's
   proxy preset through the search's own evaluator, for a time window; GPU utilisation (nvidia-ml-py,
   else nvidia-smi) and memory sampled meanwhile; how many trial processes fit in the GPU's memory.
4. search: a short real search with the default settings (``search.runner.run_search`` with
   ``SearchConfig(dataset="imagefolder", data_dir=...)``; budget sized to the time left).

Keys: device, images_per_s_ours, images_per_s_dataloader, ratio, gpu_util_percent, gpu_mem_mb,
trials_per_min_by_workers, search_trials, search_wall_s, projected_200_trial_min (a projection from
the measured rate, not a measurement), and the details of every phase.

On a device machine (torch + torchvision only; nothing can be downloaded there), prepare here
with ``bash benchmarks/gpu_wheels.sh`` (wheels into ``.whl/``, CIFAR-10 packed into ``.data/``),
carry ``.whl`` and ``.data``, and run there:

    python3 -m pip install -q --no-index --find-links .whl optuna plotly pyyaml tqdm filelock scipy; \\
    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --data-dir .data/cifar10-jpg.tar.xz --budget-s 420

(BENCHMARKS.md, "GPU check", gives the device call with its timeout and where the JSON goes).

(or ``--wheels .whl`` to let this script install what is missing). On a CPU, the same code paths
with tiny sizes in under 2 minutes:

    OMP_NUM_THREADS=1 python benchmarks/gpu_check.py --smoke
"""

from __future__ import annotations

import time

START = time.monotonic()  # the budget counts from here: imports included

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import importlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing as mp  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import queue  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
import zipfile  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Only torch, torchvision and the torch-only parts of the tool here: optuna, scipy, yaml, tqdm
# and plotly may arrive with --wheels, so the search's modules are imported after that step.
import torch  # noqa: E402

from benchmarks.proxy_throughput import our_trial, pipeline_only, usual_trial, write_cifar_pickles  # noqa: E402
from blocks import build_model  # noqa: E402
from search.executors.sizing import gpu_fraction, trials_per_device  # noqa: E402
from search.train.data import DataSplits, load_dataset  # noqa: E402
from search.train.evaluator import ProxyEvaluator  # noqa: E402
from search.train.proxy import PRESETS, ProxyConfig  # noqa: E402
from search.train.trainer import AMP_DTYPES, CUDA_FINITE_CHECK_STEPS, Trainer  # noqa: E402
from space.references import get_reference  # noqa: E402
from space.scaling import scale_width  # noqa: E402
from space.spaces import get_space  # noqa: E402
from space.spec import ArchSpec  # noqa: E402

# module -> distribution: what the search imports beyond torch/torchvision (plotly: plots only).
TOOL_PACKAGES = {"optuna": "optuna", "yaml": "pyyaml", "tqdm": "tqdm", "filelock": "filelock", "scipy": "scipy",
                 "plotly": "plotly"}
WORKER_COUNTS = (1, 2, 4, 8)
SMOKE_WORKER_COUNTS = (1, 2)
TRIALS_FOR_PROJECTION = 200
WATCHDOG_BEFORE_END_S = 3.0
# --smoke: the smoke preset cut further, so that a trial takes about a second on a busy CPU
SMOKE_OVERRIDES = {"train_subset": 64, "batch_size": 32, "val_images": 64, "width_scale": 0.125}  # the watchdog prints the JSON this long before the budget ends


# ----------------------------------------------------------------------------- time


class Budget:
    """Wall-clock budget counted from ``START``; phases ask for deadlines inside it."""

    def __init__(self, total_s: float, reserve_s: float) -> None:
        self.total_s, self.reserve_s = total_s, reserve_s
        self.end = START + total_s - reserve_s  # the watchdog's time: every phase ends before it

    def left(self) -> float:
        return self.end - time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - START

    def deadline(self, fraction: float, cap_s: float = math.inf) -> float:
        """A monotonic deadline ``fraction`` of the time left from now (at most ``cap_s`` away)."""
        return time.monotonic() + max(0.0, min(self.left() * fraction, cap_s))


# ----------------------------------------------------------------------------- report


class Report:
    """The JSON result; printed once, by the main flow or by the watchdog, whichever comes first."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {
            "device": None, "images_per_s_ours": None, "images_per_s_dataloader": None, "ratio": None,
            "gpu_util_percent": None, "gpu_mem_mb": None, "trials_per_min_by_workers": {},
            "search_trials": None, "search_wall_s": None, "projected_200_trial_min": None, "phases": {},
        }
        self.lock = threading.Lock()
        self.emitted = False
        self.children: list[mp.process.BaseProcess] = []

    def phase(self, name: str, status: str, started: float, **extra: Any) -> None:
        self.data["phases"][name] = {"status": status, "s": round(time.monotonic() - started, 2), **extra}

    def emit(self, cut_off: str | None = None) -> bool:
        with self.lock:
            if self.emitted:
                return False
            self.emitted = True
            self.data["elapsed_s"] = round(time.monotonic() - START, 1)
            if cut_off:
                self.data["cut_off"] = cut_off
            self.data["ray_imported"] = "ray" in sys.modules
            text = json.dumps(plain(self.data), sort_keys=False)
            out = os.environ.get("OUT")
            if out:
                try:
                    Path(out).mkdir(parents=True, exist_ok=True)
                    (Path(out) / "gpu_check.json").write_text(text + "\n")
                except OSError as exc:
                    print(f"note: could not write $OUT/gpu_check.json ({exc})", file=sys.stderr)
            sys.stderr.flush()
            print(text, flush=True)
            return True


def plain(x: Any) -> Any:
    """JSON-safe: non-finite floats -> None, tuples -> lists, keys -> str, floats rounded."""
    if isinstance(x, float):
        return round(x, 4) if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    return x


def describe(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message[:300]}"


# ----------------------------------------------------------------------------- GPU sampling


class GpuSampler:
    """Utilisation (%) and memory used (MB) of one GPU, sampled in a thread: nvidia-ml-py (pynvml)
    when importable, else ``nvidia-smi``; ``backend`` None with a ``reason`` where neither works."""

    def __init__(self, device: torch.device, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self.backend: str | None = None
        self.reason: str | None = None
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._read: Callable[[], tuple[float, float]] | None = None
        if device.type != "cuda":
            self.reason = f"no GPU: the device is {device}"
            return
        index = self._physical_index(device)
        try:
            import pynvml  # optional (nvidia-ml-py): the cheapest reader

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)

            def read_nvml() -> tuple[float, float]:
                util = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
                return float(util), pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20

            read_nvml()
            self.backend, self._read = "pynvml", read_nvml
            return
        except Exception as exc:  # not installed, or NVML not reachable: try nvidia-smi
            nvml_error = describe(exc)
        smi = shutil.which("nvidia-smi")
        if smi is None:
            self.reason = f"pynvml unusable ({nvml_error}) and no nvidia-smi on PATH"
            return

        def read_smi() -> tuple[float, float]:
            out = subprocess.run([smi, "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                                  "-i", str(index)], capture_output=True, text=True, timeout=5, check=True).stdout
            util, used = out.strip().splitlines()[0].split(",")
            return float(util), float(used)

        try:
            read_smi()
            self.backend, self._read = "nvidia-smi", read_smi
        except Exception as exc:
            self.reason = f"pynvml unusable ({nvml_error}); nvidia-smi failed ({describe(exc)})"

    @staticmethod
    def _physical_index(device: torch.device) -> int:
        index = device.index if device.index is not None else torch.cuda.current_device()
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
        if index < len(visible) and visible[index].strip().isdigit():
            return int(visible[index])
        return index

    def read_once(self) -> tuple[float, float] | None:
        """(utilisation %, memory used MB) now, or None without a reader."""
        try:
            return self._read() if self._read is not None else None
        except Exception:
            return None

    def __enter__(self) -> "GpuSampler":
        self.samples = []
        if self._read is not None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self._read())
            except Exception as exc:  # a failing reader stops sampling, the check goes on
                self.reason = f"{self.backend} stopped answering ({describe(exc)})"
                return
            self._stop.wait(self.interval_s)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def summary(self) -> dict[str, Any] | None:
        if not self.samples:
            return None
        util = [s[0] for s in self.samples]
        return {"util_mean_percent": statistics.fmean(util), "util_max_percent": max(util),
                "mem_used_max_mb": max(s[1] for s in self.samples), "samples": len(self.samples)}

    def info(self) -> dict[str, Any]:
        return {"backend": self.backend, "reason": self.reason, "interval_s": self.interval_s}


# ----------------------------------------------------------------------------- setup


def install_wheels(folder: str) -> dict[str, Any]:
    """pip-install, from ``folder`` only, the tool's packages that are not importable yet."""
    missing = [dist for module, dist in TOOL_PACKAGES.items() if importlib.util.find_spec(module) is None]
    result: dict[str, Any] = {"folder": folder, "missing_before": missing}
    if missing:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", folder, *missing]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        importlib.invalidate_caches()
        result["pip_rc"] = proc.returncode
        if proc.returncode:
            result["pip_error"] = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
    result["missing_after"] = [dist for module, dist in TOOL_PACKAGES.items() if importlib.util.find_spec(module) is None]
    return result


def unpack_data(source: str, tmp: Path) -> str:
    """An image-folder source as ``load_dataset`` reads it: the files of a ``.tar.xz``/``.tar.gz``/
    ``.tar`` are copied into one uncompressed ``.zip`` in ``tmp`` (one file: no 60,000 small files
    to write and remove); a folder or ``.zip`` is read in place."""
    path = Path(source).expanduser()
    if not path.is_file() or not tarfile.is_tarfile(path):
        return str(path)
    target = tmp / (path.name.split(".tar")[0] + ".zip")
    with tarfile.open(path) as tar, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zf:
        for member in tar:
            if member.isfile():
                name = member.name.removeprefix("./")
                if name.startswith("/") or ".." in name.split("/"):
                    raise ValueError(f"{source}: unsafe member name {member.name!r}")
                zf.writestr(name, tar.extractfile(member).read())
    return str(target)


# ----------------------------------------------------------------------------- phase: throughput


def measure_throughput(data: DataSplits, dataset: str, data_dir: str | None, device: torch.device, *, smoke: bool,
                       deadline: float, tmp: Path, loader_workers: int, model_name: str) -> dict[str, Any]:
    """Ours vs the DataLoader pipeline: same network, gpu preset recipe, alternating trials."""
    preset = PRESETS["gpu"]
    if smoke:
        preset = dataclasses.replace(preset, batch_size=32, width_scale=0.25)
    steps = 3 if smoke else 150
    images = steps * preset.batch_size
    config = dataclasses.replace(preset, epochs=1, train_subset=images, val_images=1)
    spec = scale_width(get_reference(model_name).spec, config.width_scale)
    cuda = device.type == "cuda"
    amp = AMP_DTYPES[config.amp] if cuda else None
    channels_last = cuda and config.channels_last

    def fresh_model() -> torch.nn.Module:
        torch.manual_seed(0)
        return build_model(spec, data.num_classes)

    root = tmp / "pickles"
    write_cifar_pickles(data_dir, dataset, root)
    sampler = GpuSampler(device)
    out: dict[str, Any] = {
        "model": model_name, "width_scale": config.width_scale, "batch_size": config.batch_size, "steps": steps,
        "images_per_trial": images, "dataloader": f"torchvision CIFAR10 (pickles) + per-sample RandomCrop/Flip/"
        f"ToTensor/Normalize + DataLoader(num_workers={loader_workers})",
        "precision": "bf16 autocast + channels_last on both sides" if cuda else "float32 (CPU) on both sides",
    }
    ours_p, usual_p = pipeline_only(data, "cifar", root, config, steps, loader_workers, device)
    out["pipeline_alone_images_per_s"] = {"ours": ours_p, "dataloader": usual_p}
    ours_t: list[float] = []
    usual_t: list[float] = []
    util: dict[str, list[float]] = {"ours": [], "dataloader": []}
    repeats, warmup = (1, 0) if smoke else (3, 1)
    for i in range(1 - warmup, repeats + 1):  # i == 0: warm-up pair, not counted
        with sampler:
            a = our_trial(fresh_model(), data, config, device)
        s_ours = sampler.summary()
        with sampler:
            b = usual_trial(fresh_model().to(device), "cifar", root, config, steps, loader_workers, data.mean,
                            data.std, device, autocast_dtype=amp, channels_last=channels_last)
        s_usual = sampler.summary()
        if i:
            ours_t.append(a)
            usual_t.append(b)
            for side, s in (("ours", s_ours), ("dataloader", s_usual)):
                if s:
                    util[side].append(s["util_mean_percent"])
        if time.monotonic() > deadline and ours_t:
            break
    out["pairs"] = len(ours_t)
    out["trial_s"] = {"ours": ours_t, "dataloader": usual_t}
    out["images_per_s_ours"] = images / statistics.median(ours_t)
    out["images_per_s_dataloader"] = images / statistics.median(usual_t)
    out["ratio"] = out["images_per_s_ours"] / out["images_per_s_dataloader"]
    out["gpu_util_percent"] = {k: statistics.fmean(v) if v else None for k, v in util.items()}
    out["gpu_sampling"] = sampler.info()
    return out


# ----------------------------------------------------------------------------- phase: host syncs


def count_host_syncs(data: DataSplits, device: torch.device, model_name: str, steps: int = 48) -> dict[str, Any]:
    """Host syncs in one epoch of ``Trainer.train_epoch`` with the gpu preset, by CUDA's sync debug
    mode (each sync is a warning at the Python line that caused it); one epoch before warms up."""
    if device.type != "cuda":
        return {"status": f"skipped: CUDA's sync debug mode needs a GPU (device {device})"}
    config = dataclasses.replace(PRESETS["gpu"], epochs=2, warmup_epochs=0)
    torch.manual_seed(0)
    model = build_model(scale_width(get_reference(model_name).spec, config.width_scale), data.num_classes)
    trainer = Trainer(model, config, device=device, seed=0, num_classes=data.num_classes, mean=data.mean,
                      std=data.std, train_images=steps * config.batch_size)
    trainer.train_epoch(data.train_x, data.train_y)
    torch.cuda.synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            trainer.train_epoch(data.train_x, data.train_y)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    sites = Counter(f"{Path(w.filename).name}:{w.lineno}" for w in caught if "synchroniz" in str(w.message).lower())
    return {"status": "ok", "steps": steps, "syncs": sum(sites.values()), "by_site": dict(sites),
            "expected": f"{steps // CUDA_FINITE_CHECK_STEPS} lagged finite checks + 1 epoch mean (trainer.py)"}


# ----------------------------------------------------------------------------- phase: concurrent trials


def _trial_worker(index: int, data_args: dict[str, Any], config: ProxyConfig, device: str, threads: int | None,
                  specs: list[dict[str, Any]], counter: Any, cmd_q: Any, result_q: Any) -> None:
    """One trial process: load the data once, warm up, then run trials on command until told to stop."""
    try:
        if threads:
            torch.set_num_threads(threads)
        t0 = time.monotonic()
        data = load_dataset(**data_args, device=device)
        load_s = time.monotonic() - t0
        t0 = time.monotonic()
        warm = dataclasses.replace(config, epochs=1, train_subset=2 * config.batch_size, val_images=1)
        ProxyEvaluator(data, warm, device, data.num_classes)(ArchSpec.from_dict(specs[0]), seed=0)
        result_q.put(("ready", index, load_s, time.monotonic() - t0))
        evaluate = ProxyEvaluator(data, config, device, data.num_classes)
        cuda = device.startswith("cuda")
        while True:
            cmd = cmd_q.get()
            if cmd is None:
                return
            setting, stop_at = cmd  # stop_at: time.time() after which no trial starts
            while time.time() < stop_at:
                with counter.get_lock():
                    i = counter.value
                    counter.value += 1
                if i >= len(specs):
                    break
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                start = time.time()
                ev = evaluate(ArchSpec.from_dict(specs[i]), seed=i)
                if cuda:
                    torch.cuda.synchronize()
                peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
                result_q.put(("trial", setting, index, i, start, time.time(), ev.status, peak, ev.failure))
            result_q.put(("done", setting, index))
    except KeyboardInterrupt:
        return
    except Exception as exc:
        result_q.put(("error", index, describe(exc), traceback.format_exc()[-2000:]))


def measure_workers(data_args: dict[str, Any], config: ProxyConfig, device: torch.device, counts: tuple[int, ...], *,
                    smoke: bool, deadline: float, report: Report, start_method: str = "auto") -> dict[str, Any]:
    """Trials per minute with N concurrent trial processes on one device, N in ``counts``."""
    space = get_space("seesaw")
    if smoke:  # the space's smallest network, again and again
        specs = [space.spec_from_params(space.smallest_params()).to_dict()] * 256
    else:
        specs = [s.to_dict() for s in space.random_specs(256, seed=15)]
    # CUDA needs spawned processes (a forked CUDA context is unusable); on a CPU, forking skips
    # re-importing torch in every worker (tens of seconds on a busy machine), same worker code.
    if start_method == "auto":
        start_method = "spawn" if device.type == "cuda" else "fork"
    ctx = mp.get_context(start_method)
    counter = ctx.Value("l", 0)
    result_q = ctx.Queue()
    cmd_qs = [ctx.Queue() for _ in range(max(counts))]
    threads = 1 if device.type == "cpu" else None
    before = GpuSampler(device).read_once()  # memory used before the trial processes start
    procs = [ctx.Process(target=_trial_worker, name=f"gpu-check-{i}", daemon=True,
                         args=(i, data_args, config, str(device), threads, specs, counter, cmd_qs[i], result_q))
             for i in range(max(counts))]
    report.children.extend(procs)
    out: dict[str, Any] = {"proxy": "smoke" if smoke else ("gpu" if device.type == "cuda" else "cpu"),
                           "processes": f"{ctx.get_start_method()}ed, one trial each at a time",
                           "networks": "the seesaw space's smallest network" if smoke else
                           "seesaw space samples (seed 15), the same order for every N", "by_workers": {}}
    t0 = time.monotonic()
    for p in procs:
        p.start()
    ready: dict[int, tuple[float, float]] = {}
    try:
        while len(ready) < len(procs):
            msg = result_q.get(timeout=max(1.0, deadline - time.monotonic()))
            if msg[0] == "error":
                raise RuntimeError(f"worker {msg[1]}: {msg[2]}")
            ready[msg[1]] = (msg[2], msg[3])
        out["start_s"] = time.monotonic() - t0
        out["worker_data_load_s"] = max(r[0] for r in ready.values())
        out["worker_warmup_s"] = max(r[1] for r in ready.values())
        # the rest of the phase split over the counts; a window ends early enough for the tail
        for k, n in enumerate(counts):
            left = deadline - time.monotonic()
            share = left / (len(counts) - k)
            if share < (3 if smoke else 10):
                out["by_workers"][n] = {"status": "skipped: out of time"}
                continue
            window = min(share * 0.5, 6.0) if smoke else share * 0.6  # smoke: fixed, whatever the budget
            hard_stop = time.monotonic() + share
            sampler = GpuSampler(device)
            counter.value = 0
            started = time.time()
            trials: list[tuple] = []
            done: set[int] = set()
            with sampler:
                for q in cmd_qs[:n]:
                    q.put((n, started + window))
                while len(done) < n and time.monotonic() < hard_stop:
                    try:
                        msg = result_q.get(timeout=max(0.1, min(1.0, hard_stop - time.monotonic())))
                    except queue.Empty:
                        continue
                    if msg[0] == "trial" and msg[1] == n:
                        trials.append(msg)
                    elif msg[0] == "done" and msg[1] == n:
                        done.add(msg[2])
                    elif msg[0] == "error":
                        raise RuntimeError(f"worker {msg[1]}: {msg[2]}")
            wall = time.time() - started
            ok = [t for t in trials if t[6] == "ok"]
            durations = [t[5] - t[4] for t in trials]
            gpu = sampler.summary()
            entry: dict[str, Any] = {
                "trials": len(trials), "ok": len(ok), "wall_s": wall, "window_s": window,
                "trials_per_min": 60 * len(trials) / wall if trials else None,
                "mean_trial_s": statistics.fmean(durations) if durations else None,
                "steady_trials_per_min": 60 * n / statistics.fmean(durations) if durations else None,
                "trial_peak_mem_mb": max((t[7] for t in trials if t[7] is not None), default=None),
                "gpu_util_percent": gpu["util_mean_percent"] if gpu else None,
                "gpu_mem_used_max_mb": gpu["mem_used_max_mb"] if gpu else None,
                # one trial process's whole footprint: context, allocator cache, data, its training
                "process_mem_mb": (gpu["mem_used_max_mb"] - before[1]) / n if gpu and before else None,
                "failures": sorted({t[8] for t in trials if t[8]})[:3],
            }
            if len(done) < n:
                entry["status"] = "cut off: trials still running at the phase's limit (workers stopped)"
                out["by_workers"][n] = entry
                break  # the running trials would skew every later count
            entry["status"] = "ok"
            out["by_workers"][n] = entry
        out["gpu_sampling"] = GpuSampler(device).info()
        out["gpu_mem_used_before_mb"] = before[1] if before else None
        footprints = [e["process_mem_mb"] for e in out["by_workers"].values() if (e.get("process_mem_mb") or 0) > 0]
        if device.type == "cuda" and footprints:
            total_mb = torch.cuda.get_device_properties(device).total_memory / 2**20
            fit = trials_per_device(total_mb, max(footprints))
            out["memory_bound"] = {"device_mb": total_mb, "process_mem_mb": max(footprints), "trials_per_gpu": fit,
                                   "ray_gpus_per_trial": gpu_fraction(fit),
                                   "basis": "search.executors.sizing.trials_per_device (10% kept free, at most 8)"}
    finally:
        for q in cmd_qs:
            q.put(None)
        for p in procs:
            p.join(timeout=5)
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
    return out


# ----------------------------------------------------------------------------- phase: search


class _Alarm(KeyboardInterrupt):
    """The search phase's time is up (run_search treats it like Ctrl-C: saves and summarises)."""


def run_short_search(dataset: str, data_dir: str | None, *, smoke: bool, deadline: float, trial_s: float | None,
                     tmp: Path) -> dict[str, Any]:
    """``deadline``: when the search is interrupted (as by Ctrl-C); its summary is written after it."""
    """A short search with the default settings through the tool's own entry point."""
    # imported here: optuna and scipy may have arrived with --wheels after this module was loaded
    from search.config import SearchConfig
    from search.runner import run_search

    left = deadline - time.monotonic()  # run_search summarises after this (finalize_s before the end)
    per_trial = trial_s if trial_s and trial_s > 0 else (5.0 if smoke else 15.0)
    budget = 2 if smoke else max(2, min(30, int(left / (1.5 * per_trial))))
    overrides: dict[str, Any] = {"proxy": "smoke", "proxy_overrides": SMOKE_OVERRIDES} if smoke else {}
    cfg = SearchConfig(space="seesaw", budget=budget, dataset=dataset, data_dir=data_dir or "data",
                       name="gpu-check", results_dir=str(tmp / "results"), **overrides)
    def alarm(*_: object) -> None:
        raise _Alarm()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, max(1.0, left))
    started = time.monotonic()
    try:
        summary = run_search(cfg)
    except _Alarm:
        summary = {"finished": None, "interrupted": True}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    wall = time.monotonic() - started
    out = {
        "settings": "SearchConfig defaults" + (f" with proxy=smoke, {SMOKE_OVERRIDES}" if smoke else "")
        + f", dataset {dataset}, budget {budget}",
        "budget": budget, "finished": summary.get("finished"), "statuses": summary.get("statuses"),
        "interrupted": summary.get("interrupted"), "wall_s": wall,
        "hypervolume": summary.get("hypervolume"),
    }
    out_dir = os.environ.get("OUT")
    if out_dir:  # the search's own record comes back beside the JSON
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        for name in ("trials.csv", "search.log"):
            if (cfg.run_dir / name).exists():
                shutil.copy(cfg.run_dir / name, Path(out_dir) / f"gpu_check_{name}")
    return out


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes on any device (CPU: under 2 minutes)")
    p.add_argument("--data-dir", default=None,
                   help="image-folder CIFAR-10: .zip, folder, or .tar.xz of one (default: synthetic with --smoke)")
    p.add_argument("--budget-s", type=float, default=None, help="wall-clock limit (default 480; --smoke: 110)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--wheels", default=None, help="pip-install the tool's missing packages from this folder first")
    p.add_argument("--workers", default=None,
                   help="comma-separated concurrent-trial counts (default 1,2,4,8; --smoke: 1,2)")
    p.add_argument("--loader-workers", type=int, default=None,
                   help="DataLoader num_workers of the usual pipeline (default min(8, cores); --smoke: 1)")
    p.add_argument("--model", default="seesaw_0.5d_cifar10", help="the throughput phase's reference network")
    p.add_argument("--start-method", default="auto", choices=("auto", "spawn", "fork"),
                   help="trial processes: auto = spawn on CUDA (required there), fork on a CPU")
    args = p.parse_args(argv)
    if args.data_dir is None and not args.smoke:
        p.error("--data-dir (real CIFAR-10) is required without --smoke")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    budget = Budget(args.budget_s or (110.0 if args.smoke else 480.0), reserve_s=WATCHDOG_BEFORE_END_S)
    finalize_s = 10.0 if args.smoke else 20.0  # run_search's summary, plots and files after an interrupt
    report = Report()
    r = report.data
    device = torch.device(args.device)
    counts = tuple(int(n) for n in args.workers.split(",")) if args.workers else (
        SMOKE_WORKER_COUNTS if args.smoke else WORKER_COUNTS)
    r.update(mode="smoke" if args.smoke else "full", budget_s=budget.total_s, torch=torch.__version__,
             python=platform.python_version(), cpu_count=os.cpu_count())
    r["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()})"

    # the watchdog: whatever happens, the JSON is printed before the budget ends
    def watchdog() -> None:
        for p in report.children:
            if p.is_alive():
                p.terminate()
        if report.emit(cut_off="watchdog: the budget ended inside a phase"):
            os._exit(3)

    timer = threading.Timer(max(0.0, budget.end - time.monotonic()), watchdog)
    timer.daemon = True
    timer.start()
    tmp = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    failed = False
    try:
        if args.wheels:
            t = time.monotonic()
            r["wheels"] = install_wheels(args.wheels)
            report.phase("wheels", "ok" if not r["wheels"]["missing_after"] else "incomplete", t)

        # 1. data, once, on the device
        t = time.monotonic()
        dataset = "imagefolder" if args.data_dir else "synthetic"
        data_dir = unpack_data(args.data_dir, tmp) if args.data_dir else None
        data = load_dataset(dataset, data_dir, device=device)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        sync()
        r["data"] = {"description": data.describe(), "source": args.data_dir or "synthetic"}
        r["data_load_s"] = time.monotonic() - t
        report.phase("data", "ok", t)
        data_args = {"name": dataset, "data_dir": data_dir}

        # 2. ours vs the DataLoader pipeline
        t = time.monotonic()
        try:
            tp = measure_throughput(data, dataset, data_dir, device, smoke=args.smoke, deadline=budget.deadline(0.2, 120),
                                    tmp=tmp, loader_workers=args.loader_workers or (1 if args.smoke else min(8, os.cpu_count() or 1)),
                                    model_name=args.model)
            r["throughput"] = tp
            r.update(images_per_s_ours=tp["images_per_s_ours"], images_per_s_dataloader=tp["images_per_s_dataloader"],
                     ratio=tp["ratio"])
            report.phase("throughput", "ok", t)
        except Exception as exc:
            failed = True
            report.phase("throughput", f"error: {describe(exc)}", t, traceback=traceback.format_exc()[-1500:])

        # 2b. host syncs of the training loop (CUDA only)
        t = time.monotonic()
        try:
            r["host_syncs"] = count_host_syncs(data, device, args.model)
            report.phase("host_syncs", r["host_syncs"]["status"], t)
        except Exception as exc:
            failed = True
            report.phase("host_syncs", f"error: {describe(exc)}", t, traceback=traceback.format_exc()[-1500:])

        # 3. concurrent trials on one device
        t = time.monotonic()
        config = (dataclasses.replace(PRESETS["smoke"], **SMOKE_OVERRIDES) if args.smoke
                  else PRESETS["gpu" if device.type == "cuda" else "cpu"])
        trial_s = None
        try:
            if budget.left() < (20 if args.smoke else 60):
                report.phase("workers", "skipped: out of time", t)
            else:
                wk = measure_workers(data_args, config, device, counts, smoke=args.smoke,
                                     deadline=budget.deadline(0.6 if args.smoke else 0.55), report=report,
                                     start_method=args.start_method)
                r["workers"] = wk
                by = {n: e for n, e in wk["by_workers"].items() if e.get("trials_per_min")}
                r["trials_per_min_by_workers"] = {n: e["trials_per_min"] for n, e in by.items()}
                one = by.get(1) or {}
                r["gpu_util_percent"] = {n: e["gpu_util_percent"] for n, e in by.items()}
                r["gpu_mem_mb"] = {n: e["trial_peak_mem_mb"] for n, e in by.items()}
                r["gpu_sampling"] = wk.get("gpu_sampling")
                trial_s = one.get("mean_trial_s")
                if by:
                    best = max(by, key=lambda n: by[n]["trials_per_min"])
                    r["best_workers"] = best
                    r["projected_200_trial_min"] = (TRIALS_FOR_PROJECTION / by[best]["trials_per_min"]
                                                    + r["data_load_s"] / 60)
                    r["projection_basis"] = (f"{TRIALS_FOR_PROJECTION} / measured trials_per_min at {best} workers "
                                             "+ data_load_s; a projection, not a measured 200-trial search")
                report.phase("workers", "ok", t)
        except Exception as exc:
            failed = True
            report.phase("workers", f"error: {describe(exc)}", t, traceback=traceback.format_exc()[-1500:])
        for key, why in (("gpu_util_percent", GpuSampler(device).reason or "no samples"),
                         ("gpu_mem_mb", f"no CUDA memory statistics on {device}")):
            if not r[key] or all(v is None for v in r[key].values()):
                r[key] = None
                r[f"{key}_reason"] = why

        # 4. a short real search with the default settings
        t = time.monotonic()
        try:
            if budget.left() < finalize_s + (10 if args.smoke else 30):
                report.phase("search", "skipped: out of time", t)
            else:
                s = run_short_search(dataset, data_dir, smoke=args.smoke, deadline=budget.end - finalize_s,
                                     trial_s=trial_s, tmp=tmp)
                r["search"] = s
                r["search_trials"], r["search_wall_s"] = s["finished"], s["wall_s"]
                report.phase("search", "ok" if not s["interrupted"] else "interrupted at the budget", t)
        except Exception as exc:
            failed = True
            report.phase("search", f"error: {describe(exc)}", t, traceback=traceback.format_exc()[-1500:])
    except BaseException as exc:  # noqa: BLE001 - whatever stops the check, the JSON says so
        failed = True
        r["error"] = describe(exc)
        r["traceback"] = traceback.format_exc()[-2000:]
    finally:
        report.emit()  # first: removing an unpacked data set can take a while
        timer.cancel()
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
