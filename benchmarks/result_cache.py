"""A JSON file of results keyed by canonical key, outside the repository, so re-runs are cheap.

    cache = ResultCache.for_settings("fidelity", {"dataset": ..., "config": ...})
    acc = cache.get(key) or cache.put(key, train(...))

The file name is a hash of the settings that determine a result (data, recipe, seed), so a result
is only ever reused under exactly the settings that produced it. Writes are atomic (temporary
file + rename): a benchmark killed half-way keeps every finished result; benchmarks running at
the same time on one cache merge their results instead of overwriting each other's.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

DEFAULT_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "seesaw-nas" / "benchmarks"


def settings_hash(settings: Any) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


class ResultCache:
    def __init__(self, path: Path, settings: Any = None) -> None:
        self.path = Path(path)
        self.settings = settings
        self.data: dict[str, Any] = {}
        if self.path.exists():
            self.data = json.loads(self.path.read_text()).get("results", {})

    @classmethod
    def for_settings(cls, kind: str, settings: Any, cache_dir: str | os.PathLike | None = None) -> "ResultCache":
        directory = Path(cache_dir) if cache_dir else DEFAULT_DIR
        return cls(directory / f"{kind}-{settings_hash(settings)}.json", settings)

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def __len__(self) -> int:
        return len(self.data)

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def reload(self) -> None:
        """Take in what other processes saved since this one last read or wrote the file."""
        if self.path.exists():
            try:
                self.data = {**json.loads(self.path.read_text()).get("results", {}), **self.data}
            except ValueError:
                pass  # an unreadable file adds nothing

    def claim(self, key: str, *, wait: bool) -> Any:
        """A lock on ``key`` while this process computes it, so another process sharing the cache does
        not compute it too (the OS frees it if the process dies). Use as a context manager; without
        ``wait`` it raises ``filelock.Timeout`` when another process holds it."""
        from search.files import file_lock

        return file_lock(self.path.with_name(f".{self.path.stem}-{settings_hash(key)}.claim"), timeout=-1 if wait else 0)

    def put(self, key: str, value: Any) -> Any:
        self.data[key] = value
        self.save()
        return value

    def save(self) -> None:
        """Write atomically, merged under a lock with what other processes saved meanwhile (two
        benchmarks sharing a cache would otherwise overwrite each other's results)."""
        from search.files import file_lock, write_atomic

        with file_lock(self.path.with_name(f".{self.path.name}.lock")):
            self.reload()  # a file we cannot read is replaced by ours
            write_atomic(self.path, json.dumps({"settings": self.settings, "results": self.data}, default=str))
