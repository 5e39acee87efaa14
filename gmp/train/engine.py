"""The training loop of ``gmp-train``: one process, or DDP under ``torchrun``.

Laid out as torchvision's reference classification trainer: :func:`train_one_epoch`,
:func:`evaluate`, :func:`save_checkpoint` / :func:`load_checkpoint`, and :func:`train`, which
builds the data, model, optimizer and schedule and runs the epochs.

What one run writes into its folder ``--out`` (rank 0 only):

- ``config.json``   the resolved configuration (every default filled in);
- ``checkpoint.pt`` the state after the last completed epoch (model, optimizer, schedule,
  epoch, best epoch, the generator states of every rank), rewritten atomically;
- ``best.pt``       the checkpoint of the best epoch by the protocol's monitor (validation
  top-5 for ``official``: the weights the authors' script keeps; top-1 for ``paper-text``);
- ``.lock``         held while a run writes the folder (a second run there fails at once);
- ``metrics.csv``   one row per epoch: learning rate, loss, top-1, top-5 (train and val),
  images/s; ``tb/`` the same (and per-step training loss) for TensorBoard;
- ``summary.json``  command, git revision, date, hardware, final and best metrics and the
  ``reported`` numbers as the protocol's source reports them (``official``: the best top-5
  epoch's top-1 and top-5; ``paper-text``: the final epoch's); also
  copied to ``--results-dir`` when given (this is what the book's chapters read). A run
  whose loss became non-finite stops with ``diverged`` recorded here (never ``finished``).

After each epoch the files are written in the order ``checkpoint.pt``, ``best.pt``,
``summary.json``, so a run killed in between is completed by ``--resume``: the checkpoint
records the best epoch, and a resumed run rewrites a missing or stale ``best.pt`` before
anything else and the summary after its next epoch (at once when no epoch is left). On
start, temporaries left by a run killed mid-write are removed (under the folder's lock).

Resuming (``--resume``) restarts after the last completed epoch. The data order and the
augmentation of an epoch are functions of ``(seed, epoch)`` only, and the generator states
are restored, so on CPU a resumed run reproduces an uninterrupted one bit for bit (on GPUs,
up to the non-determinism of cuDNN kernels).
"""

from __future__ import annotations

import csv
import datetime as _dt
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..files import (
    OutputError,
    OutputLock,
    atomic_write_text,
    check_output_file,
    remove_stale_temporaries,
    write_json,
)
from ..models import build_model, count_parameters
from ..provenance import record
from . import checkpoint as ckpt_io
from .config import ConfigError, TrainConfig, resume_mismatches
from .distributed import (
    DistContext,
    all_reduce_sum,
    broadcast_buffers,
    broadcast_message,
    max_param_difference,
    setup,
    teardown,
)
from .protocol import Schedule, make_schedule, schedule_class

__all__ = ["TrainResult", "accuracy_counts", "decay_groups", "evaluate", "load_checkpoint",
           "save_checkpoint", "train", "train_one_epoch"]

