"""Training configuration of the ImageNet experiments, with the sources' defaults.

Every default is taken from a named source (Chen & Ge 2024, App. C.2–C.3, and for
ImageNet32 the authors' ``imagenet32.py`` at commit 0c48483, which the paper's text is
silent or different on):

- ``preset`` (the network, :data:`gmp.models.IMAGENET_PRESETS`): ``"authors"``;
- ``protocol`` (:mod:`gmp.train.protocol`): ImageNet32 ``"official"`` (the authors' script:
  LR ×0.1 when validation top-5 stalls for 5 epochs, stop after 10, best top-5 epoch's
  weights, at most 500 epochs); ImageNet ``"paper-text"`` (90 epochs, ×0.1 after 30, 60,
  80; no code exists);
- SGD, momentum 0.9; initial LR: ImageNet32 0.1 for GmP variants, 0.01 for the others
  (paper and script); ImageNet 0.1 for every variant (paper); batch 256 (ImageNet32 also
  512 and 1024 in Table 2);
- **no weight decay**: the authors' script has none (``SGD(init_lr, momentum=0.9)``), and
  the paper's App. E leaves GmP with weight decay to future work. For ImageNet, where no
  code exists, the same reading holds: the paper's "as in [22]" lists momentum and the LR
  steps, not He et al.'s decay, just as its "as in [8]" for ImageNet32 did not bring
  Chrabaszcz et al.'s decay into the script. ``--weight-decay`` applies it, when asked for,
  to the parameters that carry a layer's scale — ``weight`` of convs and linears, WN's ``g``
  and ``v``, GmP's radius ``r`` — never to biases, norm-layer parameters, or GmP's angles
  ``θ`` and offsets ``λ``;
- float32 (the script sets ``floatx`` to float32): ``amp="off"`` and no TF32; bf16 autocast
  (``amp="bf16"``) and TF32 (``tf32``) are options.

``batch_size`` is the **global** batch: under ``torchrun`` each of ``W`` processes takes
``batch_size / W`` images per step.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..models import ARCHS, check_preset
from ..params import check_param, names
from .protocol import DEFAULT_PROTOCOL, MAX_EPOCHS, PROTOCOLS

__all__ = ["TASKS", "ConfigError", "TrainConfig", "default_lr", "default_weight_decay",
           "resume_mismatches"]

TASKS: tuple[str, ...] = ("imagenet32", "imagenet")
DEFAULT_ARCH = {"imagenet32": "vgg6", "imagenet": "resnet18"}


class ConfigError(ValueError):
    """An invalid or inconsistent training configuration."""


def default_lr(task: str, param: str) -> float:
    """The paper's cross-validated initial learning rate."""
    if task == "imagenet32":
        return 0.1 if param.startswith("gmp") else 0.01
    return 0.1


