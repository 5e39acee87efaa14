"""The registry of parameterizations, and the network presets of the small experiments.

A *param* names how a layer's weights are parameterized (Chen & Ge 2024, Sec. 2–3). Each is
one :class:`Parameterization` object in one registry (:func:`get_spec`): its label, colour,
learning rate and stable seed id, the layers it builds (dense, conv, classifier, norm layer),
its stacked form for the batched engine and its CAB geometry. Everything else in the package
asks the spec; adding a parameterization is registering one (``CONTRIBUTING.md``).
The built-ins:

- ``"sp"``: standard parameterization, ``ReLU(wᵀx + b)``;
- ``"wn"``: weight normalization, ``w = g·v/‖v‖`` (torch's ``weight_norm``);
- ``"bn"``: batch normalization of the pre-activation;
- ``"gmp"``: geometric parameterization, ``r·ReLU(u(θ)ᵀx + λ)`` (:mod:`gmp.nn`).

The ImageNet models add ``"wn_mbn"`` (WN + mean-only BN) and ``"gmp_imn"`` (GmP + input mean
normalization); :data:`LABELS` names all of them for tables and plots.

A *preset* fixes every network choice the paper leaves open, and is named after its source.
``"authors"`` is what the authors' public code builds (their notebooks and ``models.py``):
it is the default wherever a result claims to follow the paper. The others are variants,
shown beside it:

============================  ==========  ===========  ============  ==============  =========
preset                        GmP init    GmP unit     GmP read-out  baseline init   BN (m, ε)
============================  ==========  ===========  ============  ==============  =========
``authors``                   ``g-a``     ``paper``    dense         Keras Glorot    .99, 1e-3
``authors-weight-form``       ``g-a``     ``weight``   dense         Keras Glorot    .99, 1e-3
``paper-remark-3.5``          ``sphere``  ``paper``    dense         Keras Glorot    .99, 1e-3
``book-v1``                   ``sphere``  ``weight``   GmP           torch default   .9, 1e-5
============================  ==========  ===========  ============  ==============  =========

- GmP init ``g-a`` (``"glorot-authors"``): what the authors' initializer computes, a
  Glorot-uniform ``w`` converted to ``(θ, r = ‖w‖)``, ``λ = 0``, whose last coordinate loses
  its sign in their conversion to angles (every unit starts with ``u_n ≥ 0``; in 1-D
  ``u = sign(w)`` is fixed and ``r = |w|``). ``sphere``: Remark 3.5, direction uniform on the
  sphere, ``r = 1``, ``λ = 0``.
- GmP unit ``paper``: the layer computes ``r·ReLU(uᵀx + λ)`` (activation inside,
  ``GmPLinear(..., activation=nn.ReLU())``). ``weight``: ``ReLU((r·u)ᵀx + r·λ)``; equal while
  ``r > 0``, but a negative ``r`` flips the unit's active side instead of negating its output.
- Read-out: ``dense`` is a plain linear layer (Keras ``Dense``: Glorot-uniform weight, zero
  bias); ``GmP`` a GmP layer. WN reads out with a WN layer and SP/BN with a plain one in every
  preset, as in the authors' notebooks.
- Baseline init ``Keras Glorot``: Glorot-uniform weights and zero biases (Keras' ``Dense``);
  WN then starts at ``g = ‖v‖``. ``torch default``: ``nn.Linear``'s own initialization.
- BN ``(m, ε)`` in Keras' convention (running ← m·running + (1 − m)·batch); torch's
  ``momentum`` is ``1 − m``.

``book-v1`` is the network of this book's first edition (kept to show what changed).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from .convert import convert
from .geometry import unit_vector
from .nn import (
    _KERAS_BN_EPS,
    _KERAS_MOMENTUM,
    GmPConv2d,
    GmPLinear,
    InputMeanNorm,
    KerasBatchNorm1d,
    MeanOnlyBatchNorm,
    keras_conv2d,
    linear,
)

__all__ = ["PARAMS", "ALL_PARAMS", "LABELS", "PAPER_LR", "COLORS", "check_param", "Preset",
           "PRESETS", "DEFAULT_PRESET", "PROPOSED", "get_preset", "Parameterization", "register",
           "unregister", "registered", "names", "get_spec", "seed_id", "recognize"]


@dataclass(frozen=True)
class Preset:
    """Network choices of one source (see the module docstring's table).

    Attributes:
        name: the preset's name.
        source: where these choices come from, in words.
        gmp_init: ``"glorot-authors"``, ``"glorot"`` or ``"sphere"`` (:class:`gmp.nn.GmPLinear`'s
            ``init``).
        gmp_unit: ``"paper"`` (``r·ReLU(uᵀx+λ)``) or ``"weight"`` (``ReLU((r·u)ᵀx + r·λ)``).
        gmp_readout: ``"dense"`` (plain linear) or ``"gmp"``.
        baseline_init: ``"keras"`` (Glorot-uniform weights, zero biases) or ``"torch"``.
        bn_momentum, bn_eps: BatchNorm settings in torch's convention (``bn_momentum = 1 −``
            Keras' momentum; the table above shows Keras' values).
    """

    name: str
    source: str
    gmp_init: str
    gmp_unit: str
    gmp_readout: str
    baseline_init: str
    bn_momentum: float
    bn_eps: float

    def __post_init__(self) -> None:
        for key, allowed in (("gmp_init", ("glorot-authors", "glorot", "sphere")),
                             ("gmp_unit", ("paper", "weight")),
                             ("gmp_readout", ("dense", "gmp")),
                             ("baseline_init", ("keras", "torch"))):
            if getattr(self, key) not in allowed:
                raise ValueError(f"Preset {self.name!r}: {key} must be one of {allowed}, got "
                                 f"{getattr(self, key)!r}")


_KERAS_BN = {"bn_momentum": 0.01, "bn_eps": 1e-3}   # Keras momentum 0.99, epsilon 1e-3

#: The presets by name (see the table above).
PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("authors", "the authors' public code (notebooks and models.py)", "glorot-authors",
           "paper", "dense", "keras", **_KERAS_BN),
    Preset("authors-weight-form", "the authors' networks with the GmP unit in weight form "
           "ReLU((r·u)ᵀx + r·λ)", "glorot-authors", "weight", "dense", "keras", **_KERAS_BN),
    Preset("paper-remark-3.5", "the authors' networks with Remark 3.5's GmP initialization "
           "(uniform direction, r = 1, λ = 0)", "sphere", "paper", "dense", "keras",
           **_KERAS_BN),
    Preset("book-v1", "this book's first edition: Remark 3.5 init, weight form, GmP read-out, "
           "torch's default initializations", "sphere", "weight", "gmp", "torch",
           bn_momentum=0.1, bn_eps=1e-5),
)}
#: The preset of every result that claims to follow the paper.
DEFAULT_PRESET = "authors"


def get_preset(preset: str | Preset | None = None) -> Preset:
    """The :class:`Preset` named ``preset`` (default :data:`DEFAULT_PRESET`)."""
    if isinstance(preset, Preset):
        return preset
    name = DEFAULT_PRESET if preset is None else str(preset)
    if name not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {tuple(PRESETS)}")
    return PRESETS[name]


# ============================================================================================
# The registry of parameterizations
# ============================================================================================
#
# Invariants, stated once:
#
# 1. One spec per name, one seed id per spec. A seed id never changes and is never reused, so
#    adding a parameterization leaves every other one's seeds (UCI: :func:`seed_id`) alone.
# 2. A spec's builders draw from torch's global generator in the order the book has always
#    drawn (one layer at a time, weight before bias): the same seed builds the same network.
# 3. A spec recognizes exactly the layers it builds for a dense hidden layer or read-out
#    (:meth:`Parameterization.recognizes`); no layer is recognized by two specs.
# 4. The stacked form of a layer is its own tensors (:meth:`Parameterization.tensors`), each
#    stacked on a new leading member axis ``S``; :meth:`Parameterization.affine` maps them,
#    for any leading shape, to the effective ``(w, b)`` of ``wᵀx + b``. Members never mix.

_F64 = torch.float64


class Parameterization:
    """How a layer's weights are parameterized: one object per param, registered once.

    Subclasses override the builders and the stacked form they support; everything else
    raises :class:`NotImplementedError` naming the spec and what it lacks.

    Attributes:
        name: the param, lower case (``"sp"``, ``"gmp"``, ...).
        label: display name in tables and plots (``"GmP"``).
        color: ``"#RRGGBB"`` of its curves (Okabe–Ito palette for the built-ins).
        seed_id: stable small integer that seeds derive from (invariant 1).
        lr: the paper's learning rate of the small experiments, or None.
        dense: builds the one-hidden-layer networks of the small experiments and UCI
            (:data:`PARAMS` lists these).
        needs_batch_stats: the hidden layer normalizes with batch statistics (its CABs depend
            on the input batch).
        cost_factor: relative cost of a training step against SP (schedules the longest
            jobs first).
        convertible: a plain ``nn.Linear`` (or a model) can be rewritten in this param,
            computing the same function (:meth:`from_linear`, :meth:`convert_model`).
        has_unit_form: the layer can carry its ReLU inside (GmP's ``r·ReLU(uᵀx + λ)``).
    """

    name: str = ""
    label: str = ""
    color: str = ""
    seed_id: int = -1
    lr: float | None = None
    dense: bool = False
    needs_batch_stats: bool = False
    cost_factor: float = 1.0
    convertible: bool = False
    has_unit_form: bool = False

    def __repr__(self) -> str:
        return f"<Parameterization {self.name!r} ({self.label}, seed id {self.seed_id})>"

    def _unsupported(self, what: str) -> NotImplementedError:
        return NotImplementedError(f"parameterization {self.name!r} does not build {what}")

    # -- dense networks of the small experiments and UCI (gmp.baselines) ---------------------
    def hidden(self, in_features: int, out_features: int, preset: Preset) -> nn.Module:
        """The hidden layer ``(N, in) -> (N, out)``: the pre-activation, or ``r·ReLU(...)``
        for a layer in unit form."""
        raise self._unsupported("a dense hidden layer (small experiments, UCI)")

    def readout(self, in_features: int, out_features: int, preset: Preset) -> nn.Module:
        """The linear read-out ``(N, in) -> (N, out)``."""
        raise self._unsupported("a dense read-out (small experiments, UCI)")

    def split_hidden(self, hidden: nn.Module) -> tuple[nn.Module, nn.Module | None]:
        """``(linear layer, normalizer or None)`` of a hidden layer built by :meth:`hidden`."""
        return hidden, None

    # -- ImageNet networks (gmp.models) --------------------------------------------------------
    def conv(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
             padding: int | str = 0, *, first: bool = False, gmp_init: str = "sphere"
             ) -> nn.Module:
        """``book-v1`` conv with its normalizer: ``(N, C_in, H, W) -> (N, C_out, H', W')``."""
        raise self._unsupported("a book-v1 convolution")

    def classifier(self, in_features: int, num_classes: int) -> nn.Module:
        """``book-v1`` classifier ``(N, in_features) -> (N, num_classes)``."""
        raise self._unsupported("a book-v1 classifier")

    def norm_layer(self) -> Callable[[int], nn.Module]:
        """What follows a conv of a torchvision ResNet (its ``norm_layer``)."""
        return nn.Identity

    def authors_conv(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                     padding: int = 1) -> list[nn.Module]:
        """The authors' VGG-6 conv layer: modules ``(N, C_in, H, W) -> (N, C_out, H, W)``
        (post-activation)."""
        raise self._unsupported("the authors' VGG-6 convolution")

    def authors_classifier(self, in_features: int, num_classes: int) -> nn.Module:
        """The authors' read-out ``(N, in_features) -> (N, num_classes)``."""
        raise self._unsupported("the authors' classifier")

    def resnet_conv(self, conv: nn.Conv2d, *, first: bool, preset: str) -> nn.Module | None:
        """The replacement of a ResNet skeleton's bias-free ``conv`` (torchvision's He-normal
        init), or None to keep it."""
        raise self._unsupported("a ResNet-18 convolution")

    def resnet_fc(self, fc: nn.Linear, preset: str) -> nn.Module | None:
        """The replacement of the skeleton's classifier ``fc``, or None to keep it."""
        return None

    # -- conversions and the perturbation experiment (gmp.perturbation, gmp.overhead) --------
    def from_linear(self, layer: nn.Linear) -> nn.Module:
        """``layer`` rewritten in this param, computing the same function (may reuse it)."""
        raise self._unsupported("a layer converted from nn.Linear")

    def convert_model(self, model: nn.Module) -> nn.Module:
        """Every ``nn.Linear``/``nn.Conv2d`` of ``model`` rewritten in this param, in place."""
        raise self._unsupported("a converted model")

    def from_affine(self, w: Tensor, b: Tensor) -> nn.Module:
        """A float64 layer whose units have effective weights ``w (m, n)`` and biases
        ``b (m,)`` (default: :meth:`from_linear` of a plain layer)."""
        if not self.convertible:
            raise self._unsupported("a layer from given weights and biases")
        m, n = w.shape
        lin = nn.Linear(n, m, dtype=_F64)
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        return self.from_linear(lin)

    def boundary_parameters(self, layer: nn.Module) -> list[nn.Parameter]:
        """The parameters that can move a unit's CAB (the perturbation of Fig. 1)."""
        return list(layer.parameters())

    def trained_weight(self, layer: nn.Module) -> tuple[Tensor | None, Tensor | None]:
        """``(direction-carrying weight (m, n) or None, signed scale (m,) or None)`` that
        training updates: ``(w, None)`` (SP), ``(v, g)`` (WN), ``(None, r)`` (GmP)."""
        raise self._unsupported("the trained weight of the step experiment")

    def angles(self, layer: nn.Module) -> Tensor | None:
        """The angle parameters ``θ (m, n-1)`` of a layer, or None when it has none."""
        return None

    def unit_form(self, layer: nn.Module) -> nn.Module:
        """``layer`` in unit form ``r·ReLU(uᵀx + λ)`` (same parameters)."""
        raise self._unsupported("a layer in unit form")

    # -- the stacked form (gmp.experiments.batched.StackedLinear) -----------------------------
    def recognizes(self, layer: nn.Module) -> bool:
        """Whether ``layer`` is this param's dense layer (invariant 3)."""
        return False

    def tensors(self, layer: nn.Module) -> dict[str, Tensor | None]:
        """The layer's own parameters and buffers, by stacked name, in a fixed order (None
        for a missing bias). ``nn.Parameter`` entries train; the others are buffers."""
        raise self._unsupported("a stacked form")

    def affine(self, t: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Effective ``(w (..., m, n), b (..., m))`` of :meth:`tensors` stacked on any leading
        axes (differentiable)."""
        raise self._unsupported("a stacked form")

    def affine_f64(self, t: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """:meth:`affine` in float64, for measurements."""
        return self.affine({k: v.to(_F64) for k, v in t.items()})

    def unit_forward(self, t: dict[str, Tensor], x: Tensor) -> Tensor:
        """Unit-form forward of the stack: ``x (S, N, n) -> (S, N, m)``."""
        raise self._unsupported("a stacked layer in unit form")

    def cab_coordinates(self, t: dict[str, Tensor], unit_form: bool
                        ) -> tuple[Tensor, Tensor, Tensor | None] | None:
        """``(λ (S, m), u (S, m, n), orientation (S, m) or None)`` for a param whose CAB is
        exactly ``{uᵀx + λ = 0}`` with normal ``orientation·u``; None: the CAB follows from
        :meth:`affine` (``φ = -b·w/‖w‖²``, normal ``w/‖w‖``)."""
        return None

    def extra_metrics(self, layer: nn.Module) -> dict[str, Tensor]:
        """Param-specific final metrics of a trained hidden layer (or a stack of them: values
        ``(S,)``), e.g. GmP's count of units with ``r < 0``."""
        return {}


_REGISTRY: dict[str, Parameterization] = {}
_BUILTIN: tuple[str, ...] = ()


def register(spec: Parameterization) -> Parameterization:
    """Add ``spec`` to the registry and return it.

    Raises:
        ValueError: a name that is empty, not lower case or taken; a missing label; a
            colour that is not ``"#RRGGBB"``; a seed id that is negative or taken.
        TypeError: ``spec`` is not a :class:`Parameterization`.
    """
    if not isinstance(spec, Parameterization):
        raise TypeError(f"register expects a Parameterization, got {type(spec).__name__}")
    name = spec.name
    if not (isinstance(name, str) and name and name == name.lower()):
        raise ValueError(f"a parameterization needs a lower-case name, got {name!r}")
    if name in _REGISTRY:
        raise ValueError(f"parameterization {name!r} is already registered")
    if not spec.label:
        raise ValueError(f"parameterization {name!r} has no label")
    if not re.fullmatch(r"#[0-9A-Fa-f]{6}", str(spec.color or "")):
        raise ValueError(f"parameterization {name!r} needs a colour '#RRGGBB', got "
                         f"{spec.color!r}")
    if isinstance(spec.seed_id, bool) or not isinstance(spec.seed_id, int) or spec.seed_id < 0:
        raise ValueError(f"parameterization {name!r} needs a seed id >= 0, got "
                         f"{spec.seed_id!r}")
    for other in _REGISTRY.values():
        if other.seed_id == spec.seed_id:
            raise ValueError(f"parameterization {name!r}: seed id {spec.seed_id} is taken by "
                             f"{other.name!r}")
    _REGISTRY[name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a parameterization registered by :func:`register` (not a built-in)."""
    if name in _BUILTIN:
        raise ValueError(f"the built-in parameterization {name!r} cannot be unregistered")
    if name not in _REGISTRY:
        raise KeyError(f"parameterization {name!r} is not registered")
    del _REGISTRY[name]


@contextlib.contextmanager
def registered(spec: Parameterization) -> Iterator[Parameterization]:
    """``with registered(spec):`` the parameterization exists inside the block only."""
    register(spec)
    try:
        yield spec
    finally:
        unregister(spec.name)


def names(*, dense: bool | None = None) -> tuple[str, ...]:
    """Registered params in registration order; ``dense=True``: those of :data:`PARAMS`."""
    return tuple(n for n, s in _REGISTRY.items() if dense is None or s.dense == dense)


def get_spec(param: str) -> Parameterization:
    """The registered :class:`Parameterization` named ``param`` (case-insensitive)."""
    p = str(param).lower()
    if p not in _REGISTRY:
        raise ValueError(f"unknown parameterization {param!r}; expected one of {names()}")
    return _REGISTRY[p]


def seed_id(param: str) -> int:
    """The stable seed id of ``param`` (sp 0, wn 1, bn 2, gmp 3, wn_mbn 4, gmp_imn 5)."""
    return get_spec(param).seed_id


def recognize(layer: nn.Module) -> Parameterization:
    """The spec whose dense layer ``layer`` is (:meth:`Parameterization.recognizes`)."""
    for spec in _REGISTRY.values():
        if spec.recognizes(layer):
            return spec
    raise TypeError(f"no parameterization recognizes a {type(layer).__name__}; expected the "
                    "dense layer of one of " + ", ".join(n for n, s in _REGISTRY.items()
                                                         if s.dense))


def check_param(param: str, allowed: tuple[str, ...] | None = None) -> str:
    """Return ``param`` lower-cased, or raise a ValueError naming the valid choices
    (``allowed``; default the registered params of the dense networks, :data:`PARAMS` and
    any registered since)."""
    p = str(param).lower()
    allowed = names(dense=True) if allowed is None else allowed
    if p not in allowed:
        raise ValueError(f"unknown parameterization {param!r}; expected one of {allowed}")
    return p


class _View(Mapping):
    """A read-only ``{param: attribute}`` view of the registry (live)."""

    def __init__(self, attr: str, names_of: Callable[[], tuple[str, ...]] = names):
        self._attr, self._names = attr, names_of

    def __getitem__(self, key: str):
        if key not in self._names():
            raise KeyError(key)
        return getattr(_REGISTRY[key], self._attr)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return repr(dict(self))


# --------------------------------------------------------------------------------------------
# Pieces the built-in specs share
# --------------------------------------------------------------------------------------------
def _is_weight_norm(layer: nn.Module) -> bool:
    """``layer`` has exactly torch's ``weight_norm`` (``dim=0``) on its weight."""
    if not parametrize.is_parametrized(layer, "weight"):
        return False
    plist = layer.parametrizations.weight
    return len(plist) == 1 and type(plist[0]).__name__ == "_WeightNorm" and plist[0].dim == 0


def _unit_vector_autograd(theta: Tensor) -> Tensor:
    """``u(θ)`` of :func:`gmp.geometry.unit_vector` as plain autograd operations.

    Same values and (to rounding) gradients as the library's custom autograd Functions,
    which are built for wide layers; for the stacked ``(S, m, n-1)`` angles of the small
    networks the plain composition has less per-call overhead (about half the time of a
    forward and backward there). ``(..., n-1) -> (..., n)``, ``n ≥ 2``.
    """
    sin, cos = torch.sin(theta), torch.cos(theta)
    ones = theta.new_ones(theta.shape[:-1] + (1,))
    # u_i = (∏_{j<i} sin θ_j)·cos θ_i for i < n, u_n = ∏_{j<n} sin θ_j
    return torch.cat([ones, torch.cumprod(sin, dim=-1)], dim=-1) * torch.cat([cos, ones], dim=-1)


def _copied_conv(conv: nn.Conv2d, bias: bool) -> nn.Conv2d:
    """A fresh ``nn.Conv2d`` of ``conv``'s shape with its weight and a zero bias (the fresh
    draw is overwritten but consumed, invariant 2)."""
    new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0],
                    conv.padding[0], bias=bias)
    with torch.no_grad():
        new.weight.copy_(conv.weight)
        if new.bias is not None:
            new.bias.zero_()
    return new


def _weight_norm_all(model: nn.Module) -> nn.Module:
    if isinstance(model, (nn.Linear, nn.Conv2d)):
        return weight_norm(model)
    for m in model.modules():
        if type(m) in (nn.Linear, nn.Conv2d):
            weight_norm(m)
    return model


class _SP(Parameterization):
    """Standard parameterization ``ReLU(wᵀx + b)``: plain ``nn.Linear``/``nn.Conv2d``."""

    name, label, color, seed_id, lr = "sp", "SP", "#0072B2", 0, 0.01
    dense = convertible = True

    def hidden(self, in_features, out_features, preset):
        return linear(in_features, out_features, preset.baseline_init)

    readout = hidden

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, *,
             first=False, gmp_init="sphere"):
        return nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=True)

    def classifier(self, in_features, num_classes):
        return nn.Linear(in_features, num_classes)

    def authors_conv(self, in_channels, out_channels, kernel_size=3, padding=1):
        return [keras_conv2d(in_channels, out_channels, kernel_size, padding),
                nn.ReLU(inplace=True)]

    def authors_classifier(self, in_features, num_classes):
        return linear(in_features, num_classes, "keras")

    def resnet_conv(self, conv, *, first, preset):
        return _copied_conv(conv, bias=True)

    def resnet_fc(self, fc, preset):
        return self.classifier(fc.in_features, fc.out_features)

    def from_linear(self, layer):
        return layer

    def convert_model(self, model):
        return model

    def trained_weight(self, layer):
        return layer.weight.detach(), None

    def recognizes(self, layer):
        return isinstance(layer, nn.Linear) and not parametrize.is_parametrized(layer)

    def tensors(self, layer):
        return {"weight": layer.weight, "bias": layer.bias}

    def affine(self, t):
        return t["weight"], t["bias"]


