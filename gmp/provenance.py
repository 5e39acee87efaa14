"""Where a result came from: the git revision of this checkout and the machine.

Every results file of the project (``gmp-uci``, ``gmp-train``, ``python -m gmp.experiments``,
``benchmarks/*.py``) records these next to its command and date.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

__all__ = ["git_revision", "revision_string", "cpu_model"]

_ROOT = Path(__file__).resolve().parents[1]  # the checkout holding this package


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=_ROOT, capture_output=True, text=True,
                              timeout=20, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def git_revision(ignore: str | Path | None = None) -> dict[str, str | bool | None]:
    """``{"revision": HEAD or None, "dirty": bool or None}`` of the checkout of ``gmp``.

    ``dirty`` says whether tracked files differ from HEAD; ``ignore`` (typically the results
    file being written, when it is tracked) does not count. Both are None outside a git
    checkout (e.g. an installed wheel).
    """
    rev = _git("rev-parse", "HEAD")
    spec = ["--", "."]
    if ignore is not None:
        try:
            spec.append(":(exclude)" + Path(ignore).resolve().relative_to(_ROOT).as_posix())
        except ValueError:  # outside the repository
            pass
    status = _git("status", "--porcelain", "--untracked-files=no", *spec)
    return {"revision": rev, "dirty": None if rev is None or status is None else bool(status)}


def revision_string(ignore: str | Path | None = None) -> str:
    """:func:`git_revision` as one string: ``"<sha>"``, ``"<sha>+dirty"`` or ``"unknown"``."""
    info = git_revision(ignore)
    if info["revision"] is None:
        return "unknown"
    return str(info["revision"]) + ("+dirty" if info["dirty"] else "")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