def default_weight_decay(task: str) -> float:
    """0 for both tasks: the authors' script uses none (module docstring)."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; expected one of {TASKS}")
    return 0.0


@dataclass
class TrainConfig:
    """Everything that defines a run. ``None`` fields are resolved by :meth:`resolved`."""

    task: str
    data: str
    out: str
    param: str = "gmp_imn"
    arch: str | None = None
    preset: str = "authors"
    protocol: str | None = None  # None: DEFAULT_PROTOCOL[task]
    epochs: int | None = None  # None: MAX_EPOCHS[protocol]
    batch_size: int = 256
    lr: float | None = None
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float | None = None
    milestones: list[int] | None = None  # paper-text only; None: [30, 60, 80]
    gamma: float = 0.1
    plateau_patience: int = 5  # official only
    early_stop_patience: int = 10  # official only
    seed: int = 0
    width: float = 1.0
    num_classes: int = 1000
    # execution
    device: str = "auto"
    amp: str = "off"  # "off" (float32, as the authors), "bf16", "auto" (bf16 on CUDA)
    tf32: bool = False  # TF32 matmuls and convolutions on CUDA
    channels_last: str = "auto"  # "auto" (on for CUDA), "on", "off"
    compile: bool = False
    workers: int = 8
    data_on_device: bool = True  # ImageNet32: keep the uint8 data set on the GPU
    # smoke runs
    max_steps_per_epoch: int | None = None
    limit_train: int | None = None  # ImageNet32: load only the first N training images
    limit_val: int | None = None
    # ImageNet augmentation
    crop: int = 224
    resize_min: int = 256
    resize_max: int = 480
    val_resize: int = 256
    color_jitter: float = 0.0  # the paper cites Krizhevsky et al.'s PCA lighting only
    lighting: float = 0.1
    # logging and state
    log_every: int = 50
    tensorboard: bool = True
    progress: bool = True
    resume: bool = False
    results_dir: str | None = None

    def resolved(self) -> TrainConfig:
        """A validated copy with every default filled in. Raises :class:`ConfigError`."""
        c = dataclasses.replace(self, milestones=None if self.milestones is None
                                else list(self.milestones))
        if c.task not in TASKS:
            raise ConfigError(f"unknown task {c.task!r}; expected one of {TASKS}")
        try:
            c.preset = check_preset(c.preset)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        c.protocol = c.protocol or DEFAULT_PROTOCOL[c.task]
        if c.protocol not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {c.protocol!r}; expected one of {PROTOCOLS}")
        if c.epochs is None:
            c.epochs = MAX_EPOCHS[c.protocol]
        if c.protocol == "paper-text":
            c.milestones = [30, 60, 80] if c.milestones is None else c.milestones
        elif c.milestones is not None:
            raise ConfigError("milestones belong to --protocol paper-text; the official "
                              "protocol lowers the LR on a plateau of validation top-5")
        for name in ("plateau_patience", "early_stop_patience"):
            if getattr(c, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(c, name)}")
        c.arch = (c.arch or DEFAULT_ARCH[c.task]).lower()
        if c.arch not in ARCHS:
            raise ConfigError(f"unknown architecture {c.arch!r}; expected one of {ARCHS}")
        try:
            c.param = check_param(c.param, names())
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if c.lr is None:
            c.lr = default_lr(c.task, c.param)
        if c.weight_decay is None:
            c.weight_decay = default_weight_decay(c.task)
        for name in ("epochs", "batch_size", "num_classes", "log_every", "crop", "resize_min",
                     "val_resize"):
            if getattr(c, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(c, name)}")
        for name in ("max_steps_per_epoch", "limit_train", "limit_val"):
            v = getattr(c, name)
            if v is not None and v < 1:
                raise ConfigError(f"{name} must be >= 1 when given, got {v}")
        if not c.lr > 0:
            raise ConfigError(f"lr must be > 0, got {c.lr}")
        if c.weight_decay < 0 or not 0 <= c.momentum < 1 or not 0 < c.gamma <= 1:
            raise ConfigError("need weight_decay >= 0, 0 <= momentum < 1 and 0 < gamma <= 1; "
                              f"got {c.weight_decay}, {c.momentum}, {c.gamma}")
        if c.milestones is not None and (sorted(c.milestones) != c.milestones
                                         or any(m < 1 for m in c.milestones)):
            raise ConfigError(f"milestones must be increasing positive epochs, got {c.milestones}")
        if not c.width > 0:
            raise ConfigError(f"width must be > 0, got {c.width}")
        if c.amp not in ("auto", "bf16", "off"):
            raise ConfigError(f"amp must be 'auto', 'bf16' or 'off', got {c.amp!r}")
        if c.channels_last not in ("auto", "on", "off"):
            raise ConfigError(f"channels_last must be 'auto', 'on' or 'off', got "
                              f"{c.channels_last!r}")
        if c.resize_max < c.resize_min or c.crop > c.resize_min or c.crop > c.val_resize:
            raise ConfigError("need crop <= resize_min <= resize_max and crop <= val_resize; got "
                              f"crop={c.crop}, resize=[{c.resize_min}, {c.resize_max}], "
                              f"val_resize={c.val_resize}")
        if c.workers < 0:
            raise ConfigError(f"workers must be >= 0, got {c.workers}")
        return c

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown configuration keys {unknown}")
        return cls(**d)


# Fields that change the mathematics of a run: a resumed run must agree on all of them.
# (epochs may grow, paths may move, and execution details may change between restarts.)
_RESUME_KEYS = ("task", "arch", "param", "preset", "protocol", "batch_size", "lr", "momentum",
                "nesterov", "weight_decay", "milestones", "gamma", "plateau_patience",
                "early_stop_patience", "seed", "width", "num_classes",
                "max_steps_per_epoch", "limit_train", "crop", "resize_min", "resize_max",
                "color_jitter", "lighting")


def resume_mismatches(saved: dict[str, Any], new: TrainConfig) -> list[str]:
    """``"key: saved -> new"`` for every math-relevant setting that differs."""
    out = []
    for k in _RESUME_KEYS:
        a, b = saved.get(k), getattr(new, k)
        if a != b:
            out.append(f"{k}: {a!r} -> {b!r}")
    return out