CSV_FIELDS = ("epoch", "lr", "train_loss", "train_top1", "train_top5", "train_images",
              "val_loss", "val_top1", "val_top5", "val_images", "images_per_s",
              "epoch_time_s", "gpu_mem_gib", "max_rank_param_diff")


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained (unwrapped) model and the per-epoch rows."""

    model: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)
    best_top1: float = float("nan")
    out: Path | None = None


@dataclass
class _Progress:
    """Where a run stands after ``epoch`` completed epochs (saved in every checkpoint)."""

    epoch: int = 0
    global_step: int = 0          # optimizer steps so far
    best_top1: float = -1.0       # best validation top-1 so far
    best_epoch: int = 0           # best epoch (1-based) by the protocol's monitor; 0: none
    stopped: bool = False         # the protocol ended training early
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per epoch


# --------------------------------------------------------------------------------------------
# small pieces
# --------------------------------------------------------------------------------------------

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
_NO_DECAY_NAMES = ("bias", "theta", "lam")


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """SGD parameter groups: decay on scale-carrying parameters only (see config docstring).

    Decayed: ``weight`` of convs/linears, WN's ``original0`` (g) and ``original1`` (v), GmP's
    ``r``. Not decayed: biases, GmP ``theta``/``lam``, and every parameter of a norm layer.
    """
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if isinstance(module, _NORM_TYPES) or name in _NO_DECAY_NAMES:
                no_decay.append(p)
            else:
                decay.append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def accuracy_counts(logits: Tensor, target: Tensor, k: int = 5) -> tuple[Tensor, Tensor]:
    """Number of top-1 and top-``k`` hits in a batch (``k`` capped at the class count)."""
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hits = top == target.unsqueeze(1)
    return hits[:, 0].sum(), hits.any(dim=1).sum()


def _device_info(ctx: DistContext) -> dict[str, Any]:
    """Where the run trains (the ``device`` entry of ``summary.json``'s provenance)."""
    info: dict[str, Any] = {"type": ctx.device.type, "processes": ctx.world_size}
    if ctx.device.type == "cuda":
        props = torch.cuda.get_device_properties(ctx.device)
        info.update(name=props.name, memory_gib=round(props.total_memory / 2**30, 1))
    return info


def _log(ctx: DistContext, msg: str) -> None:
    if ctx.is_main:
        print(msg, flush=True)


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------

class _Data:
    """Uniform view of the two data pipelines: ``set_epoch``, ``train_batches``,
    ``val_batches`` (each yields ``(x, y)`` on the training device), step counts."""

    n_train_steps: int
    n_val_batches: int
    val_size: int
    num_classes: int

    def set_epoch(self, epoch: int) -> None: ...

    def train_batches(self) -> Iterator[tuple[Tensor, Tensor]]: ...

    def val_batches(self) -> Iterator[tuple[Tensor, Tensor]]: ...


class _ImageNet32Data(_Data):
    def __init__(self, cfg: TrainConfig, ctx: DistContext, per_rank: int,
                 fmt: torch.memory_format) -> None:
        from ..data.imagenet32 import DeviceLoader, ImageNet32Error, load_imagenet32

        where = ctx.device if cfg.data_on_device else torch.device("cpu")
        self.device = ctx.device
        train = load_imagenet32(cfg.data, "train", where, limit=cfg.limit_train)
        val = load_imagenet32(cfg.data, "val", where, limit=cfg.limit_val)
        for split, d in (("train", train), ("val", val)):
            top = int(d.labels.max())
            if top >= cfg.num_classes:
                raise ImageNet32Error(f"{split} labels go up to {top + 1} (1-based) but the "
                                      f"model has --num-classes {cfg.num_classes}")
        self.train = DeviceLoader(train, per_rank, train=True, rank=ctx.rank,
                                  world_size=ctx.world_size, seed=cfg.seed, memory_format=fmt,
                                  max_batches=cfg.max_steps_per_epoch)
        self.val = DeviceLoader(val, per_rank, train=False, rank=ctx.rank,
                                world_size=ctx.world_size, memory_format=fmt)
        self.n_train_steps, self.n_val_batches = len(self.train), len(self.val)
        self.val_size, self.num_classes = len(val), cfg.num_classes

    def set_epoch(self, epoch: int) -> None:
        self.train.set_epoch(epoch)

    def _moved(self, it):
        for x, y in it:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def train_batches(self):
        return self._moved(self.train)

    def val_batches(self):
        return self._moved(self.val)


class _ImageNetData(_Data):
    def __init__(self, cfg: TrainConfig, ctx: DistContext, per_rank: int,
                 fmt: torch.memory_format) -> None:
        from ..data.imagenet import ImageNetError, build_imagenet_loaders

        if not Path(cfg.data).expanduser().is_dir():
            raise ImageNetError(f"ImageNet folder {cfg.data!r} does not exist; put ILSVRC 2012 "
                                "there as train/<wnid>/*.JPEG and val/<wnid>/*.JPEG (validation "
                                "sorted into class folders) and pass it as --data")
        self.loaders = build_imagenet_loaders(
            cfg.data, per_rank, rank=ctx.rank, world_size=ctx.world_size, seed=cfg.seed,
            workers=cfg.workers, pin_memory=ctx.device.type == "cuda", limit_val=cfg.limit_val,
            crop=cfg.crop, resize_min=cfg.resize_min, resize_max=cfg.resize_max,
            val_resize=cfg.val_resize, color_jitter=cfg.color_jitter, lighting=cfg.lighting)
        if self.loaders.num_classes > cfg.num_classes:
            raise ConfigError(f"the ImageNet folder has {self.loaders.num_classes} classes but "
                              f"the model has --num-classes {cfg.num_classes}")
        self.device, self.fmt, self.max_steps = ctx.device, fmt, cfg.max_steps_per_epoch
        n = len(self.loaders.train)
        self.n_train_steps = n if self.max_steps is None else min(n, self.max_steps)
        self.n_val_batches = len(self.loaders.val)
        self.val_size = len(self.loaders.val.dataset)  # type: ignore[arg-type]
        self.num_classes = cfg.num_classes

    def set_epoch(self, epoch: int) -> None:
        self.loaders.set_epoch(epoch)

    def _moved(self, loader, limit):
        for i, (x, y) in enumerate(loader):
            if limit is not None and i >= limit:
                break
            yield (x.to(self.device, non_blocking=True).contiguous(memory_format=self.fmt),
                   y.to(self.device, non_blocking=True))

    def train_batches(self):
        return self._moved(self.loaders.train, self.max_steps)

    def val_batches(self):
        return self._moved(self.loaders.val, None)


# --------------------------------------------------------------------------------------------
# logging
# --------------------------------------------------------------------------------------------

class _Logger:
    """CSV + TensorBoard on rank 0; on resume, rows/events past the checkpoint are dropped."""

    def __init__(self, out: Path, cfg: TrainConfig, ctx: DistContext, start_epoch: int,
                 global_step: int) -> None:
        self.active = ctx.is_main
        self.csv_path = out / "metrics.csv"
        self.tb = None
        if not self.active:
            return
        kept: list[dict[str, str]] = []
        if start_epoch > 0 and self.csv_path.exists():
            with self.csv_path.open(newline="") as f:
                kept = [r for r in csv.DictReader(f) if int(r["epoch"]) <= start_epoch]
        with self.csv_path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            w.writeheader()
            w.writerows(kept)
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                print("gmp-train: tensorboard is not installed (pip install 'gmp[vision]'); "
                      "logging to metrics.csv only", file=sys.stderr, flush=True)
            else:
                # x-axis: optimizer steps; on resume, drop events logged after the checkpoint
                self.tb = SummaryWriter(str(out / "tb"), purge_step=global_step + 1
                                        if start_epoch > 0 else None)

    def step(self, loss: float, lr: float, step: int) -> None:
        if self.tb is not None:
            self.tb.add_scalar("train/loss_step", loss, step)
            self.tb.add_scalar("train/lr_step", lr, step)

    def epoch(self, row: dict[str, Any], step: int) -> None:
        if not self.active:
            return
        with self.csv_path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=CSV_FIELDS).writerow(row)
        if self.tb is not None:
            for k in CSV_FIELDS:
                split, _, name = k.partition("_")
                tag = f"{split}/{name}" if split in ("train", "val") else f"run/{k}"
                self.tb.add_scalar(tag, row[k], step)
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


