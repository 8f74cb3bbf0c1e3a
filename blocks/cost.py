"""Parameters and multiply-adds counted from the built modules, never from a formula.

MACs = FLOPs / 2 by PyTorch's FLOP formulas (``torch.utils.flop_counter``: 2 FLOPs per multiply-add
of conv, linear and matmul), batch 1. BN, activations, pooling and adds are not counted (the
papers' convention, see REFERENCE_MODELS.md). ``blocks.counting.count_module_cost`` counts a whole
module with ``FlopCounterMode`` on its own device.

``count_cost`` counts a network part by part (stem, each block, each post-stage attention, head):
a network is a chain of them, so the sum is the whole network's count (tested against
``count_module_cost`` of the whole network for every reference and samples of every space). Each
part is memoised by what determines it (its spec, channels, stride, input resolution), so the
repeats of a stage and the blocks that a search's networks share are built and counted once.

A part is built and run once on the CPU at batch 1, inside ``_MacCount``. One part at a time is
small (the largest, an ImageNet ResNet block, has ~4M weights), and a real forward is faster than
the meta device here: meta kernels run in Python (5x slower on CIFAR-sized parts) and import
``torch._dynamo`` (1.4 s) on first use. That work lives in ``blocks.counting``; this module imports
neither torch nor it until a part is missing from the part-count file below, so a command whose
parts are all counted already never imports torch.

Part counts also persist across processes, in ``user_cache_dir()/part-costs/<fingerprint>.json``:
``--describe``, ``--references`` and the workers of a search count a part once per machine. The
fingerprint hashes the installed torch version (read from its metadata, without importing torch)
and the source of ``blocks/`` and ``space/spec.py`` (what builds a part and what its key prints),
so any change there starts a new file.

``count_costs`` counts many networks at once, as ``--describe`` and ``--references`` do: on Linux
with more than one usable core, the networks with parts new to the machine are counted in forked
processes, one per core (at most 4), and their counts merged into this process's file. A first
``--describe`` (~1,300 new parts) takes about half as long on two cores.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import hashlib
import importlib.metadata
import json
import logging
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Iterable, NamedTuple

import space.spec
from blocks.cache import read_json, update_json, user_cache_dir
from space.spec import ArchSpec, AttentionSpec, BlockSpec, HeadSpec, StemSpec

__all__ = ["Cost", "PartCost", "count_cost", "count_costs", "part_cost_file"]

log = logging.getLogger(__name__)


class Cost(NamedTuple):
    params: int
    macs: int


class PartCost(NamedTuple):
    """One part's count (``blocks.counting.count_part``)."""

    params: int
    macs: int
    out_hw: tuple[int, int]  # the part's output resolution, the next part's input


class _PartCostFile:
    """The part counts of earlier processes on this machine: read on first use, new ones merged into
    the file under its lock (``blocks.cache.update_json``) every ``SAVE_EVERY_S`` and at exit.

    Only a cache: a damaged file counts again and is replaced; a file that cannot be written is
    left alone (one warning) and counting goes on in memory.
    """

    SAVE_EVERY_S = 10.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, list[Any]] | None = None  # read on first use
        self.new: dict[str, list[Any]] = {}
        self.saved_at = time.monotonic()
        self.writable = True

    def _load(self) -> dict[str, list[Any]]:
        if self.entries is None:
            try:
                data = read_json(self.path)
            except (OSError, ValueError):
                data = None  # unreadable: count again, the next save replaces it
            self.entries = data if isinstance(data, dict) else {}
        return self.entries

    def get(self, key: str) -> PartCost | None:
        entry = self._load().get(key)
        if not (isinstance(entry, list) and len(entry) == 3):
            return None
        params, macs, out_hw = entry
        return PartCost(params, macs, tuple(out_hw))

    def put(self, key: str, cost: PartCost) -> None:
        self._load()[key] = self.new[key] = [cost.params, cost.macs, list(cost.out_hw)]

    def save_if_due(self) -> None:
        if self.new and time.monotonic() - self.saved_at >= self.SAVE_EVERY_S:
            self.save()

    def save(self) -> None:
        if not (self.new and self.writable):
            return

        def merge(data: Any) -> dict[str, Any]:
            data = data if isinstance(data, dict) else {}
            data.update(self.new)
            return data

        try:
            self.entries = update_json(self.path, merge, replace_damaged=True)
        except (OSError, ValueError) as exc:
            self.writable = False
            log.warning("could not save part counts to %s (%s); counting goes on in memory", self.path, exc)
        self.new.clear()
        self.saved_at = time.monotonic()


def _fingerprint() -> str:
    """What a part's count depends on besides its key: the torch version and the building code."""
    digest = hashlib.sha256(importlib.metadata.version("torch").encode())
    blocks_dir = Path(__file__).resolve().parent
    for source in sorted(blocks_dir.rglob("*.py")) + [Path(space.spec.__file__).resolve()]:
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


@functools.cache
def part_cost_file() -> _PartCostFile:
    """This process's view of the machine's part-count file (see the module docstring)."""
    store = _PartCostFile(user_cache_dir() / "part-costs" / f"{_fingerprint()}.json")
    atexit.register(store.save)
    return store


