"""``gmp-train``: train VGG-6 on ImageNet32 (Table 2) or ResNet-18 on ImageNet (Table 3).

Presets (``--preset``, the network) and protocols (``--protocol``, the schedule) are named
after their source and listed below (and by ``gmp-train --help``). No weight decay and
float32 by default, as the authors' script.

One GPU::

    gmp-train imagenet32 --param gmp_imn --batch-size 1024 --data ~/imagenet32 --out runs/vgg
    gmp-train imagenet --param gmp_imn --data ~/ILSVRC2012 --out runs/r18_gmp_imn

All GPUs of one node (``--batch-size`` stays the global batch)::

    torchrun --standalone --nproc_per_node=8 -m gmp.train imagenet --param bn --data ... --out ...

Several nodes (run on every node; ``NODE_RANK`` 0..N-1, ``HOST`` reachable from all)::

    torchrun --nnodes=2 --nproc_per_node=8 --node_rank=$NODE_RANK \\
        --rdzv_backend=c10d --rdzv_endpoint=$HOST:29500 --rdzv_id=r18 -m gmp.train imagenet ...

Add ``--resume`` to continue a run after preemption (a fresh run starts if there is no
checkpoint yet, so the same command can sit in a retry loop).
"""

from __future__ import annotations

import argparse
import sys

from ..models import IMAGENET_PRESETS
from .config import TASKS, ConfigError, TrainConfig
from .protocol import DEFAULT_PROTOCOL, PROTOCOLS

__all__ = ["build_parser", "config_from_args", "main"]


def _positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {s}")
    return v