class _WN(Parameterization):
    """Weight normalization ``w = g·v/‖v‖`` (torch's ``weight_norm``, ``dim=0``)."""

    name, label, color, seed_id, lr = "wn", "WN", "#E69F00", 1, 0.01
    dense = convertible = True

    def hidden(self, in_features, out_features, preset):
        return weight_norm(linear(in_features, out_features, preset.baseline_init))

    readout = hidden        # the authors' DenseWN

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, *,
             first=False, gmp_init="sphere"):
        return weight_norm(nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                     bias=True))

    def classifier(self, in_features, num_classes):
        return weight_norm(nn.Linear(in_features, num_classes))

    def authors_conv(self, in_channels, out_channels, kernel_size=3, padding=1):
        return [weight_norm(keras_conv2d(in_channels, out_channels, kernel_size, padding,
                                         fan_out="units")), nn.ReLU(inplace=True)]

    def authors_classifier(self, in_features, num_classes):
        return weight_norm(linear(in_features, num_classes, "keras"))

    def resnet_conv(self, conv, *, first, preset):
        return weight_norm(_copied_conv(conv, bias=True))

    def resnet_fc(self, fc, preset):
        return self.classifier(fc.in_features, fc.out_features)

    def from_linear(self, layer):
        return weight_norm(layer)

    def convert_model(self, model):
        return _weight_norm_all(model)

    def trained_weight(self, layer):
        p = layer.parametrizations.weight
        return p.original1.detach(), p.original0.detach().reshape(-1)

    def recognizes(self, layer):
        return isinstance(layer, nn.Linear) and _is_weight_norm(layer)

    def tensors(self, layer):
        p = layer.parametrizations.weight
        return {"g": p.original0, "v": p.original1, "bias": layer.bias}

    def affine(self, t):
        # torch._weight_norm(v, g, dim=0) per member: v · (g / ‖v‖_row)
        v = t["v"]
        norm = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
        return v * (t["g"] / norm), t["bias"]


