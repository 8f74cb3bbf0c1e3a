"""Where a result came from: the code's git commit and the versions of the packages that made it."""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["git_commit", "package_versions"]


def git_commit() -> str | None:
    """The checkout's commit, or None when not run from a git checkout (an installed package)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def package_versions() -> dict[str, str]:
    """Python and the versions of the packages that decide a result."""
    out = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "optuna", "ray", "plotly", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out