def _milestones(s: str) -> list[int]:
    try:
        return [int(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated epochs like 30,60,80, "
                                         f"got {s!r}") from None


def _add_common(p: argparse.ArgumentParser, task: str) -> None:
    d = TrainConfig(task=task, data="", out="")
    g = p.add_argument_group("run")
    g.add_argument("--data", required=True, help="data folder (see the data module docs)")
    g.add_argument("--out", required=True, help="run folder: config, checkpoints, logs")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out after its last completed epoch")
    g.add_argument("--results-dir", default=None,
                   help="also copy summary.json here, e.g. results/" + task)
    m = p.add_argument_group("model and optimization (paper defaults)")
    m.add_argument("--param", default=d.param,
                   help="sp, wn, wn_mbn, bn, gmp or gmp_imn (default %(default)s)")
    m.add_argument("--arch", default=None,
                   help="vgg6 or resnet18 (default: vgg6 for imagenet32, resnet18 for imagenet)")
    m.add_argument("--preset", default=d.preset, choices=IMAGENET_PRESETS,
                   help="the network, named after its source (default %(default)s)")
    m.add_argument("--protocol", default=None, choices=PROTOCOLS,
                   help="schedule, stopping and reported epoch (default "
                        f"{DEFAULT_PROTOCOL[task]}, the source of the published numbers)")
    m.add_argument("--width", type=float, default=d.width,
                   help="channel multiplier; the paper's nets have 1.0 (default)")
    m.add_argument("--num-classes", type=_positive_int, default=d.num_classes)
    m.add_argument("--epochs", type=_positive_int, default=None,
                   help="epochs (official: at most; default 500 official, 90 paper-text)")
    m.add_argument("--batch-size", type=_positive_int, default=d.batch_size,
                   help="global batch, split evenly over processes (default %(default)s)")
    m.add_argument("--lr", type=float, default=None,
                   help="initial LR (default: ImageNet32 0.1 for gmp*, 0.01 otherwise; "
                        "ImageNet 0.1)")
    m.add_argument("--momentum", type=float, default=d.momentum)
    m.add_argument("--nesterov", action="store_true")
    m.add_argument("--weight-decay", type=float, default=None,
                   help="L2 on weights, WN g/v and GmP r, not on biases, norm parameters, GmP "
                        "angles/offsets (default 0: the authors use none)")
    m.add_argument("--milestones", type=_milestones, default=None,
                   help="paper-text: epochs after which LR is multiplied by --gamma "
                        "(default 30,60,80)")
    m.add_argument("--gamma", type=float, default=d.gamma,
                   help="LR factor of a milestone or a plateau (default %(default)s)")
    m.add_argument("--plateau-patience", type=_positive_int, default=d.plateau_patience,
                   help="official: epochs without a better val top-5 before LR x gamma "
                        "(default %(default)s)")
    m.add_argument("--early-stop-patience", type=_positive_int,
                   default=d.early_stop_patience,
                   help="official: epochs without a better val top-5 before stopping "
                        "(default %(default)s)")
    m.add_argument("--seed", type=int, default=d.seed)
    e = p.add_argument_group("execution")
    e.add_argument("--device", default=d.device, help="auto (default), cuda or cpu")
    e.add_argument("--amp", default=d.amp, choices=("off", "bf16", "auto"),
                   help="off: float32 as the authors (default); bf16 autocast; auto = bf16 "
                        "on CUDA")
    e.add_argument("--tf32", action="store_true",
                   help="allow TF32 matmuls/convolutions on CUDA (default: exact float32)")
    e.add_argument("--channels-last", default=d.channels_last, choices=("auto", "on", "off"))
    e.add_argument("--compile", action="store_true", help="torch.compile the training model")
    e.add_argument("--workers", type=int, default=d.workers,
                   help="data-loading processes per GPU (ImageNet)")
    s = p.add_argument_group("smoke runs and logging")
    s.add_argument("--max-steps-per-epoch", type=_positive_int, default=None)
    s.add_argument("--limit-val", type=_positive_int, default=None,
                   help="validate on the first N images only")
    s.add_argument("--log-every", type=_positive_int, default=d.log_every)
    s.add_argument("--no-tensorboard", dest="tensorboard", action="store_false")
    s.add_argument("--no-progress", dest="progress", action="store_false")
    if task == "imagenet32":
        s.add_argument("--limit-train", type=_positive_int, default=None,
                       help="load only the first N training images")
        e.add_argument("--data-on-host", dest="data_on_device", action="store_false",
                       help="keep the uint8 data set in host memory instead of on the GPU")
    else:
        a = p.add_argument_group("augmentation (He et al. 2016)")
        a.add_argument("--crop", type=_positive_int, default=d.crop)
        a.add_argument("--resize-min", type=_positive_int, default=d.resize_min)
        a.add_argument("--resize-max", type=_positive_int, default=d.resize_max)
        a.add_argument("--val-resize", type=_positive_int, default=d.val_resize)
        a.add_argument("--color-jitter", type=float, default=d.color_jitter,
                       help="ColorJitter brightness/contrast/saturation (default 0: off; the "
                            "paper cites PCA lighting only)")
        a.add_argument("--lighting", type=float, default=d.lighting,
                       help="std of AlexNet PCA lighting noise (0: off)")


_PRESETS_HELP = """\
Presets (--preset, the network) and protocols (--protocol, the schedule), named after
their source:

  authors      VGG-6 as the authors' imagenet32.py builds it (default): their GmP init
               (a Glorot draw converted, lambda = 0), unit form r*ReLU(u.x + lambda), plain
               Dense classifier, Keras inits and BN (0.99, 1e-3), MBN without bias, IMN
               after every GmP ReLU. ResNet-18: the authors' GmP init in He et al.'s net.
  book-v1      the networks of this book's first edition.
  official     the authors' script (ImageNet32 default): LR x0.1 when val top-5 stalls
               5 epochs, stop after 10, keep and report the best top-5 epoch, <= 500 epochs.
  paper-text   the paper's text (ImageNet default): 90 epochs, LR x0.1 after 30, 60, 80;
               report the final epoch.

No weight decay and float32 by default, as the authors' script.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gmp-train",
        description=(__doc__ or "").replace("``", "") + "\n" + _PRESETS_HELP,
        epilog="Multi-GPU: torchrun --nproc_per_node=N -m gmp.train TASK ...",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="task", required=True, metavar="TASK")
    for task, what in (("imagenet32", "VGG-6 on ImageNet32 (Table 2)"),
                       ("imagenet", "ResNet-18 on ImageNet (Table 3)")):
        _add_common(sub.add_parser(task, help=what, description=f"{what}.\n\n{_PRESETS_HELP}",
                                   formatter_class=argparse.RawDescriptionHelpFormatter), task)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = {k: v for k, v in vars(args).items()}
    return TrainConfig.from_dict(values)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``gmp-train`` and ``python -m gmp.train``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from ..data.imagenet import ImageNetError
    from ..data.imagenet32 import ImageNet32Error
    from ..files import OutputError
    from .checkpoint import CheckpointError
    from .engine import train

    try:
        train(config_from_args(args), command=["gmp-train", *argv])
    except (ConfigError, ImageNet32Error, ImageNetError, FloatingPointError, OutputError,
            CheckpointError) as e:
        line = " ".join(str(e).split())  # one line, whatever the message
        print(f"gmp-train: error: {line}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("gmp-train: interrupted; continue with --resume", file=sys.stderr, flush=True)
        return 130
    return 0


if TASKS != ("imagenet32", "imagenet"):  # pragma: no cover - keep the parser in step
    raise ImportError("gmp.train.cli: update the sub-commands to match config.TASKS")
