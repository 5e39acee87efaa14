"""Training protocols of the ImageNet experiments, named after their source.

- ``"official"``: what the authors' ``imagenet32.py`` does (the script behind Table 2):
  Keras' ``ReduceLROnPlateau(monitor=val top-5, factor=0.1, patience=5, mode="max")``
  (``min_delta`` 1e-4, cooldown 0), ``EarlyStopping(monitor=val top-5, patience=10,
  restore_best_weights=True)`` (``min_delta`` 0), at most 500 epochs. The weights and the
  reported numbers are those of the epoch with the best validation top-5.
- ``"paper-text"``: what the paper's text says (App. C.2–C.3): 90 epochs, learning rate ×0.1
  after epochs 30, 60 and 80 (He et al. 2016). The reported numbers are the final epoch's.

:func:`make_schedule` builds either as a :class:`Schedule`: after each epoch,
``step(row)`` (the epoch's metrics) adjusts the learning rate for the next epoch and says
whether the epoch is the best so far; ``stopped`` says whether training ends early.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["DEFAULT_PROTOCOL", "MAX_EPOCHS", "PROTOCOLS", "OfficialSchedule",
           "PaperTextSchedule", "Schedule", "make_schedule", "schedule_class"]

#: The protocols, named after their source (the authors' script, the paper's text).
PROTOCOLS: tuple[str, ...] = ("official", "paper-text")
#: The default protocol of each task is the one that produced the published numbers. For
#: ImageNet32 that is the authors' script (their public code for Table 2). For ImageNet no
#: code exists, so it is the paper's text (He et al.'s schedule).
DEFAULT_PROTOCOL: dict[str, str] = {"imagenet32": "official", "imagenet": "paper-text"}
#: Default ``--epochs``: the script's cap (``model.fit(epochs=500)``) and the paper's 90.
MAX_EPOCHS: dict[str, int] = {"official": 500, "paper-text": 90}


class Schedule:
    """Learning-rate schedule and stopping rule of one protocol (checkpointable)."""

    #: the metric whose best epoch gives ``best.pt`` (and, for ``official``, the result).
    monitor: str = "val_top1"
    #: how the reported numbers are chosen, ``"best-epoch"`` or ``"final-epoch"``.
    reported: str = "final-epoch"
    stopped: bool = False

    def step(self, row: dict[str, Any]) -> bool:
        """After an epoch with metrics ``row``: set the next epoch's learning rate and return
        whether ``row[self.monitor]`` is the best so far."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


class PaperTextSchedule(Schedule):
    """×``gamma`` after each epoch in ``milestones``; the best epoch by validation top-1."""

    monitor, reported = "val_top1", "final-epoch"

    def __init__(self, optimizer: torch.optim.Optimizer, milestones: list[int],
                 gamma: float = 0.1) -> None:
        self.sched = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma)
        self.best = -math.inf
        self.stopped = False

    def step(self, row: dict[str, Any]) -> bool:
        self.sched.step()
        a = float(row[self.monitor])
        better = a > self.best
        if better:
            self.best = a
        return better

    def state_dict(self) -> dict[str, Any]:
        return {"sched": self.sched.state_dict(), "best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "sched" not in state:  # checkpoints of earlier versions: MultiStepLR's own state
            self.sched.load_state_dict(state)
            return
        self.sched.load_state_dict(state["sched"])
        self.best = float(state["best"])


class OfficialSchedule(Schedule):
    """The authors' Keras callbacks on validation top-5 (module docstring).

    ``ReduceLROnPlateau``: a value improves on the best by more than ``min_delta`` (absolute)
    or counts as a bad epoch; after ``patience`` bad epochs in a row the learning rate is
    multiplied by ``factor`` and the count restarts (torch's ``ReduceLROnPlateau`` with
    ``patience - 1``, ``threshold_mode="abs"``, ``eps=0``, as :mod:`gmp.experiments` does).
    ``EarlyStopping``: any increase of top-5 is an improvement (the epoch whose weights are
    kept); ``stop_patience`` epochs without one end training.
    """

    monitor, reported = "val_top5", "best-epoch"

    def __init__(self, optimizer: torch.optim.Optimizer, factor: float = 0.1,
                 patience: int = 5, stop_patience: int = 10, min_delta: float = 1e-4) -> None:
        if patience < 1 or stop_patience < 1:
            raise ValueError(f"patience and stop_patience must be >= 1, got {patience}, "
                             f"{stop_patience}")
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=factor, patience=patience - 1, threshold=min_delta,
            threshold_mode="abs", cooldown=0, min_lr=0.0, eps=0.0)
        self.stop_patience = stop_patience
        self.best, self.wait, self.stopped = -math.inf, 0, False

    def step(self, row: dict[str, Any]) -> bool:
        a = float(row[self.monitor])
        self.plateau.step(a)
        better = a > self.best  # Keras EarlyStopping, min_delta 0
        self.wait += 1
        if better:
            self.best, self.wait = a, 0
        if self.wait >= self.stop_patience:
            self.stopped = True
        return better

    def state_dict(self) -> dict[str, Any]:
        return {"plateau": self.plateau.state_dict(), "best": self.best, "wait": self.wait,
                "stopped": self.stopped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau.load_state_dict(state["plateau"])
        self.best, self.wait = float(state["best"]), int(state["wait"])
        self.stopped = bool(state["stopped"])


def make_schedule(protocol: str, optimizer: torch.optim.Optimizer, *,
                  milestones: list[int] | None = None, gamma: float = 0.1,
                  plateau_patience: int = 5, early_stop_patience: int = 10) -> Schedule:
    """The :class:`Schedule` of ``protocol`` (one of :data:`PROTOCOLS`) for ``optimizer``."""
    if schedule_class(protocol) is OfficialSchedule:
        return OfficialSchedule(optimizer, gamma, plateau_patience, early_stop_patience)
    return PaperTextSchedule(optimizer, list(milestones or [30, 60, 80]), gamma)


def schedule_class(protocol: str) -> type[Schedule]:
    """The :class:`Schedule` subclass of ``protocol``: its ``monitor`` and ``reported`` say
    which epoch the protocol's source reports."""
    classes = {"official": OfficialSchedule, "paper-text": PaperTextSchedule}
    if protocol not in classes:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    return classes[protocol]
