"""The four parameterizations compared in the paper's small experiments, as layer builders.

``method`` is one of :data:`METHODS`:

- ``"sp"``: standard parameterization, ``nn.Linear``;
- ``"wn"``: weight normalization, torch's own
  :func:`torch.nn.utils.parametrizations.weight_norm` on an ``nn.Linear``;
- ``"bn"``: ``nn.Linear`` followed by ``nn.BatchNorm1d`` on the pre-activation;
- ``"gmp"``: :class:`gmp.nn.GmPLinear`.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from .nn import GmPLinear

__all__ = ["METHODS", "check_method", "hidden_layer", "output_layer", "OneHiddenLayerMLP", "mlp"]

METHODS: tuple[str, ...] = ("sp", "wn", "bn", "gmp")


def check_method(method: str) -> str:
    """Return ``method`` lower-cased, or raise a ValueError naming the valid choices."""
    m = str(method).lower()
    if m not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    return m


def hidden_layer(method: str, in_features: int, out_features: int) -> nn.Module:
    """The pre-activation of a hidden layer under ``method``: input ``(N, in)`` → ``(N, out)``."""
    m = check_method(method)
    if m == "sp":
        return nn.Linear(in_features, out_features)
    if m == "wn":
        return weight_norm(nn.Linear(in_features, out_features))
    if m == "bn":
        return nn.Sequential(nn.Linear(in_features, out_features), nn.BatchNorm1d(out_features))
    return GmPLinear(in_features, out_features)


def output_layer(method: str, in_features: int, out_features: int) -> nn.Module:
    """The linear read-out under ``method`` (BN uses a plain ``nn.Linear``: no norm on outputs)."""
    m = check_method(method)
    return hidden_layer("sp" if m == "bn" else m, in_features, out_features)


class OneHiddenLayerMLP(nn.Module):
    """``x ↦ out(ReLU(hidden(x)))``: input ``(N, in_features)``, output ``(N, out_features)``.

    ``self.hidden`` is the layer whose characteristic activation boundaries are studied.
    """

    def __init__(self, method: str, in_features: int, hidden: int, out_features: int = 1):
        super().__init__()
        self.method = check_method(method)
        self.hidden = hidden_layer(self.method, in_features, hidden)
        self.act = nn.ReLU()
        self.out = output_layer(self.method, hidden, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.act(self.hidden(x)))


def mlp(method: str, in_features: int, hidden: int = 100,
        out_features: int = 1) -> OneHiddenLayerMLP:
    """One-hidden-layer ReLU network under ``method`` (see :class:`OneHiddenLayerMLP`)."""
    return OneHiddenLayerMLP(method, in_features, hidden, out_features)
