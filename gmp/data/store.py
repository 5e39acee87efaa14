"""Find, download and verify the small public data files the experiments use.

Resolution order for a file ``relpath`` (e.g. ``"banana/banana.csv"``):

1. ``$GMP_DATA_DIR/relpath`` if that variable is set and the file exists (read-only mirror);
2. ``<cache>/relpath`` where ``<cache>`` is ``$GMP_CACHE_DIR`` or ``~/.cache/gmp``;
3. download from the pinned URL into the cache (atomically: temporary file, then rename).

Every file is checked against its pinned SHA-256 before use. Downloads can be disabled with
``GMP_OFFLINE=1``; a missing file then raises :class:`DataNotFoundError` naming where to put it.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..files import atomic_write

__all__ = ["RemoteFile", "DataNotFoundError", "DataCorruptError", "cache_dir", "fetch"]


class DataNotFoundError(FileNotFoundError):
    """A data file is neither in ``GMP_DATA_DIR`` nor in the cache and cannot be downloaded."""


class DataCorruptError(ValueError):
    """A data file exists but its SHA-256 does not match the pinned value."""


@dataclass(frozen=True)
class RemoteFile:
    """A pinned public file: where it lives under the data root, its URL and its SHA-256."""

    relpath: str
    url: str
    sha256: str


def cache_dir() -> Path:
    """The download cache: ``$GMP_CACHE_DIR`` or ``~/.cache/gmp``."""
    return Path(os.environ.get("GMP_CACHE_DIR", Path.home() / ".cache" / "gmp")).expanduser()


def sha256sum(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verify(path: Path, rf: RemoteFile) -> Path:
    got = sha256sum(path)
    if got != rf.sha256:
        raise DataCorruptError(
            f"{path} is corrupt: SHA-256 {got} does not match the pinned {rf.sha256}. "
            f"Delete it and download it again from {rf.url}")
    return path


def _download(rf: RemoteFile, dest: Path, timeout: float = 60.0) -> None:
    """Download ``rf`` to ``dest`` with :func:`gmp.files.atomic_write`, checking the SHA-256
    while streaming: a failed or corrupt download never replaces or creates ``dest``."""
    def write(out: IO[bytes]) -> None:
        h = hashlib.sha256()
        with urllib.request.urlopen(rf.url, timeout=timeout) as resp:
            for block in iter(lambda: resp.read(1 << 20), b""):
                h.update(block)
                out.write(block)
        if h.hexdigest() != rf.sha256:
            raise DataCorruptError(f"the download of {rf.url} is corrupt: SHA-256 "
                                   f"{h.hexdigest()} does not match the pinned {rf.sha256}")

    atomic_write(dest, write)


def fetch(rf: RemoteFile, *, download: bool | None = None) -> Path:
    """Return a verified local path for ``rf``, downloading it into the cache if needed.

    Args:
        rf: the pinned file.
        download: allow a download; default: unless ``GMP_OFFLINE`` is set to a true value.

    Raises:
        DataNotFoundError: not found locally and no download possible (message says where
            to put the file).
        DataCorruptError: a local copy fails its checksum.
    """
    mirror = os.environ.get("GMP_DATA_DIR")
    if mirror:
        p = Path(mirror).expanduser() / rf.relpath
        if p.is_file():
            return _verify(p, rf)
    cached = cache_dir() / rf.relpath
    if cached.is_file():
        return _verify(cached, rf)
    if download is None:
        download = os.environ.get("GMP_OFFLINE", "").lower() not in ("1", "true", "yes")
    where = (f"  - {Path(mirror).expanduser() / rf.relpath}  (GMP_DATA_DIR)\n" if mirror else "")
    hint = (f"Data file {rf.relpath!r} not found. Put a copy of\n  {rf.url}\n"
            f"(SHA-256 {rf.sha256}) at one of:\n{where}  - {cached}  (cache; set GMP_CACHE_DIR "
            "to move it)\nor set GMP_DATA_DIR to a folder that holds it.")
    if not download:
        raise DataNotFoundError(hint + "\nDownloads are disabled (GMP_OFFLINE is set).")
    try:
        _download(rf, cached)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise DataNotFoundError(f"{hint}\nThe download failed: {e}") from e
    return cached