class _WNMBN(Parameterization):
    """WN convs followed by mean-only BN (ImageNet models only)."""

    name, label, color, seed_id = "wn_mbn", "WN+MBN", "#56B4E9", 4

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, *,
             first=False, gmp_init="sphere"):
        return nn.Sequential(weight_norm(nn.Conv2d(in_channels, out_channels, kernel_size,
                                                   stride, padding, bias=False)),
                             MeanOnlyBatchNorm(out_channels))

    def classifier(self, in_features, num_classes):
        return weight_norm(nn.Linear(in_features, num_classes))

    def norm_layer(self):
        return MeanOnlyBatchNorm

    def authors_conv(self, in_channels, out_channels, kernel_size=3, padding=1):
        return [weight_norm(keras_conv2d(in_channels, out_channels, kernel_size, padding,
                                         bias=False, fan_out="units")),
                MeanOnlyBatchNorm(out_channels, momentum=_KERAS_MOMENTUM, bias=False),
                nn.ReLU(inplace=True)]

    def authors_classifier(self, in_features, num_classes):
        return weight_norm(linear(in_features, num_classes, "keras"))

    def resnet_conv(self, conv, *, first, preset):
        return weight_norm(_copied_conv(conv, bias=False))

    def resnet_fc(self, fc, preset):
        return self.classifier(fc.in_features, fc.out_features)


