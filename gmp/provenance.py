"""Where a result came from: command, git revision, date, machine and software.

Every results file of the project (``gmp-uci``, ``gmp-train``, ``python -m gmp.experiments``,
``benchmarks/*.py``) carries one :func:`record`, written with the file through
:func:`gmp.files.write_json`. The schema, stated once here::

    {"command": str,                  # the command line, shell-quoted
     "git_revision": str | None,      # HEAD of this checkout (None outside git)
     "git_dirty": bool | None,        # tracked files differ from HEAD
     "date_utc": str,                 # ISO 8601, e.g. "2026-12-03T02:30:00+00:00"
     "hardware": {"cpu": str, "logical_cpus": int, "torch_threads": int,
                  "cuda_devices": [str, ...], "load_avg": [float, float, float] | None},
     "software": {"python": str, "torch": str, "cuda": str | None, "numpy": str,
                  "platform": str},
     ...}                             # ``extra`` keys of the caller

:func:`normalize` reads the older schemas of committed files (``git`` as a dict or as a
``"<sha>+dirty"`` string, ``date`` or ``started`` for the date) into this one.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["record", "normalize", "describe", "git_revision", "revision_string", "cpu_model",
           "KEYS"]

#: The keys every :func:`record` has (the caller's ``extra`` keys come on top).
KEYS = ("command", "git_revision", "git_dirty", "date_utc", "hardware", "software")

_ROOT = Path(__file__).resolve().parents[1]  # the checkout holding this package


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=_ROOT, capture_output=True, text=True,
                              timeout=20, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


#: Folders of results files, which never make a checkout "dirty" (see :func:`git_revision`).
RESULTS_DIRS = ("results", "benchmarks/results")


def git_revision(ignore: str | Path | None = None) -> dict[str, str | bool | None]:
    """``{"revision": HEAD or None, "dirty": bool or None}`` of the checkout of ``gmp``.

    ``dirty`` says whether tracked files differ from HEAD. Results files (``results/``,
    ``benchmarks/results/``) do not count: they are what commands write, not what they run,
    so a command that regenerates several committed files in turn (``make small-results``)
    records the code as clean for each. ``ignore`` (a results file written elsewhere) does not
    count either. Both are None outside a git checkout (e.g. an installed wheel).
    """
    rev = _git("rev-parse", "HEAD")
    spec = ["--", ".", *(":(exclude)" + d for d in RESULTS_DIRS)]
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


def _command(argv: Sequence[str] | str | None) -> str:
    if isinstance(argv, str):
        return argv
    if argv is None:
        argv = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else []
    return shlex.join([str(a) for a in argv])


def _cuda_devices() -> list[str]:
    import torch

    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def record(argv: Sequence[str] | str | None = None, *, ignore: str | Path | None = None,
           threads: int | None = None, extra: Mapping[str, Any] | None = None
           ) -> dict[str, Any]:
    """The provenance record of this run (schema in the module docstring).

    Args:
        argv: the command line, program name first (``["gmp-uci", "--datasets", "all"]``),
            or one string taken as is; default ``sys.argv`` with the program's base name.
        ignore: a results file that does not make the checkout dirty (see
            :func:`git_revision`).
        threads: the torch CPU thread count to record; default ``torch.get_num_threads()``.
        extra: more top-level keys (e.g. ``{"parameters": 1234}``); they may not replace a
            schema key.
    """
    import numpy as np
    import torch

    extra = dict(extra or {})
    clash = sorted(set(extra) & set(KEYS))
    if clash:
        raise ValueError(f"extra may not replace the provenance keys {clash}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    git = git_revision(ignore)
    try:
        load: list[float] | None = [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):  # not on every platform
        load = None
    return {
        "command": _command(argv),
        "git_revision": git["revision"],
        "git_dirty": git["dirty"],
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hardware": {"cpu": cpu_model(), "logical_cpus": os.cpu_count(),
                     "torch_threads": threads or torch.get_num_threads(),
                     "cuda_devices": _cuda_devices(), "load_avg": load},
        "software": {"python": platform.python_version(), "torch": torch.__version__,
                     "cuda": torch.version.cuda, "numpy": np.__version__,
                     "platform": platform.platform()},
        **extra,
    }


def normalize(rec: Mapping[str, Any]) -> dict[str, Any]:
    """``rec`` in the schema of :func:`record`, whichever schema it was written with.

    Older files recorded ``"git": {"revision", "dirty"}`` or ``"git_revision": "<sha>+dirty"``,
    the date as ``"date"`` or ``"started"``, the CPU count as ``"cpu_count"`` and the
    load average as ``"load_avg_at_start"``. Keys the schema lacks are kept; missing
    values become None. Raises ``TypeError`` if ``rec`` is not a mapping.
    """
    if not isinstance(rec, Mapping):
        raise TypeError(f"a provenance record is a mapping, got {type(rec).__name__}")
    out = dict(rec)
    git = out.pop("git", None)
    rev, dirty = out.get("git_revision"), out.get("git_dirty")
    if isinstance(git, Mapping):
        rev, dirty = git.get("revision"), git.get("dirty")
    if isinstance(rev, str):
        if rev == "unknown":
            rev = None
        elif rev.endswith("+dirty"):
            rev, dirty = rev[: -len("+dirty")], True
    out["git_revision"], out["git_dirty"] = rev, dirty
    date = out.pop("date", None) or out.pop("started", None)
    out["date_utc"] = out.get("date_utc") or date
    out.setdefault("command", None)
    hw = dict(out.get("hardware") or {})
    sw = dict(out.get("software") or {})
    if "cpu_count" in hw:
        hw.setdefault("logical_cpus", hw.pop("cpu_count"))
    if "load_avg_at_start" in hw:
        hw.setdefault("load_avg", hw.pop("load_avg_at_start"))
    if "cpu" not in hw and ("processor" in hw or "machine" in hw):
        hw["cpu"] = hw.pop("processor", None) or hw.get("machine")
    for key in ("python", "torch"):  # older records kept the versions with the hardware
        if key in hw:
            sw.setdefault(key, hw.pop(key))
    out["hardware"], out["software"] = hw, sw
    return out


def describe(rec: Mapping[str, Any]) -> str:
    """One Markdown line saying how a results file was made: command, revision, date,
    hardware and (when recorded) the wall time. Accepts any schema :func:`normalize` reads."""
    c = normalize(rec)
    hw, sw = c["hardware"], c["software"]
    rev = f"`{(c['git_revision'] or 'unknown')[:10]}`" + (
        " with uncommitted changes" if c["git_dirty"] else "")
    wall = c.get("wall_s")
    threads = hw.get("torch_threads")
    return (f"`{c['command']}` at revision {rev} on {c['date_utc']}, {hw.get('cpu')}"
            + (f" ({threads} torch thread(s))" if threads else "")
            + (f", torch {sw['torch']}" if sw.get("torch") else "")
            + (f", {wall / 60:.1f} min" if wall else ""))
