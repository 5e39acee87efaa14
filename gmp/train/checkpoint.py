"""Checkpoint files and random-number-generator state.

Checkpoints are written with :func:`gmp.files.atomic_write`: a run killed while saving leaves
the previous checkpoint intact, never a truncated one. What a checkpoint holds is
:func:`gmp.train.engine.save_checkpoint`'s business.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..files import atomic_write

__all__ = ["FORMAT", "CheckpointError", "atomic_copy", "atomic_save", "get_rng_state", "load",
           "set_rng_state"]

FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or is not a ``gmp-train`` checkpoint."""


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)`` through a temporary file and ``os.replace``."""
    atomic_write(Path(path), lambda f: torch.save(obj, f))


def atomic_copy(src: str | Path, dst: str | Path) -> None:
    """Copy ``src`` to ``dst`` atomically."""
    def write(f):
        with open(src, "rb") as s:
            shutil.copyfileobj(s, f, length=1 << 24)
    atomic_write(Path(dst), write)


def load(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint onto the CPU (``weights_only``: no code runs on load)."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(f"cannot read checkpoint {str(path)!r} ({type(e).__name__}: "
                              f"{first}); it may be truncated or corrupt: restore it, or "
                              "start afresh in a new --out") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a gmp-train checkpoint (format "
                              f"{FORMAT}); start afresh in a new --out")
    return ckpt


def get_rng_state(device: torch.device) -> dict[str, Any]:
    """Python, NumPy, torch CPU (and current CUDA device) generator states, as tensors/ints."""
    np_state = np.random.get_state()
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                  int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(int(v) for v in internal.tolist()), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
