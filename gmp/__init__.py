"""gmp: Geometric Parameterization (GmP) for ReLU networks.

Companion package to Chen & Ge, *Neural Characteristic Activation Analysis and Geometric
Parameterization for ReLU Networks*, NeurIPS 2024 (arXiv:2305.15912).
"""

from . import geometry
from .convert import ConversionError, convert, revert
from .geometry import angles, metric_diagonal, unit_vector
from .nn import GmPConv2d, GmPLinear, InputMeanNorm, MeanOnlyBatchNorm

__version__ = "0.1.0"

# Submodules with heavier imports (sympy, matplotlib, torchvision) load on first access:
# ``gmp.cab``, ``gmp.symbolic``, ``gmp.baselines``, ``gmp.data``, ``gmp.models``, ...
_LAZY = ("baselines", "cab", "data", "experiments", "models", "overhead", "perturbation",
         "plotting", "symbolic", "train")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ConversionError",
    "GmPConv2d",
    "GmPLinear",
    "InputMeanNorm",
    "MeanOnlyBatchNorm",
    "angles",
    "convert",
    "geometry",
    "metric_diagonal",
    "revert",
    "unit_vector",
]
