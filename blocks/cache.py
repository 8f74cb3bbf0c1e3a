"""This user's cache folder, and JSON files in it that several processes update.

``user_cache_dir()`` is ``$SEESAW_CACHE_DIR``, else ``$XDG_CACHE_HOME/seesaw-nas``, else
``~/.cache/seesaw-nas`` (read when called): decoded data sets, part counts, latency tables. Lives in ``blocks/``, the
lowest layer that writes files, so ``search/`` shares it (``search.files`` sits above ``blocks/``).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock

__all__ = ["read_json", "update_json", "user_cache_dir"]


def user_cache_dir() -> Path:
    """This user's cache folder for seesaw-nas (see the module docstring)."""
    if os.environ.get("SEESAW_CACHE_DIR"):
        return Path(os.environ["SEESAW_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "seesaw-nas"


def read_json(path: Path) -> Any:
    """The JSON in ``path``; ``None`` when the file is missing. Raises ``json.JSONDecodeError``."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None


def update_json(path: Path, update: Callable[[Any], Any], *, replace_damaged: bool = False) -> Any:
    """Replace the JSON in ``path`` by ``update(current)`` (``current`` is ``None`` when missing, or
    with ``replace_damaged`` when not valid JSON); returns what was written.

    Read, update and write happen under a ``filelock`` lock beside the file, so processes that
    update it at once each see the others' entries; the new file is written beside it and renamed
    into place, so a reader or a crash never sees half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        try:
            current = read_json(path)
        except ValueError:
            if not replace_damaged:
                raise
            current = None
        data = update(current)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return data
