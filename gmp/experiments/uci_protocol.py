"""The UCI protocols and the settings of a run (Chen & Ge 2024, Sec. 4.2.1, Table 1 and
App. C.1): what each protocol selects on and trains on, the splits as the authors' tools cut
them, and Keras' input normalization.

Seven data sets × 10 random 80/20 splits × four parameterizations (SP, WN, BN, GmP) of a
one-hidden-layer MLP with 100 ReLU units, built as the authors' code builds it (preset
``"authors"`` of :mod:`gmp.params`: the GmP unit ``r·ReLU(uᵀx + λ)`` with their Glorot-derived
initialization and a dense read-out; Keras' Glorot initialization, WN read-out and BN
settings for the baselines). A protocol is one :class:`Protocol` value, looked up by name
once (:func:`get_protocol`, :data:`PROTOCOLS`); its three fields say what the schedule and
early stopping watch, where the learning rate comes from and what the final model trains on:

``official`` (the default)
    The authors' script ``uci_regression/uci_regression.py``, setting by setting: split ``k``
    is scikit-learn's ``train_test_split(test_size=0.2, random_state=k)``; features
    standardized as Keras' ``Normalization`` adapted on the training part; raw targets; MAE
    loss; Keras' Adam at the paper's learning rates (GmP 0.1, others 0.01); mini-batches of
    1024, shuffled every epoch; at most 5000 epochs; ``ReduceLROnPlateau(factor=0.1,
    patience=50)`` and ``EarlyStopping(patience=100, restore_best_weights=True)``, both on
    the validation MSE, and the validation data **is the test split**: the schedule, the
    stopping epoch and the weights kept are selected on the numbers then reported.
``honest-refit`` (the honest number of the book)
    Nothing is selected on the test split, and the final model trains on every training row,
    as practitioners do: (1) the learning rate of every parameterization is chosen by 3-fold
    cross-validation on the training part (scikit-learn's ``KFold(3, shuffle=True,
    random_state=k)``) over :data:`DEFAULT_LR_GRID`: a fold model trains on two folds (minus
    their validation split) and is scored by RMSE on the third; the rate with the lowest mean
    fold RMSE wins; (2) a *selection run* at that rate trains on the training part minus
    Keras' ``validation_split=0.2`` (its last 20 %: the training part is already in random
    order), with the schedule and early stopping watching that validation split: it selects
    the training length (the epochs behind the weights it keeps) and the learning-rate cuts;
    (3) the *refit* trains on the whole training part for the selected number of epochs with
    the selected cuts replayed at the same epochs
    (:class:`~gmp.experiments.fit.Replay`; the rule "retrain on all the data for
    the selected number of steps" is Algorithm 7.2 of Goodfellow, Bengio & Courville 2016,
    *Deep Learning*, Sec. 7.8, here counted in epochs), and is scored once on the test split.
    The selection run's test RMSE is recorded too (``no_refit_test_rmse``), for the
    decomposition only; nothing reads it.
``honest-no-refit``
    Steps (1) and (2) alone: the selection run is the final model (it trained on 64 % of the
    rows). This was the book's ``honest`` protocol before the refit.
``official-fewer-rows``, ``honest-no-refit-paper-lr``, ``honest-refit-paper-lr``
    The intermediate steps from ``official`` to ``honest-refit``, at the paper's fixed
    learning rates: the official protocol trained on the training part minus its validation
    split (still watching the test split); then watching the validation split instead; then
    refitting on every training row. With ``honest-refit`` last (the learning rate by
    cross-validation) the chain takes the official–honest gap apart
    (:func:`~gmp.experiments.uci_report.decomposition`).

Not reproduced: TensorFlow's random streams (the initializations and shuffles are torch's,
seeded per model) and its float64 arithmetic (``dtype="float64"`` restores it; the default
float32 is faster); the rows come from the pinned copies of :mod:`gmp.data.uci`, whose order
may differ from the UCI archive's files the script downloads, so split ``k`` holds other rows
than the script's split ``k``.

The training of a run is :mod:`gmp.experiments.uci_runner`, its command line ``gmp-uci``
:mod:`gmp.experiments.uci`, and reading its results file
:mod:`gmp.experiments.uci_report`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np
import torch

from ..params import PAPER_LR, PARAMS, check_param, get_preset
from .fit import FitConfig

__all__ = [
    "Protocol",
    "PROTOCOLS",
    "get_protocol",
    "DEFAULT_LR_GRID",
    "OFFICIAL_LR",
    "AUTHORS_SCRIPT",
    "DTYPES",
    "UCIConfig",
    "split_indices",
    "kfold_indices",
    "validation_split",
    "keras_normalizer",
]

_MONITORS = ("test", "validation split")
_LRS = ("paper", "cross-validation")
_FINAL_ROWS = ("train", "train minus validation split", "train (refit)")


@dataclass(frozen=True)
class Protocol:
    """One UCI protocol: what the schedule and early stopping watch (``monitor``: ``"test"``
    or ``"validation split"``), where the learning rate comes from (``lr``: ``"paper"`` or
    ``"cross-validation"``) and what the final model trains on (``final_rows``: ``"train"``,
    ``"train minus validation split"`` or ``"train (refit)"``). The protocols of the book
    are the values of :data:`PROTOCOLS`."""

    name: str
    monitor: str
    lr: str
    final_rows: str

    def __post_init__(self) -> None:
        for value, allowed in ((self.monitor, _MONITORS), (self.lr, _LRS),
                               (self.final_rows, _FINAL_ROWS)):
            if value not in allowed:
                raise ValueError(f"protocol {self.name!r}: {value!r} is not one of {allowed}")
        if self.final_rows == "train" and self.monitor != "test":
            raise ValueError(f"protocol {self.name!r}: a model trained on every training row "
                             "can only watch the test split")

    @property
    def watches_test(self) -> bool:
        """The schedule and early stopping watch the test split (the authors' script)."""
        return self.monitor == "test"

    @property
    def lr_by_cv(self) -> bool:
        """The learning rate is chosen by cross-validation on the training part."""
        return self.lr == "cross-validation"

    @property
    def refit(self) -> bool:
        """The final model is refit on every training row after a selection run."""
        return self.final_rows == "train (refit)"

    @property
    def splits_validation(self) -> bool:
        """The training part loses Keras' validation split (all but ``official``)."""
        return self.final_rows != "train"


#: Every protocol, by name, in the order of the decomposition; ``honest-refit`` is the
#: book's honest number, ``honest-no-refit`` the earlier one.
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("official", "test", "paper", "train"),
    Protocol("official-fewer-rows", "test", "paper", "train minus validation split"),
    Protocol("honest-no-refit-paper-lr", "validation split", "paper",
             "train minus validation split"),
    Protocol("honest-refit-paper-lr", "validation split", "paper", "train (refit)"),
    Protocol("honest-refit", "validation split", "cross-validation", "train (refit)"),
    Protocol("honest-no-refit", "validation split", "cross-validation",
             "train minus validation split"),
)}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; a ValueError naming the protocols otherwise."""
    try:
        return PROTOCOLS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown protocol {name!r}; expected one of "
                         f"{tuple(PROTOCOLS)}") from None


#: Learning rates the honest protocol's cross-validation chooses from, the decade grid
#: around the paper's choices (0.01 for SP/WN/BN and 0.1 for GmP, Sec. 4.1).
DEFAULT_LR_GRID: tuple[float, ...] = (1e-3, 1e-2, 1e-1)
#: Fixed learning rates of the authors' script (the paper's; the registry's, live).
OFFICIAL_LR: Mapping[str, float] = PAPER_LR
#: The settings of the authors' ``uci_regression.py``, as written there (its names).
AUTHORS_SCRIPT: dict[str, object] = {
    "units": 100, "n_epochs": 5000, "batch_size": 1024, "early_stop_patience": 100,
    "lr_decay_patience": 50, "lr_decay_factor": 0.1, "lr_decay_min_delta": 1e-4,
    "lr_gmp": 0.1, "lr_others": 0.01, "loss": "mean_absolute_error",
    "monitor": "val_mean_squared_error", "validation_data": "test", "test_size": 0.2,
    "adam_epsilon": 1e-7, "networks": "authors",
}
#: The training dtypes, by name.
DTYPES = {"float32": torch.float32, "float64": torch.float64}
_KERAS_EPSILON = 1e-7      # keras.backend.epsilon(): Normalization's smallest scale


@dataclass(frozen=True)
class UCIConfig:
    """Settings of one benchmark run (defaults: the authors' script; see the module docstring).

    Every name in it is resolved once, here: ``protocol`` (a :class:`Protocol`, or its name)
    becomes the :class:`Protocol`, ``params`` the checked parameterizations, and the preset
    and dtype are checked.

    Attributes:
        protocol: one of :data:`PROTOCOLS` (default ``official``: the authors' script).
        splits: number of random 80/20 splits (split ``k`` is ``random_state=k``).
        params: parameterizations to run.
        preset: network preset of :mod:`gmp.params` (``"authors"``; others are variants).
        hidden: hidden units.
        test_fraction: test share of every split.
        val_fraction: all but ``official``: Keras' ``validation_split`` of every model's rows.
        folds: cross-validation folds for the learning rate (``honest-refit``,
            ``honest-no-refit``).
        lr_grid: learning rates cross-validation chooses from (same protocols).
        max_epochs, patience, batch_size, loss: Keras' ``fit``
            (:class:`~gmp.experiments.fit.FitConfig`); the plateau patience is
            ``patience // 2``, as in the script.
        dtype: ``"float32"`` or ``"float64"`` (the script's).
        max_rows: members × rows trained in one stacked computation (speed and memory only).
    """

    protocol: Protocol = PROTOCOLS["official"]
    splits: int = 10
    params: tuple[str, ...] = PARAMS
    preset: str = "authors"
    hidden: int = 100
    test_fraction: float = 0.2
    val_fraction: float = 0.2
    folds: int = 3
    lr_grid: tuple[float, ...] = DEFAULT_LR_GRID
    max_epochs: int = 5000
    patience: int = 100
    batch_size: int = 1024
    loss: str = "mae"
    dtype: str = "float32"
    max_rows: int = 1 << 16

    def __post_init__(self) -> None:
        if not isinstance(self.protocol, Protocol):
            object.__setattr__(self, "protocol", get_protocol(self.protocol))
        object.__setattr__(self, "params", tuple(check_param(m) for m in self.params))
        if not self.params:
            raise ValueError("params must name at least one of " + ", ".join(PARAMS))
        get_preset(self.preset)
        if self.splits < 1:
            raise ValueError(f"splits must be >= 1, got {self.splits}")
        if not 0 < self.test_fraction < 1 or not 0 < self.val_fraction < 1:
            raise ValueError("test_fraction and val_fraction must lie in (0, 1), got "
                             f"{self.test_fraction}, {self.val_fraction}")
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {self.folds}")
        grid = tuple(float(v) for v in self.lr_grid)
        if not grid or any(not (v > 0 and math.isfinite(v)) for v in grid):
            raise ValueError(f"lr_grid must hold positive learning rates, got {self.lr_grid}")
        object.__setattr__(self, "lr_grid", tuple(sorted(set(grid))))
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        if self.hidden < 2 or self.max_rows < 1:
            raise ValueError(f"hidden must be >= 2 and max_rows >= 1, got {self.hidden}, "
                             f"{self.max_rows}")
        self.fit_config()                      # validates the training settings

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def fit_config(self) -> FitConfig:
        return FitConfig(max_epochs=self.max_epochs, patience=self.patience,
                         batch_size=self.batch_size, loss=self.loss)

    def to_dict(self) -> dict:
        """The ``config`` of a results file: every setting that affects the numbers, and
        what the protocol watches, chooses and trains on (settings it does not use left
        out)."""
        p = self.protocol
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["protocol"] = p.name
        d["params"], d["lr_grid"] = list(self.params), list(self.lr_grid)
        d["monitor"] = "test" if p.watches_test else "validation_split"
        if not p.lr_by_cv:
            d["lr"] = {m: OFFICIAL_LR[m] for m in self.params}
            del d["lr_grid"], d["folds"]
        if not p.splits_validation:
            del d["val_fraction"]
        d["final_rows"] = p.final_rows
        if p.refit:
            d["refit"] = "selected epochs, learning-rate cuts replayed"
        del d["max_rows"]            # does not affect results
        return d


# ---------------------------------------------------------------- splits, as the script's tools
def split_indices(n_rows: int, split: int, test_fraction: float = 0.2
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` row indices of split ``split``, in the order scikit-learn's
    ``train_test_split(test_size=test_fraction, random_state=split)`` returns them: a
    ``RandomState(split).permutation``, the first ``ceil(test_fraction·N)`` rows are the test
    part."""
    n_test = int(math.ceil(test_fraction * n_rows))
    if not 0 < n_test < n_rows:
        raise ValueError(f"test_fraction {test_fraction} leaves no train or test rows of {n_rows}")
    perm = np.random.RandomState(split).permutation(n_rows)
    return perm[n_test:], perm[:n_test]


def kfold_indices(n: int, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(rest, held)`` positions of scikit-learn's ``KFold(folds, shuffle=True,
    random_state=seed).split(range(n))``: ``RandomState(seed)`` shuffles ``0..n-1``, the
    first ``n % folds`` folds get one position more, and both parts are in ascending order."""
    if not 2 <= folds <= n:
        raise ValueError(f"need 2 <= folds <= {n}, got {folds}")
    order = np.arange(n)
    np.random.RandomState(seed).shuffle(order)
    sizes = np.full(folds, n // folds)
    sizes[: n % folds] += 1
    out, start = [], 0
    for size in sizes:
        held = np.zeros(n, dtype=bool)
        held[order[start:start + size]] = True
        out.append((np.flatnonzero(~held), np.flatnonzero(held)))
        start += size
    return out


def validation_split(rows: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """``(fit, val)`` as Keras' ``fit(validation_split=fraction)`` cuts ``rows``
    (``train_validation_split``): the first ``floor(len·(1 - fraction))`` rows are trained
    on, the rest validate."""
    at = int(math.floor(len(rows) * (1.0 - fraction)))
    if not 0 < at < len(rows):
        raise ValueError(f"validation split {fraction} leaves no fit or validation rows of "
                         f"{len(rows)}")
    return rows[:at], rows[at:]


def keras_normalizer(X: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, scale)`` of Keras' ``Normalization`` adapted on ``X[rows]``:
    ``(x - mean) / max(sqrt(var), 1e-7)`` with the population variance (a constant column,
    Naval has two, becomes 0)."""
    mean, var = X[rows].mean(axis=0), X[rows].var(axis=0)
    return mean, np.maximum(np.sqrt(var), _KERAS_EPSILON)
