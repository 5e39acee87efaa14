"""One vocabulary for parameterizations, and the network presets of the small experiments.

A *param* names how a layer's weights are parameterized (Chen & Ge 2024, Sec. 2–3):

- ``"sp"``: standard parameterization, ``ReLU(wᵀx + b)``;
- ``"wn"``: weight normalization, ``w = g·v/‖v‖`` (torch's ``weight_norm``);
- ``"bn"``: batch normalization of the pre-activation;
- ``"gmp"``: geometric parameterization, ``r·ReLU(u(θ)ᵀx + λ)`` (:mod:`gmp.nn`).

The ImageNet models add ``"wn_mbn"`` (WN + mean-only BN) and ``"gmp_imn"`` (GmP + input mean
normalization); :data:`LABELS` names all six for tables and plots.

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

from dataclasses import dataclass

__all__ = ["PARAMS", "ALL_PARAMS", "LABELS", "PAPER_LR", "check_param", "Preset", "PRESETS",
           "DEFAULT_PRESET", "get_preset"]

#: The parameterizations of the small experiments and UCI (Sec. 4.1, Table 1).
PARAMS: tuple[str, ...] = ("sp", "wn", "bn", "gmp")
#: Every parameterization of the book, the ImageNet variants included (Tables 2–3).
ALL_PARAMS: tuple[str, ...] = ("sp", "wn", "wn_mbn", "bn", "gmp", "gmp_imn")
#: Display names.
LABELS: dict[str, str] = {"sp": "SP", "wn": "WN", "wn_mbn": "WN+MBN", "bn": "BN", "gmp": "GmP",
                          "gmp_imn": "GmP+IMN"}
#: Learning rates the paper chose by cross-validation for its illustrative experiments
#: (Sec. 4.1): 0.1 for GmP, 0.01 for the others.
PAPER_LR: dict[str, float] = {"sp": 0.01, "wn": 0.01, "bn": 0.01, "gmp": 0.1}


def check_param(param: str, allowed: tuple[str, ...] = PARAMS) -> str:
    """Return ``param`` lower-cased, or raise a ValueError naming the valid choices."""
    p = str(param).lower()
    if p not in allowed:
        raise ValueError(f"unknown parameterization {param!r}; expected one of {allowed}")
    return p


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