class _BN(Parameterization):
    """Batch normalization of the pre-activation."""

    name, label, color, seed_id, lr = "bn", "BN", "#009E73", 2, 0.01
    dense = needs_batch_stats = True
    cost_factor = 1.5

    def hidden(self, in_features, out_features, preset):
        lin = linear(in_features, out_features, preset.baseline_init)
        bn = KerasBatchNorm1d if preset.baseline_init == "keras" else nn.BatchNorm1d
        return nn.Sequential(lin, bn(out_features, eps=preset.bn_eps,
                                     momentum=preset.bn_momentum))

    def readout(self, in_features, out_features, preset):
        return linear(in_features, out_features, preset.baseline_init)

    def split_hidden(self, hidden):
        return hidden[0], hidden[1]

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, *,
             first=False, gmp_init="sphere"):
        return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                                       padding, bias=False), nn.BatchNorm2d(out_channels))

    def classifier(self, in_features, num_classes):
        return nn.Linear(in_features, num_classes)

    def norm_layer(self):
        return nn.BatchNorm2d

    def authors_conv(self, in_channels, out_channels, kernel_size=3, padding=1):
        return [keras_conv2d(in_channels, out_channels, kernel_size, padding, bias=False),
                nn.BatchNorm2d(out_channels, eps=_KERAS_BN_EPS, momentum=_KERAS_MOMENTUM),
                nn.ReLU(inplace=True)]

    def authors_classifier(self, in_features, num_classes):
        return linear(in_features, num_classes, "keras")

    def resnet_conv(self, conv, *, first, preset):
        return None         # the skeleton is torchvision's ResNet-18 already

    def from_affine(self, w, b):
        # The preset's BN block (γ = 1, β = 0), its linear layer set to (w, b).
        m, n = w.shape
        layer = self.hidden(n, m, get_preset(None)).to(_F64)
        with torch.no_grad():
            layer[0].weight.copy_(w)
            layer[0].bias.copy_(b)
        return layer

    def recognizes(self, layer):
        return (isinstance(layer, nn.Sequential) and len(layer) == 2
                and isinstance(layer[1], nn.BatchNorm1d))