# --------------------------------------------------------------------------------------------
# one epoch: train, evaluate
# --------------------------------------------------------------------------------------------

def _memory_format(cfg: TrainConfig, device: torch.device) -> torch.memory_format:
    on = cfg.channels_last == "on" or (cfg.channels_last == "auto" and device.type == "cuda")
    return torch.channels_last if on else torch.contiguous_format


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, data: _Data,
                    ctx: DistContext, cfg: TrainConfig, amp: bool, epoch: int,
                    progress: _Progress, logger: _Logger,
                    on_step: Callable[[int, int], None] | None = None) -> dict[str, float]:
    """One pass over this rank's shard of the training set (epoch ``epoch``, 0-based).

    Counts the optimizer steps in ``progress.global_step``; raises ``FloatingPointError`` on
    a non-finite loss. Returns the learning rate, the loss/top-1/top-5 averaged over every
    image of every rank, the image count, images/s and the epoch's time in seconds.
    """
    data.set_epoch(epoch)
    model.train()
    lr = optimizer.param_groups[0]["lr"]
    stats = torch.zeros(4, device=ctx.device, dtype=torch.float64)  # loss·n, top1, top5, n
    bar = tqdm(total=data.n_train_steps, desc=f"epoch {epoch + 1}/{cfg.epochs}",
               disable=not (ctx.is_main and cfg.progress), leave=False, dynamic_ncols=True)
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    t0 = time.perf_counter()
    for step, (x, y) in enumerate(data.train_batches()):
        with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        progress.global_step += 1
        with torch.no_grad():
            t1, t5 = accuracy_counts(logits.detach(), y)
            n = y.numel()
            stats += torch.stack([loss.detach().double() * n, t1.double(), t5.double(),
                                  torch.tensor(float(n), device=ctx.device, dtype=torch.float64)])
        if step % cfg.log_every == 0:
            lval = float(loss.detach())  # one sync per log_every steps
            if not math.isfinite(lval):
                raise FloatingPointError(
                    f"training diverged: loss {lval} at epoch {epoch + 1}, step {step + 1}; "
                    f"try a smaller --lr (was {lr})")
            if ctx.is_main:
                logger.step(lval, lr, progress.global_step)
                bar.set_postfix(loss=f"{lval:.3f}", refresh=False)
        bar.update()
        if on_step is not None:
            on_step(epoch, step)
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    train_time = time.perf_counter() - t0
    bar.close()
    all_reduce_sum(stats, ctx)
    n_train = float(stats[3])
    if not math.isfinite(float(stats[0])):
        raise FloatingPointError(f"training diverged in epoch {epoch + 1} (non-finite loss); "
                                 f"try a smaller --lr (was {lr})")
    return {"lr": lr, "train_loss": float(stats[0]) / n_train,
            "train_top1": float(stats[1]) / n_train, "train_top5": float(stats[2]) / n_train,
            "train_images": int(n_train), "images_per_s": n_train / train_time,
            "epoch_time_s": train_time}


