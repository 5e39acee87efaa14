"""Training of the ImageNet-scale experiments (Tables 2 and 3): ``gmp-train``.

- :mod:`gmp.train.config`: :class:`TrainConfig` and the paper's defaults;
- :mod:`gmp.train.engine`: :func:`train` (one process or DDP under ``torchrun``);
- :mod:`gmp.train.cli`: the command line (``gmp-train`` / ``python -m gmp.train``).
"""

from .config import ConfigError, TrainConfig

__all__ = ["ConfigError", "TrainConfig", "main", "train"]


def train(*args, **kwargs):
    """See :func:`gmp.train.engine.train` (imported lazily: it pulls in torchvision)."""
    from .engine import train as _train

    return _train(*args, **kwargs)


def main(argv: list[str] | None = None) -> int:
    """See :func:`gmp.train.cli.main`."""
    from .cli import main as _main

    return _main(argv)