class _GmP(Parameterization):
    """Geometric parameterization ``r·ReLU(u(θ)ᵀx + λ)`` (:class:`gmp.nn.GmPLinear`)."""

    name, label, color, seed_id, lr = "gmp", "GmP", "#D55E00", 3, 0.1
    dense = convertible = has_unit_form = True
    cost_factor = 1.5

    def hidden(self, in_features, out_features, preset):
        act = nn.ReLU() if preset.gmp_unit == "paper" else None
        return GmPLinear(in_features, out_features, init=preset.gmp_init, activation=act)

    def readout(self, in_features, out_features, preset):
        if preset.gmp_readout == "gmp":
            return GmPLinear(in_features, out_features, init=preset.gmp_init)
        return linear(in_features, out_features, preset.baseline_init)

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, *,
             first=False, gmp_init="sphere"):
        return GmPConv2d(in_channels, out_channels, kernel_size, stride, padding,  # type: ignore[arg-type]
                         bias=True, init=gmp_init)

    def classifier(self, in_features, num_classes):
        return GmPLinear(in_features, num_classes)

    def authors_conv(self, in_channels, out_channels, kernel_size=3, padding=1):
        return [GmPConv2d(in_channels, out_channels, kernel_size, padding=padding,
                          init="glorot-authors", activation=nn.ReLU())]

    def authors_classifier(self, in_features, num_classes):
        return linear(in_features, num_classes, "keras")

    def resnet_conv(self, conv, *, first, preset):
        return self.conv(conv.in_channels, conv.out_channels, conv.kernel_size[0],
                         conv.stride[0], conv.padding[0], first=first,
                         gmp_init="glorot-authors" if preset == "authors" else "sphere")

    def resnet_fc(self, fc, preset):
        # under "authors" the GmP ResNet keeps torchvision's plain classifier
        return None if preset == "authors" else self.classifier(fc.in_features,
                                                                fc.out_features)

    def from_linear(self, layer):
        return GmPLinear.from_linear(layer)

    def convert_model(self, model):
        return convert(model)

    def boundary_parameters(self, layer):
        # r scales the output and does not move the CAB
        return [p for p in (layer.theta, layer.lam) if p is not None]

    def trained_weight(self, layer):
        return None, layer.r.detach()

    def angles(self, layer):
        return layer.theta

    def unit_form(self, layer):
        unit = GmPLinear(layer.fan_in, layer.out_features, activation=nn.ReLU(),
                         dtype=layer.r.dtype)
        unit.load_state_dict(layer.state_dict())
        return unit

    def recognizes(self, layer):
        return isinstance(layer, GmPLinear)

    def tensors(self, layer):
        if layer.activation is not None and type(layer.activation) is not nn.ReLU:
            raise TypeError("StackedLinear: a GmP layer in unit form must use nn.ReLU, got "
                            f"{type(layer.activation).__name__}")
        return {"theta": layer.theta, "lam": layer.lam, "r": layer.r,
                "direction": layer.direction}

    @staticmethod
    def _u(t: dict[str, Tensor]) -> Tensor:
        # n = 1 (no angles): the fixed ±1 direction (m, 1); else u(θ)
        theta = t["theta"]
        return t["direction"] if theta.shape[-1] == 0 else _unit_vector_autograd(theta)

    def affine(self, t):
        r = t["r"]
        return r.unsqueeze(-1) * self._u(t), r * t["lam"]

    @torch.no_grad()
    def affine_f64(self, t):
        r = t["r"].to(_F64)
        return r.unsqueeze(-1) * self._u_f64(t), r * t["lam"].to(_F64)

    @staticmethod
    def _u_f64(t: dict[str, Tensor]) -> Tensor:
        theta = t["theta"]
        return (t["direction"].to(_F64) if theta.shape[-1] == 0
                else unit_vector(theta.to(_F64)))

    def unit_forward(self, t, x):
        z = torch.baddbmm(t["lam"].unsqueeze(1), x, self._u(t).transpose(1, 2))
        return t["r"].unsqueeze(1) * torch.relu(z)

    @torch.no_grad()
    def cab_coordinates(self, t, unit_form):
        # Exact: φ = -λ·u(θ), no division by r. The normal towards the active side is u(θ)
        # in unit form, sign(r)·u(θ) in weight form (r = 0: no boundary, NaN).
        orient = None
        if not unit_form:
            sign = torch.sign(t["r"].to(_F64))
            orient = torch.where(sign == 0, math.nan, sign)
        return t["lam"].to(_F64), self._u_f64(t), orient

    def extra_metrics(self, layer):
        return {"r_negative": (layer.r < 0).sum(dim=-1)}