@torch.no_grad()
def evaluate(model: nn.Module, data: _Data, ctx: DistContext, amp: bool) -> dict[str, float]:
    """Loss, top-1, top-5 over this rank's shard, summed over ranks: every sample once."""
    was_training = model.training
    model.eval()
    stats = torch.zeros(4, device=ctx.device, dtype=torch.float64)
    for x, y in data.val_batches():
        with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, reduction="sum")
        t1, t5 = accuracy_counts(logits, y)
        stats += torch.stack([loss.double(), t1.double(), t5.double(),
                              torch.tensor(float(y.numel()), device=ctx.device,
                                           dtype=torch.float64)])
    all_reduce_sum(stats, ctx)
    model.train(was_training)
    n = float(stats[3])
    return {"val_loss": float(stats[0]) / max(n, 1), "val_top1": float(stats[1]) / max(n, 1),
            "val_top5": float(stats[2]) / max(n, 1), "val_images": int(n)}


# --------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------

def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Schedule, progress: _Progress,
                    cfg: TrainConfig, ctx: DistContext) -> None:
    """Write the state after ``progress.epoch`` completed epochs to ``path`` (atomically).

    Every rank calls it (the generator states of all ranks are gathered); rank 0 writes.
    """
    rng = ckpt_io.get_rng_state(ctx.device)
    rngs = [rng]
    if ctx.distributed:
        rngs = [None] * ctx.world_size
        torch.distributed.all_gather_object(rngs, rng)
    if ctx.is_main:
        state = {"format": ckpt_io.FORMAT, "epoch": progress.epoch,
                 "global_step": progress.global_step, "model": model.state_dict(),
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "best_top1": progress.best_top1, "best_epoch": progress.best_epoch,
                 "stopped": progress.stopped,
                 "config": asdict(cfg), "rng": rngs,
                 "history": progress.history}
        ckpt_io.atomic_save(state, path)


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Schedule, cfg: TrainConfig,
                    ctx: DistContext) -> _Progress:
    """Restore a :func:`save_checkpoint` of a run with the same settings as ``cfg`` into
    ``model``, ``optimizer``, ``scheduler`` and the generators of this rank; raises
    :class:`~gmp.train.config.ConfigError` naming the settings that differ."""
    state = ckpt_io.load(path)
    diffs = resume_mismatches(state["config"], cfg)
    if diffs:
        raise ConfigError(f"cannot resume {str(path.parent)!r}: settings differ from the saved "
                          f"run ({'; '.join(diffs)}); use the original flags or a new --out")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    history = list(state.get("history", []))
    best_epoch = state.get("best_epoch")
    if best_epoch is None:  # checkpoints of earlier versions: the history says
        best_epoch = max(history, key=lambda r: r["val_top1"])["epoch"] if history else 0
    progress = _Progress(int(state["epoch"]), int(state["global_step"]),
                         float(state["best_top1"]), int(best_epoch),
                         bool(state.get("stopped", False)), history)
    rngs = state["rng"]
    if len(rngs) != ctx.world_size:
        _log(ctx, f"note: the run was saved with {len(rngs)} process(es) and resumes with "
                  f"{ctx.world_size}; the data order after resuming differs from an "
                  "uninterrupted run")
    ckpt_io.set_rng_state(rngs[ctx.rank % len(rngs)], ctx.device)
    _log(ctx, f"resuming {path.parent} after epoch {progress.epoch} (best val top-1 "
              f"{progress.best_top1:.4f})")
    return progress


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------

