"""The one-hidden-layer networks of the paper's small experiments, under each parameterization.

``param`` is one of :data:`gmp.params.PARAMS` and ``preset`` one of :data:`gmp.params.PRESETS`
(default ``"authors"``: the networks of the authors' code). The network is
``hidden → act → out`` with the layers of :func:`gmp.layers.hidden_layer` and
:func:`gmp.layers.output_layer`:

- ``"sp"``: ``nn.Linear`` → ReLU → ``nn.Linear``;
- ``"wn"``: both layers weight-normalized with torch's own
  :func:`torch.nn.utils.parametrizations.weight_norm` (the authors' ``DenseWN`` read-out);
- ``"bn"``: ``nn.Linear`` → BatchNorm on the pre-activation → ReLU → ``nn.Linear``;
- ``"gmp"``: a :class:`gmp.nn.GmPLinear` hidden layer, in the preset's unit form (the paper's
  ``r·ReLU(uᵀx + λ)`` has the ReLU inside the layer, and ``act`` is then the identity), and
  the preset's read-out.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .layers import hidden_layer, output_layer
from .nn import GmPLinear
from .params import Preset, check_param, get_preset

__all__ = ["OneHiddenLayerMLP", "mlp", "seeded_mlps"]


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


def seeded_mlps(param: str, in_features: int, hidden: int, seeds: Sequence[int], *,
                out_features: int = 1, preset: str | Preset | None = None,
                dtype: torch.dtype = torch.float32) -> list[OneHiddenLayerMLP]:
    """The members of a stack: network ``s`` is ``torch.manual_seed(seeds[s])`` then
    :func:`mlp`, in ``dtype``. The caller's global RNG state is kept."""
    models = []
    with torch.random.fork_rng(devices=[]):
        for seed in seeds:
            torch.manual_seed(int(seed))
            models.append(mlp(param, in_features, hidden, out_features, preset).to(dtype))
    return models
