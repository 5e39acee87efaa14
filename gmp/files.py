"""Writing results and checkpoints so that nothing is lost: atomic files and strict JSON.

A file is written to a temporary file in the same folder, flushed to disk, then renamed over
the old one with :func:`os.replace` (atomic on POSIX and Windows): a process killed while
writing leaves the previous version intact, never a truncated one.
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

__all__ = ["atomic_write", "atomic_write_text", "jsonable", "write_json"]


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