def train(cfg: TrainConfig, *, on_step: Callable[[int, int], None] | None = None,
          command: list[str] | None = None) -> TrainResult:
    """Run (or resume) a training run described by ``cfg``; see the module docstring.

    ``on_step(epoch, step)`` is called after every optimizer step (tests use it to simulate a
    crash). ``command`` is recorded in ``summary.json`` (default: ``sys.argv``).

    Raises (each a one-line message, printed by ``gmp-train``):
    :class:`~gmp.train.config.ConfigError` (bad settings, a run already in ``--out``
    without ``--resume``, no CUDA for ``--device cuda``), :class:`~gmp.files.OutputError`
    (``--out`` not a writable folder, or held by another run),
    :class:`~gmp.train.checkpoint.CheckpointError` (unreadable checkpoint on
    ``--resume``), the data modules' errors (data not found) and ``FloatingPointError``
    (the loss became non-finite; recorded as ``diverged`` in ``summary.json``).
    """
    cfg = cfg.resolved()
    ctx = setup(cfg.device)
    lock: OutputLock | None = None
    try:
        out, lock = _claim_out(cfg, ctx)
        return _train(cfg, ctx, out, on_step,
                      command if command is not None else list(sys.argv))
    finally:
        if lock is not None:
            lock.release()
        teardown(ctx)


