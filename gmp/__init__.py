"""gmp: Geometric Parameterization (GmP) for ReLU networks.

Companion package to Chen & Ge, *Neural Characteristic Activation Analysis and Geometric
Parameterization for ReLU Networks*, NeurIPS 2024 (arXiv:2305.15912).

The package in layers; a module imports only from its own layer and the layers above it:

1. Mathematics and data. :mod:`gmp.geometry`: hyperspherical coordinates ``u(θ)``, their inverse
   and metric (Sec. 3.1); :mod:`gmp.symbolic`: the paper's derivations in SymPy, typeset to
   fit a page by :mod:`gmp.formatting`;
   :mod:`gmp.data`: Levy, Banana, UCI, ImageNet32 and ImageNet, every file checked by SHA-256.
2. Layers and networks. :mod:`gmp.nn`: ``GmPLinear``, ``GmPConv2d``, input mean normalization,
   mean-only BN; :mod:`gmp.params`: the registry of parameterizations (a *param* is ``"sp"``,
   ``"wn"``, ``"bn"``, ``"gmp"``, ...: one spec each, the one place that decides what its
   layers, stacked form and CABs are) and the network presets named after their source;
   :mod:`gmp.layers`: the entry points that build a dense layer, a conv and a classifier
   under every param;
   :mod:`gmp.baselines` (one-hidden-layer networks) and :mod:`gmp.models` (VGG-6, ResNet-18)
   are built from them; :mod:`gmp.convert` swaps a model's layers for GmP ones and back.
3. Analysis. :mod:`gmp.cab`: characteristic activation boundaries (Sec. 2);
   :mod:`gmp.perturbation` (Fig. 1) and :mod:`gmp.overhead` (cost per training step) measure
   them; :mod:`gmp.plotting` draws them and :mod:`gmp.animation` makes kernel-free
   interactive figures of them (a slider over precomputed frames, for the static book).
4. Experiments. :mod:`gmp.experiments`: Levy and Banana (Sec. 4.1), UCI (Table 1, ``gmp-uci``:
   protocols, runner, report and command line, one module each), all trained on one
   stacked engine, reported as distributions; :mod:`gmp.train`: the
   ImageNet-scale training of Tables 2–3 (``gmp-train``, one GPU or ``torchrun``).

Every results file and checkpoint is written atomically (:mod:`gmp.files`) with a record of the
command, git revision, date and machine that produced it (:mod:`gmp.provenance`).
"""

from . import geometry
from .convert import ConversionError, convert, revert
from .geometry import angles, metric_diagonal, unit_vector
from .nn import GmPConv2d, GmPLinear, InputMeanNorm, MeanOnlyBatchNorm

__version__ = "0.1.0"

# Submodules with heavier imports (sympy, matplotlib, torchvision) load on first access:
# ``gmp.cab``, ``gmp.symbolic``, ``gmp.baselines``, ``gmp.data``, ``gmp.models``, ...
_LAZY = ("animation", "baselines", "cab", "data", "experiments", "files", "formatting",
         "layers", "models", "overhead", "params", "perturbation", "plotting", "provenance",
         "symbolic", "train")


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