class _GmPIMN(Parameterization):
    """GmP layers with input mean normalization (ImageNet models only)."""

    name, label, color, seed_id = "gmp_imn", "GmP+IMN", "#CC79A7", 5

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, *,
             first=False, gmp_init="sphere"):
        layer = GmPConv2d(in_channels, out_channels, kernel_size, stride, padding,  # type: ignore[arg-type]
                          bias=True, init=gmp_init)
        return layer if first else nn.Sequential(InputMeanNorm(in_channels), layer)

    def classifier(self, in_features, num_classes):
        layer = GmPLinear(in_features, num_classes)
        return nn.Sequential(InputMeanNorm(in_features), layer)

    def authors_conv(self, in_channels, out_channels, kernel_size=3, padding=1):
        return [GmPConv2d(in_channels, out_channels, kernel_size, padding=padding,
                          init="glorot-authors", activation=nn.ReLU()),
                InputMeanNorm(out_channels, momentum=_KERAS_MOMENTUM)]

    def authors_classifier(self, in_features, num_classes):
        return linear(in_features, num_classes, "keras")

    resnet_conv = _GmP.resnet_conv
    resnet_fc = _GmP.resnet_fc


# Registration order is display order (tables, plots); seed ids are fixed independently.
for _spec in (_SP(), _WN(), _WNMBN(), _BN(), _GmP(), _GmPIMN()):
    register(_spec)
_BUILTIN = tuple(_REGISTRY)
del _spec

#: The parameterizations of the small experiments and UCI (Sec. 4.1, Table 1).
PARAMS: tuple[str, ...] = names(dense=True)
#: Every parameterization of the book, the ImageNet variants included (Tables 2–3).
ALL_PARAMS: tuple[str, ...] = names()
#: The parameterization the paper proposes, which its claims compare with every other one.
PROPOSED = "gmp"
#: Display names by param (a live view of the registry).
LABELS: Mapping[str, str] = _View("label")
#: Learning rates the paper chose by cross-validation for its illustrative experiments
#: (Sec. 4.1), 0.1 for GmP and 0.01 for the others (a live view of the registry).
PAPER_LR: Mapping[str, float] = _View(
    "lr", lambda: tuple(n for n, s in _REGISTRY.items() if s.lr is not None))
#: Plot colours by param (a live view of the registry).
COLORS: Mapping[str, str] = _View("color")