class _NotCounted(Exception):
    """A part is missing from the part-count file while ``_CACHED_ONLY`` is set."""


_CACHED_ONLY = contextvars.ContextVar("seesaw_cost_cached_only", default=False)


def _cached_part(kind: str, args: tuple[Any, ...], in_ch: int, hw: tuple[int, int]) -> PartCost:
    store = part_cost_file()
    key = json.dumps([kind, repr(args), in_ch, list(hw)])
    cost = store.get(key)
    if cost is None:
        if _CACHED_ONLY.get():
            raise _NotCounted(key)
        from blocks.counting import count_part  # torch: only for a part new to this machine (module docstring)

        cost = count_part(kind, args, in_ch, hw)
        store.put(key, cost)
    return cost


@functools.lru_cache(maxsize=1 << 16)
def _stem_cost(stem: StemSpec, hw: tuple[int, int]) -> PartCost:
    return _cached_part("stem", (stem,), 3, hw)


@functools.lru_cache(maxsize=1 << 16)
def _block_cost(block: BlockSpec, in_ch: int, out_ch: int, stride: int, hw: tuple[int, int]) -> PartCost:
    return _cached_part("block", (block, out_ch, stride), in_ch, hw)


@functools.lru_cache(maxsize=1 << 16)
def _attention_cost(attention: AttentionSpec, channels: int, hw: tuple[int, int]) -> PartCost:
    return _cached_part("attention", (attention,), channels, hw)


@functools.lru_cache(maxsize=1 << 16)
def _head_cost(head: HeadSpec, in_ch: int, num_classes: int, hw: tuple[int, int]) -> PartCost:
    return _cached_part("head", (head, num_classes), in_ch, hw)


@functools.lru_cache(maxsize=4096)
def count_cost(spec: ArchSpec, num_classes: int, input_size: int) -> Cost:
    """Params and MACs of the network ``spec`` builds, without allocating its weights.

    The sum of its parts' counts (see the module docstring); memoised per process (specs are
    frozen and hashable), and so are the parts.
    """
    spec.validate()
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    parts = [_stem_cost(spec.stem, (input_size, input_size))]
    in_ch = spec.stem.channels
    for stage in spec.stages:
        for block, stride in stage.blocks():
            parts.append(_block_cost(block, in_ch, stage.out_channels, stride, parts[-1].out_hw))
            in_ch = stage.out_channels
        if stage.post_attention is not None:
            parts.append(_attention_cost(stage.post_attention, in_ch, parts[-1].out_hw))
    parts.append(_head_cost(spec.head, in_ch, num_classes, parts[-1].out_hw))
    part_cost_file().save_if_due()
    return Cost(params=sum(p.params for p in parts), macs=sum(p.macs for p in parts))


def count_costs(networks: Iterable[tuple[ArchSpec, int, int]], *, processes: int | None = None) -> list[Cost]:
    """``count_cost(spec, num_classes, input_size)`` of each network; the networks with parts new to
    this machine are counted in ``processes`` forked processes at once (default: the usable cores,
    at most 4).

    For the commands that count many networks (``--describe``, ``--references``): a part costs a
    few ms of Python to build and run, and a first ``--describe`` has ~1,300 of them. The children
    are forked, so call it while this process runs one thread (the search's workers use
    ``count_cost``).
    """
    networks = list(networks)
    new = [n for n in dict.fromkeys(networks) if not _is_counted(*n)]
    processes = min(processes or _usable_cores(), 4, len(new))
    if processes > 1 and sys.platform.startswith("linux"):
        # fork: a child starts with this process's imports and memos, and only the specs are
        # pickled; the children import torch (the parent need not) and return their new parts.
        # Each child gets consecutive networks, not every n-th: callers list related networks
        # together, and one family's references share parts (per child, 113 and 117 of the
        # references' 210 parts, against 168 and 164 when interleaved).
        chunks = [new[i * len(new) // processes:(i + 1) * len(new) // processes] for i in range(processes)]
        try:
            with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
                store = part_cost_file()
                for entries in pool.map(_count_new_parts, chunks):
                    for key, (params, macs, out_hw) in entries.items():
                        store.put(key, PartCost(params, macs, tuple(out_hw)))
        except (BrokenProcessPool, OSError) as exc:  # a child killed (out of memory), or no fork: count here
            log.warning("the counting processes failed (%s); counting in this process instead", exc or type(exc).__name__)
    return [count_cost(*n) for n in networks]


def _is_counted(spec: ArchSpec, num_classes: int, input_size: int) -> bool:
    """Whether every part of the network is in the part-count file (or this process's memo)."""
    token = _CACHED_ONLY.set(True)
    try:
        count_cost(spec, num_classes, input_size)
        return True
    except _NotCounted:
        return False
    finally:
        _CACHED_ONLY.reset(token)


def _count_new_parts(networks: list[tuple[ArchSpec, int, int]]) -> dict[str, list[Any]]:
    """In a child of ``count_costs``: count the networks and return the parts this process added."""
    store = part_cost_file()
    store.new.clear()  # the parent's unsaved parts stay the parent's
    store.writable = False  # and the parent saves this child's parts: they are returned, not saved
    for network in networks:
        count_cost(*network)
    return dict(store.new)


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