def _results_name(cfg: TrainConfig) -> str:
    return f"{cfg.task}_{cfg.arch}_{cfg.param}_b{cfg.batch_size}_s{cfg.seed}.json"


def _claim_out(cfg: TrainConfig, ctx: DistContext) -> tuple[Path, OutputLock | None]:
    """Check and lock the run folder before any work; returns it and rank 0's lock.

    Rank 0 checks that ``--out`` is (or can be made) a writable folder, takes its
    :class:`~gmp.files.OutputLock` (``<out>/.lock``: a second run fails at once), removes
    temporaries a killed run left, and checks ``--results-dir``; an error there is raised on
    every rank. Then every rank refuses a folder holding a run unless ``--resume``.
    """
    out = Path(cfg.out).expanduser()
    lock: OutputLock | None = None
    msg: str | None = None
    if ctx.is_main:
        try:
            lock = _lock_out(out, cfg)
        except OutputError as e:
            msg = str(e)
    msg = broadcast_message(msg, ctx)
    if msg is not None:
        if lock is not None:
            lock.release()
        raise OutputError(msg)
    if (out / "checkpoint.pt").exists() and not cfg.resume:
        if lock is not None:
            lock.release()
        raise ConfigError(f"{str(out)!r} already holds a run (checkpoint.pt); pass --resume to "
                          "continue it or choose another --out")
    ctx.barrier()
    return out, lock


def _lock_out(out: Path, cfg: TrainConfig) -> OutputLock:
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file, not a folder; give a folder for the run")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the run folder {out}: {e.strerror or e}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"the run folder {out} is not writable")
    lock = OutputLock(out / ".lock", what=f"the run folder {out}").acquire()
    try:
        for p in remove_stale_temporaries(out):
            print(f"gmp-train: removed {p.name}, left by a run killed while writing",
                  file=sys.stderr, flush=True)
        if cfg.results_dir:
            check_output_file(Path(cfg.results_dir).expanduser() / _results_name(cfg))
    except BaseException:
        lock.release()
        raise
    return lock


def _seed_everything(seed: int) -> None:
    """Python, NumPy and torch generators; the same seed on every rank gives every rank the
    same initialization (DDP also broadcasts rank 0's)."""
    import random

    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _build_model(cfg: TrainConfig, ctx: DistContext, fmt: torch.memory_format
                 ) -> tuple[nn.Module, int]:
    """The network on the training device (BN synchronized across GPUs under DDP) and its
    parameter count."""
    model = build_model(cfg.arch, cfg.param, cfg.num_classes, cfg.width, cfg.preset)
    n_params = count_parameters(model)
    model = model.to(ctx.device, memory_format=fmt)
    if ctx.distributed and ctx.device.type == "cuda":   # every BatchNorm (none: a no-op)
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model, n_params


