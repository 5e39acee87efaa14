"""Writing results and checkpoints so that nothing is lost: atomic files and strict JSON.

A file is written to a temporary file in the same folder, flushed to disk, then renamed over
the old one with :func:`os.replace` (atomic on POSIX and Windows): a process killed while
writing leaves the previous version intact, never a truncated one.

Commands check their output before any work (:func:`check_output_file`) and hold an
:class:`OutputLock` on it while they write, so that a bad path fails at once and two runs
never write one output; both raise :class:`OutputError`, which a command line prints as one
line (``error: ...``, exit status 2).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["OutputError", "OutputLock", "ResultsTarget", "atomic_write", "atomic_write_text",
           "check_output_file", "jsonable", "lock_file_for", "partial_path",
           "remove_stale_temporaries", "results_target", "write_json"]


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Create or replace ``path`` atomically with what ``write(f)`` writes to a binary file.

    The new file gets the usual permissions (``0o666`` less the umask), not ``mkstemp``'s
    ``0o600``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write` of ``text`` (UTF-8)."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def jsonable(x: Any) -> Any:
    """``x`` with NumPy scalars/arrays as Python values and non-finite floats as ``None``, so
    that strict JSON (``allow_nan=False``) can hold it; dict keys become strings."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def write_json(path: str | Path, obj: Any, indent: int | None = 1) -> None:
    """Write ``jsonable(obj)`` as strict JSON (and a final newline) to ``path``, atomically."""
    atomic_write_text(path, json.dumps(jsonable(obj), indent=indent, allow_nan=False) + "\n")


# ---------------------------------------------------------------- output paths, checked first

class OutputError(Exception):
    """An output path that a command cannot or must not write (checked before any work):
    its folder is not writable, it is a folder, another run holds it, or it holds a file of
    another kind. Command-line tools print it as one line and exit with status 2."""


def check_output_file(path: str | Path) -> Path:
    """``path`` as a :class:`~pathlib.Path` after checking that a results file can be
    written there: not a folder, its folder exists (or can be created) and is writable.

    Raises :class:`OutputError` naming the problem. Nothing is written but the folder.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name such as {path / 'out.json'}")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the folder {folder} for {path.name}: "
                          f"{e.strerror or e}") from None
    if not folder.is_dir():
        raise OutputError(f"{folder} is not a folder, so {path.name} cannot be written in it")
    try:                                  # a real write: permissions, read-only mounts
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"the folder {folder} is not writable: {e.strerror or e}") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{path} is not writable")
    return path


class OutputLock:
    """An exclusive lock on an output (a results file or a run folder), held while a run
    writes it, so that two runs never write the same output.

    The lock is the file ``lock_path`` (``<file>.lock`` beside a results file, ``.lock``
    inside a run folder) locked with ``fcntl.flock``: the operating system releases it when
    the process dies, so a killed run never leaves a stale lock behind. The file itself is
    removed on ``release()``. Use as a context manager::

        with OutputLock(path.with_name(path.name + ".lock"), what=str(path)):
            ...
    """

    def __init__(self, lock_path: str | Path, *, what: str | None = None) -> None:
        self.lock_path = Path(lock_path)
        self.what = what or str(self.lock_path)
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        try:
            import fcntl
        except ImportError:               # pragma: no cover - not POSIX: no locking
            return self
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise OutputError(f"{self.what} is being written by another run (pid "
                                  f"{holder}, lock {self.lock_path}); wait for it or use "
                                  "another output") from None
            # The holder before us may have removed the file after we opened it: then we
            # locked a file nobody else can see, so start again on the current one.
            try:
                same = os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            os.close(fd)                  # closing releases the flock: no lock held
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        self.lock_path.unlink(missing_ok=True)
        os.close(self._fd)                # closing releases the flock
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_file_for(path: str | Path) -> Path:
    """The lock file of the results file ``path``: ``<name>.lock`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove what an :func:`atomic_write` killed mid-write left in ``folder`` (hidden
    ``.<name>.<random>.tmp`` files); returns the paths removed. Call it only while holding
    the folder's :class:`OutputLock`, so that no live writer's file is removed."""
    removed = []
    for p in Path(folder).glob(".*.tmp"):
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


class ResultsTarget:
    """Where a command writes one results file, decided and checked before any work.

    ``path`` is the file asked for; ``work`` is where the run writes while it works: ``path``
    itself, or, when it replaces an existing file, ``<path>.partial``, which is renamed over
    ``path`` by :meth:`finish` once the new file is complete (so the old one is never lost to
    an interrupted run). ``resume`` says whether ``work`` already holds a run to continue.
    Holds the :class:`OutputLock` of ``path`` until ``close()`` (a context manager).
    """

    def __init__(self, path: Path, work: Path, resume: bool, lock: OutputLock) -> None:
        self.path, self.work, self.resume, self.lock = path, work, resume, lock

    @property
    def replacing(self) -> bool:
        return self.work != self.path

    def finish(self) -> None:
        """Put the finished results in place: rename ``work`` over ``path`` when replacing."""
        if self.replacing and self.work.exists():
            os.replace(self.work, self.path)

    def close(self) -> None:
        self.lock.release()

    def __enter__(self) -> ResultsTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def partial_path(path: str | Path) -> Path:
    """Where a run that replaces ``path`` writes until it is complete: ``<path>.partial``."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


def results_target(path: str | Path, *, recognise: Callable[[Path], str | None],
                   resume: bool = False, replace: bool = False,
                   resumable: bool = True) -> ResultsTarget:
    """Check the results file ``path`` before any work and lock it; see :class:`ResultsTarget`.

    - ``path`` must be writable (:func:`check_output_file`) and not held by another run
      (:class:`OutputLock`);
    - an existing file is never written unless asked: ``resume`` continues it (a resumable
      command), ``replace`` writes a new one in its place; otherwise :class:`OutputError`;
    - a file that is continued or replaced must be of the command's kind: ``recognise(p)``
      returns ``None`` for a file the command wrote, else a sentence saying why it is not;
    - with ``replace`` and ``resumable``, an unfinished ``<path>.partial`` of an earlier
      replacement is continued with ``resume`` and refused without it.
    """
    path = check_output_file(path)
    if resume and not resumable:
        raise OutputError("this command writes its results file at the end: nothing to resume")
    lock = OutputLock(lock_file_for(path), what=str(path)).acquire()
    try:
        def known(p: Path) -> None:
            why = recognise(p)
            if why is not None:
                raise OutputError(f"{why}; it is left as it is: choose another output")

        if path.exists():
            known(path)
        work = partial_path(path) if (replace and resumable) else path
        if replace:
            if work != path and work.exists():
                if not resume:
                    raise OutputError(
                        f"{work} holds an unfinished replacement of {path.name}: pass "
                        "--resume to continue it, or remove it to start again")
                known(work)
                return ResultsTarget(path, work, True, lock)
            return ResultsTarget(path, work, False, lock)
        if path.exists():
            if not resume:
                hint = "--resume to continue it, " if resumable else ""
                raise OutputError(
                    f"{path} exists: pass {hint}--replace to write a new one in its place "
                    "(the old file is kept until the new one is complete), or choose "
                    "another output")
            return ResultsTarget(path, path, True, lock)
        return ResultsTarget(path, path, False, lock)
    except BaseException:
        lock.release()
        raise
