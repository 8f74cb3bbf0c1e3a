"""Files that several processes or a crash may touch: atomic writes and cross-process locks.

Every artifact of a run (trials.csv, run.json, best_block.yaml, checkpoints, caches) is written
beside its final name and renamed into place, so a crash never leaves half a file; locks are
``filelock`` locks on a file next to what they guard.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from filelock import FileLock

__all__ = ["atomic_path", "file_lock", "write_atomic"]


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    Use it for writers that want a file name (``torch.save``); on an exception the temporary file
    is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates 0600; an artifact gets the usual mode of a new file (umask applies)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write ``content`` (text or bytes) to ``path`` via a temporary file and a rename."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(content) if isinstance(content, bytes) else tmp.write_text(content)


def file_lock(path: Path, timeout: float = -1) -> FileLock:
    """An exclusive lock across processes on this host (``filelock``), on ``path`` (created if
    missing). Use it as a context manager; ``timeout`` in seconds, -1 waits for ever."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path), timeout=timeout)