def _train(cfg: TrainConfig, ctx: DistContext, out: Path, on_step,
           command: list[str]) -> TrainResult:
    if cfg.batch_size % ctx.world_size:
        raise ConfigError(f"--batch-size {cfg.batch_size} (global) is not divisible by the "
                          f"{ctx.world_size} processes")
    per_rank = cfg.batch_size // ctx.world_size
    ckpt_path = out / "checkpoint.pt"
    resuming = cfg.resume and ckpt_path.exists()

    amp = cfg.amp == "bf16" or (cfg.amp == "auto" and ctx.device.type == "cuda")
    fmt = _memory_format(cfg, ctx.device)
    if ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        # float32 as the authors (torch would use TF32 convolutions by default)
        torch.backends.cudnn.allow_tf32 = cfg.tf32
        torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
    _seed_everything(cfg.seed)

    data: _Data = (_ImageNet32Data if cfg.task == "imagenet32" else _ImageNetData)(
        cfg, ctx, per_rank, fmt)
    raw, n_params = _build_model(cfg, ctx, fmt)
    optimizer = torch.optim.SGD(decay_groups(raw, cfg.weight_decay), lr=cfg.lr,
                                momentum=cfg.momentum, nesterov=cfg.nesterov)
    scheduler = make_schedule(cfg.protocol, optimizer, milestones=cfg.milestones,
                              gamma=cfg.gamma, plateau_patience=cfg.plateau_patience,
                              early_stop_patience=cfg.early_stop_patience)
    progress = (load_checkpoint(ckpt_path, raw, optimizer, scheduler, cfg, ctx) if resuming
                else _Progress())
    start_epoch = progress.epoch
    if ctx.is_main:  # only now: a refused --resume leaves the saved run's config alone
        atomic_write_text(out / "config.json", cfg.to_json() + "\n")
        if resuming:
            _repair_best(out, progress)
    ctx.barrier()

    model = raw
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        model = DDP(raw, device_ids=ids)
    train_model = torch.compile(model) if cfg.compile else model
    logger = _Logger(out, cfg, ctx, start_epoch, progress.global_step)
    _log(ctx, f"gmp-train {cfg.task}: {cfg.arch}/{cfg.param} (preset {cfg.preset}, "
              f"protocol {cfg.protocol}), {n_params:,} parameters, "
              f"{ctx.world_size} process(es) on {ctx.device.type}, global batch {cfg.batch_size}, "
              f"lr {cfg.lr}, wd {cfg.weight_decay}, bf16 {amp}, tf32 {cfg.tf32}, channels_last "
              f"{fmt == torch.channels_last}, {data.n_train_steps} steps/epoch, "
              f"{data.val_size} val images")
    info = {"provenance": record(command, extra={"device": _device_info(ctx)}),
            "parameters": n_params}

    try:
        for epoch in range(start_epoch, cfg.epochs):
            if progress.stopped:
                break
            try:
                tr = train_one_epoch(train_model, optimizer, data, ctx, cfg, amp, epoch,
                                     progress, logger, on_step)
                broadcast_buffers(raw, ctx)
                val = evaluate(raw, data, ctx, amp)
                if not math.isfinite(val["val_loss"]):
                    raise FloatingPointError(
                        f"training diverged: validation loss {val['val_loss']} after epoch "
                        f"{epoch + 1}; try a smaller --lr (was {tr['lr']})")
            except FloatingPointError as e:
                if ctx.is_main:
                    _write_summary(out, cfg, info, progress, diverged=str(e))
                raise
            row = {"epoch": epoch + 1, "lr": tr["lr"], "train_loss": tr["train_loss"],
                   "train_top1": tr["train_top1"], "train_top5": tr["train_top5"],
                   "train_images": tr["train_images"], **val,
                   "images_per_s": tr["images_per_s"], "epoch_time_s": tr["epoch_time_s"],
                   "gpu_mem_gib": (torch.cuda.max_memory_allocated(ctx.device) / 2**30
                                   if ctx.device.type == "cuda" else 0.0),
                   "max_rank_param_diff": max_param_difference(raw, ctx)}
            progress.history.append(row)
            progress.epoch = epoch + 1
            logger.epoch(row, progress.global_step)
            progress.best_top1 = max(progress.best_top1, row["val_top1"])
            improved = scheduler.step(row)  # the next epoch's LR; best by the monitor?
            if improved:
                progress.best_epoch = epoch + 1
            progress.stopped = scheduler.stopped
            _log(ctx, f"epoch {epoch + 1}/{cfg.epochs}  lr {row['lr']:.4g}  train loss "
                      f"{row['train_loss']:.4f} top1 {row['train_top1']:.4f}  val loss "
                      f"{row['val_loss']:.4f} top1 {row['val_top1']:.4f} top5 "
                      f"{row['val_top5']:.4f} ({row['val_images']} images)  "
                      f"{row['images_per_s']:.0f} img/s")
            # Order matters for --resume: checkpoint (records best_epoch), best.pt, summary.
            save_checkpoint(ckpt_path, raw, optimizer, scheduler, progress, cfg, ctx)
            if ctx.is_main:
                if improved:
                    ckpt_io.atomic_copy(ckpt_path, out / "best.pt")
                _write_summary(out, cfg, info, progress)
            ctx.barrier()
    finally:
        logger.close()
    if progress.stopped:
        _log(ctx, f"stopped after epoch {progress.epoch}: no better validation "
                  f"{scheduler.monitor} for {cfg.early_stop_patience} epochs; best epoch "
                  f"{progress.best_epoch} (best.pt)")
    if progress.epoch == start_epoch:  # nothing left to train: a completed run
        if ctx.is_main and progress.history:  # complete what a killed run left unwritten
            _write_summary(out, cfg, info, progress)
        _log(ctx, f"{out} already completed {start_epoch} epoch(s); its best.pt and "
                  "summary.json are up to date")
    return TrainResult(raw, progress.history, progress.best_top1, out)


