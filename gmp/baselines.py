"""The one-hidden-layer networks of the paper's small experiments, under each parameterization.

``param`` is one of :data:`gmp.params.PARAMS` and ``preset`` one of :data:`gmp.params.PRESETS`
(default ``"authors"``: the networks of the authors' code). Under every preset:

- ``"sp"``: ``nn.Linear`` → ReLU → ``nn.Linear``;
- ``"wn"``: both layers weight-normalized with torch's own
  :func:`torch.nn.utils.parametrizations.weight_norm` (the authors' ``DenseWN`` read-out);
- ``"bn"``: ``nn.Linear`` → ``nn.BatchNorm1d`` on the pre-activation → ReLU → ``nn.Linear``;
- ``"gmp"``: a :class:`gmp.nn.GmPLinear` hidden layer, in the preset's unit form (the paper's
  ``r·ReLU(uᵀx + λ)`` has the ReLU inside the layer, and ``act`` is then the identity), and
  the preset's read-out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from .nn import GmPLinear
from .params import Preset, check_param, get_preset

__all__ = ["linear", "KerasBatchNorm1d", "hidden_layer",
           "output_layer", "OneHiddenLayerMLP", "mlp"]


@torch.no_grad()
def linear(in_features: int, out_features: int, init: str = "keras") -> nn.Linear:
    """``nn.Linear`` initialized as Keras' ``Dense`` (``"keras"``: Glorot-uniform weight, zero
    bias) or as torch does (``"torch"``)."""
    layer = nn.Linear(in_features, out_features)
    if init == "keras":
        nn.init.xavier_uniform_(layer.weight)
        layer.bias.zero_()
    elif init != "torch":
        raise ValueError(f"unknown init {init!r}; expected 'keras' or 'torch'")
    return layer


class KerasBatchNorm1d(nn.BatchNorm1d):
    """:class:`torch.nn.BatchNorm1d` whose running variance tracks the *biased* batch
    variance, as Keras' ``BatchNormalization`` does on ``(N, C)`` input (its non-fused path);
    torch's tracks the unbiased one. Training normalizes with the batch statistics as usual;
    evaluation uses the running estimates. ``momentum`` in torch's convention (Keras' 0.99 is
    0.01 here)."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return super().forward(x)
        if x.dim() != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"KerasBatchNorm1d expected input (N, {self.num_features}), got "
                             f"shape {tuple(x.shape)}")
        with torch.no_grad():
            self.running_mean.lerp_(x.mean(dim=0), self.momentum)
            self.running_var.lerp_(x.var(dim=0, unbiased=False), self.momentum)
            self.num_batches_tracked.add_(1)
        if x.shape[0] == 1:       # Keras normalizes a single row too: x - mean = 0, output β
            return self.bias + self.weight * (x - x)
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


def hidden_layer(param: str, in_features: int, out_features: int,
                 preset: str | Preset | None = None) -> nn.Module:
    """The hidden layer under ``param``: input ``(N, in)`` → ``(N, out)``.

    The pre-activation, except for GmP in the preset's ``"paper"`` unit form, whose layer
    includes its ReLU (``r·ReLU(uᵀx + λ)``); ``OneHiddenLayerMLP.act`` accounts for it.
    """
    p, pre = check_param(param), get_preset(preset)
    if p == "gmp":
        act = nn.ReLU() if pre.gmp_unit == "paper" else None
        return GmPLinear(in_features, out_features, init=pre.gmp_init, activation=act)
    lin = linear(in_features, out_features, pre.baseline_init)
    if p == "wn":
        return weight_norm(lin)
    if p == "bn":
        bn = KerasBatchNorm1d if pre.baseline_init == "keras" else nn.BatchNorm1d
        return nn.Sequential(lin, bn(out_features, eps=pre.bn_eps, momentum=pre.bn_momentum))
    return lin


def output_layer(param: str, in_features: int, out_features: int,
                 preset: str | Preset | None = None) -> nn.Module:
    """The linear read-out under ``param``: WN reads out with a WN layer, GmP with a plain
    layer (``"dense"``) or a GmP layer in weight form (``"gmp"``), SP and BN with a plain one."""
    p, pre = check_param(param), get_preset(preset)
    if p == "gmp" and pre.gmp_readout == "gmp":
        return GmPLinear(in_features, out_features, init=pre.gmp_init)
    lin = linear(in_features, out_features, pre.baseline_init)
    return weight_norm(lin) if p == "wn" else lin


class OneHiddenLayerMLP(nn.Module):
    """``x ↦ out(act(hidden(x)))``: input ``(N, in_features)``, output ``(N, out_features)``.

    ``self.hidden`` is the layer whose characteristic activation boundaries are studied;
    ``self.act`` is ReLU, or the identity when ``hidden`` includes its activation (GmP in the
    paper's unit form). ``self.param`` is the parameterization, ``self.preset`` the preset.
    """

    def __init__(self, param: str, in_features: int, hidden: int, out_features: int = 1,
                 preset: str | Preset | None = None):
        super().__init__()
        self.param = check_param(param)
        self.preset = get_preset(preset).name
        self.hidden = hidden_layer(self.param, in_features, hidden, preset)
        unit_form = isinstance(self.hidden, GmPLinear) and self.hidden.activation is not None
        self.act = nn.Identity() if unit_form else nn.ReLU()
        self.out = output_layer(self.param, hidden, out_features, preset)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.act(self.hidden(x)))


def mlp(param: str, in_features: int, hidden: int = 100, out_features: int = 1,
        preset: str | Preset | None = None) -> OneHiddenLayerMLP:
    """One-hidden-layer ReLU network under ``param`` and ``preset`` (default ``"authors"``).

    Random numbers come from torch's global generator (``torch.manual_seed`` fixes them)."""
    return OneHiddenLayerMLP(param, in_features, hidden, out_features, preset)
