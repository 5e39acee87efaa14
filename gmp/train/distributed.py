"""Process-group setup for one process, ``torchrun`` on one node, or several nodes.

``torchrun`` (``python -m torch.distributed.run``) sets ``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` in each process it starts; the same
variables set by hand (or by ``torch.multiprocessing.spawn`` in the tests) work as well.
The backend is NCCL on CUDA and gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .config import ConfigError

__all__ = ["DistContext", "setup", "teardown", "all_reduce_sum", "broadcast_buffers",
           "broadcast_message",
           "max_param_difference"]


@dataclass
class DistContext:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    initialized_here: bool

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()


def _env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise ValueError(f"environment variable {name}={v!r} is not an integer") from None


def setup(device: str = "auto") -> DistContext:
    """Pick the device and, when ``WORLD_SIZE > 1``, join the process group.

    ``device``: ``"auto"`` (CUDA when available), ``"cuda"``, ``"cpu"``, or ``"cuda:N"``
    (single process only). Under torchrun each process uses ``cuda:LOCAL_RANK``.
    """
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unsupported device {device!r}; use 'auto', 'cuda' or 'cpu'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was requested but no CUDA GPU is available "
                              "(none visible, or a CPU-only torch build); use --device cpu")
        if dev.index is None:
            if local_rank >= torch.cuda.device_count():
                raise ConfigError(f"LOCAL_RANK={local_rank} but only "
                                   f"{torch.cuda.device_count()} GPU(s) are visible; start "
                                   "at most one process per GPU (--nproc_per_node)")
            dev = torch.device("cuda", local_rank)
        elif world > 1:
            raise ConfigError("with several processes pass --device cuda (each process takes "
                             "cuda:LOCAL_RANK), not a fixed GPU index")
        torch.cuda.set_device(dev)
    elif dev.type != "cpu":
        raise ConfigError(f"unsupported device {device!r}; use 'auto', 'cuda' or 'cpu'")
    initialized_here = False
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend=backend, **kwargs)
        initialized_here = True
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    return DistContext(rank, local_rank, world, dev, initialized_here)


def teardown(ctx: DistContext) -> None:
    if ctx.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: Tensor, ctx: DistContext) -> Tensor:
    """Sum of ``t`` over processes (in place; returns ``t``)."""
    if ctx.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


@torch.no_grad()
def broadcast_buffers(model: nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (BN running statistics, IMN/MBN running means) to every rank.

    IMN, MBN and SyncBatchNorm already keep identical running statistics on every rank;
    plain BatchNorm (CPU runs) updates them from the local batch, so ranks drift apart
    after each training forward. Called before evaluation and checkpointing.
    """
    if ctx.distributed:
        for b in model.buffers():
            dist.broadcast(b, src=0)


@torch.no_grad()
def max_param_difference(model: nn.Module, ctx: DistContext) -> float:
    """Largest ``|p_rank - p_0|`` over all parameters and buffers and all ranks (0 if alone)."""
    if not ctx.distributed:
        return 0.0
    worst = torch.zeros((), device=ctx.device, dtype=torch.float64)
    for t in list(model.parameters()) + list(model.buffers()):
        ref = t.detach().clone()
        dist.broadcast(ref, src=0)
        if t.numel():
            diff = (t.detach().double() - ref.double()).abs().max()
            worst = torch.maximum(worst, diff.to(worst.device))
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return float(worst)


def broadcast_message(msg: str | None, ctx: DistContext) -> str | None:
    """Rank 0's ``msg`` on every rank (e.g. an error only rank 0 can see, so that every rank
    stops instead of waiting at the next barrier)."""
    if not ctx.distributed:
        return msg
    box = [msg]
    dist.broadcast_object_list(box, src=0)
    return box[0]