def _checkpoint_epoch(path: Path) -> int | None:
    """The epoch a checkpoint file holds, or None when it is absent or unreadable."""
    if not path.exists():
        return None
    try:
        return int(ckpt_io.load(path)["epoch"])
    except (ckpt_io.CheckpointError, KeyError, TypeError, ValueError):
        return None


def _repair_best(out: Path, progress: _Progress) -> None:
    """Rewrite ``best.pt`` from ``checkpoint.pt`` when the checkpoint's epoch was the best
    and a run killed after saving the checkpoint left ``best.pt`` missing or older."""
    if progress.best_epoch and progress.best_epoch == progress.epoch and \
            _checkpoint_epoch(out / "best.pt") != progress.epoch:
        ckpt_io.atomic_copy(out / "checkpoint.pt", out / "best.pt")
        print(f"gmp-train: rewrote best.pt (epoch {progress.epoch}), which a killed run had "
              "not written", file=sys.stderr, flush=True)


def _reported(cfg: TrainConfig, progress: _Progress) -> dict[str, Any] | None:
    """The numbers the protocol's source reports: the best top-5 epoch's (``official``,
    whose script keeps that epoch's weights) or the final epoch's (``paper-text``)."""
    if not progress.history:
        return None
    kind = schedule_class(cfg.protocol)
    if kind.reported == "best-epoch" and progress.best_epoch:
        row = progress.history[progress.best_epoch - 1]
        rule = f"best-{kind.monitor.replace('_', '-')}-epoch"
    else:
        row, rule = progress.history[-1], "final-epoch"
    return {"rule": rule, "epoch": row["epoch"], "val_top1": row["val_top1"],
            "val_top5": row["val_top5"]}


def _write_summary(out: Path, cfg: TrainConfig, info: dict[str, Any], progress: _Progress,
                   diverged: str | None = None) -> None:
    """``summary.json`` (and its copy in ``--results-dir``) after ``progress.epoch`` epochs.

    ``finished`` when every epoch completed or the protocol stopped the run early (``official``),
    never for a run that diverged; a diverged run
    records the error in ``diverged`` (``final`` is its last completed epoch, or None)."""
    history = progress.history
    last = history[-1] if history else None
    summary = {**info, "updated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               "config": asdict(cfg), "epochs_completed": progress.epoch,
               "finished": diverged is None and (progress.stopped
                                                 or progress.epoch >= cfg.epochs),
               "stopped_early": progress.stopped,
               "diverged": diverged, "final": last,
               "best_val_top1": progress.best_top1 if history else None,
               "best_epoch": progress.best_epoch or None,
               "best_val_top5": max(r["val_top5"] for r in history) if history else None,
               "reported": _reported(cfg, progress),
               "history": history}
    write_json(out / "summary.json", summary, indent=2)
    if cfg.results_dir:
        write_json(Path(cfg.results_dir).expanduser() / _results_name(cfg), summary, indent=2)
