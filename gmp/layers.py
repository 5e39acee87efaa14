"""What a layer is under each parameterization: the one place that decides.

A *param* (:mod:`gmp.params`) names how a layer's weights are parameterized; the factories here
turn it into modules, and every network of the book is built from them:
:mod:`gmp.baselines` (the small experiments and UCI) from :func:`hidden_layer` and
:func:`output_layer`, :mod:`gmp.models` (the ImageNet networks) from :func:`conv`,
:func:`classifier` and :func:`norm_layer`.

Dense layers of the small experiments, under a *preset* (:data:`gmp.params.PRESETS`; default
``"authors"``, the networks of the authors' code):

- ``"sp"``: ``nn.Linear``, initialized as Keras' ``Dense`` or as torch does (:func:`linear`);
- ``"wn"``: the same layer under torch's own
  :func:`torch.nn.utils.parametrizations.weight_norm` (also the read-out: the authors'
  ``DenseWN``);
- ``"bn"``: ``nn.Linear`` then BatchNorm on the pre-activation (:class:`KerasBatchNorm1d` in
  the Keras presets); a plain read-out;
- ``"gmp"``: :class:`gmp.nn.GmPLinear` in the preset's unit form (the paper's
  ``r·ReLU(uᵀx + λ)`` has the ReLU inside the layer) and the preset's read-out.

Convolutions and classifiers of the ImageNet networks (Sec. 4.2.2–4.2.3) come in two
presets (:data:`gmp.models.IMAGENET_PRESETS`). ``"authors"`` (the default of VGG-6) is what
the authors' ``imagenet32.py`` and ``models.py`` build, layer by layer
(:func:`authors_conv`, :func:`authors_classifier`):

===========  ==================================================================================
``sp``       Keras ``Conv2D`` (Glorot-uniform, zero bias), ReLU
``wn``       their ``Conv2DWN``: weight norm of a Glorot draw with bound
             ``sqrt(6/(k²·C_in + C_out))``, ``g = ‖v‖``, zero bias; ReLU
``wn_mbn``   the same WN conv, :class:`~gmp.nn.MeanOnlyBatchNorm` without bias (their
             ``center=False``; moving average 0.99), ReLU. (Their WN conv's bias is dropped:
             the mean subtraction that follows cancels it, so it never trains.)
``bn``       Keras ``Conv2D`` without its (cancelled) bias, BatchNorm (Keras 0.99, 1e-3), ReLU
``gmp``      their ``Conv2DReparam``: :class:`~gmp.nn.GmPConv2d` with
             ``init="glorot-authors"`` in unit form ``r·ReLU(uᵀx + λ)``
``gmp_imn``  the same, then :class:`~gmp.nn.InputMeanNorm` (moving average 0.99) on the
             unit's output: the mean is removed after every GmP ReLU, before max pooling
===========  ==================================================================================

The classifier is Keras' ``Dense`` (Glorot-uniform, zero bias) for every param but ``wn`` and
``wn_mbn``, whose ``DenseWN`` is the WN of such a layer. The authors' mean removal divides by
``sqrt(1 + 1e-6)`` (its variance is fixed to 1 with ε = 1e-6); that factor is left out here.

``"book-v1"`` (this book's first edition, kept as a named variant) is :func:`conv` and
:func:`classifier`:

===========  ==================================================================================
``sp``       ``nn.Conv2d`` / ``nn.Linear`` with bias
``wn``       torch's ``weight_norm`` parametrization on the same layers
``wn_mbn``   ``weight_norm`` conv without bias, then :class:`~gmp.nn.MeanOnlyBatchNorm`
``bn``       conv without bias, then ``nn.BatchNorm2d`` (classifier: plain ``nn.Linear``)
``gmp``      :class:`~gmp.nn.GmPConv2d` / :class:`~gmp.nn.GmPLinear`
``gmp_imn``  GmP layers, each after the first preceded by :class:`~gmp.nn.InputMeanNorm`
===========  ==================================================================================
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from .nn import GmPConv2d, GmPLinear, InputMeanNorm, MeanOnlyBatchNorm
from .params import ALL_PARAMS, Preset, check_param, get_preset

__all__ = ["linear", "KerasBatchNorm1d", "hidden_layer", "output_layer", "conv", "classifier",
           "norm_layer", "keras_conv2d", "authors_conv", "authors_classifier"]


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


def conv(param: str, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
         padding: int | str = 0, *, first: bool = False, gmp_init: str = "sphere") -> nn.Module:
    """A conv producing a pre-activation ``(N, C_in, H, W) -> (N, C_out, H', W')`` under
    ``param`` (one of :data:`gmp.params.ALL_PARAMS`), including the normalizer that belongs to
    it (the ``book-v1`` table above; where the normalizers sit: :mod:`gmp.models`).

    ``first``: the network's first layer (no IMN before it). ``gmp_init``: the GmP layers'
    ``init`` (:class:`~gmp.nn.GmPConv2d`)."""
    p = check_param(param, ALL_PARAMS)
    args = (in_channels, out_channels, kernel_size, stride, padding)
    if p == "sp":
        return nn.Conv2d(*args, bias=True)
    if p == "wn":
        return weight_norm(nn.Conv2d(*args, bias=True))
    if p == "wn_mbn":
        return nn.Sequential(weight_norm(nn.Conv2d(*args, bias=False)),
                             MeanOnlyBatchNorm(out_channels))
    if p == "bn":
        return nn.Sequential(nn.Conv2d(*args, bias=False), nn.BatchNorm2d(out_channels))
    layer = GmPConv2d(*args, bias=True, init=gmp_init)  # type: ignore[arg-type]
    if p == "gmp_imn" and not first:
        return nn.Sequential(InputMeanNorm(in_channels), layer)
    return layer


def classifier(param: str, in_features: int, num_classes: int) -> nn.Module:
    """The final linear layer ``(N, in_features) -> (N, num_classes)`` under ``param``."""
    p = check_param(param, ALL_PARAMS)
    if p in ("sp", "bn"):
        return nn.Linear(in_features, num_classes)
    if p in ("wn", "wn_mbn"):
        return weight_norm(nn.Linear(in_features, num_classes))
    layer = GmPLinear(in_features, num_classes)
    return nn.Sequential(InputMeanNorm(in_features), layer) if p == "gmp_imn" else layer


def norm_layer(param: str) -> Callable[[int], nn.Module]:
    """What follows a conv of a torchvision ResNet under ``param`` (its ``norm_layer``): BN,
    MBN, or nothing (``nn.Identity``)."""
    param = check_param(param, ALL_PARAMS)
    if param == "bn":
        return nn.BatchNorm2d
    if param == "wn_mbn":
        return MeanOnlyBatchNorm
    return nn.Identity


# Keras' BatchNormalization / the authors' MeanOnlyBatchNormalization: moving average 0.99
# (torch's momentum 0.01), BN epsilon 1e-3.
_KERAS_MOMENTUM, _KERAS_BN_EPS = 0.01, 1e-3


@torch.no_grad()
def keras_conv2d(in_channels: int, out_channels: int, kernel_size: int, padding: int = 0, *,
                 bias: bool = True, fan_out: str = "keras") -> nn.Conv2d:
    """``nn.Conv2d`` ``(N, C_in, H, W) -> (N, C_out, H', W')`` with a Glorot-uniform weight and
    zero bias, as the authors' Keras code draws it.

    ``fan_out="keras"``: Keras' ``Conv2D`` (bound ``sqrt(6/(k²·C_in + k²·C_out))``);
    ``"units"``: their ``GlorotUniformHyperWN`` of ``Conv2DWN`` (bound
    ``sqrt(6/(k²·C_in + C_out))``)."""
    layer = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=bias)
    fan_in = in_channels * kernel_size * kernel_size
    if fan_out == "keras":
        out = out_channels * kernel_size * kernel_size
    elif fan_out == "units":
        out = out_channels
    else:
        raise ValueError(f"unknown fan_out {fan_out!r}; expected 'keras' or 'units'")
    bound = (6.0 / (fan_in + out)) ** 0.5
    layer.weight.uniform_(-bound, bound)
    if layer.bias is not None:
        layer.bias.zero_()
    return layer


def authors_conv(param: str, in_channels: int, out_channels: int, kernel_size: int = 3,
                 padding: int = 1) -> list[nn.Module]:
    """One conv layer of the authors' VGG-6 under ``param``, with its activation and
    normalizer, in their order (the ``authors`` table above): modules that map
    ``(N, C_in, H, W)`` to the post-activation ``(N, C_out, H, W)``."""
    p = check_param(param, ALL_PARAMS)
    args = (in_channels, out_channels, kernel_size, padding)
    if p == "sp":
        return [keras_conv2d(*args), nn.ReLU(inplace=True)]
    if p == "wn":
        return [weight_norm(keras_conv2d(*args, fan_out="units")), nn.ReLU(inplace=True)]
    if p == "wn_mbn":
        return [weight_norm(keras_conv2d(*args, bias=False, fan_out="units")),
                MeanOnlyBatchNorm(out_channels, momentum=_KERAS_MOMENTUM, bias=False),
                nn.ReLU(inplace=True)]
    if p == "bn":
        return [keras_conv2d(*args, bias=False),
                nn.BatchNorm2d(out_channels, eps=_KERAS_BN_EPS, momentum=_KERAS_MOMENTUM),
                nn.ReLU(inplace=True)]
    layer = GmPConv2d(in_channels, out_channels, kernel_size, padding=padding,
                      init="glorot-authors", activation=nn.ReLU())
    if p == "gmp_imn":
        return [layer, InputMeanNorm(out_channels, momentum=_KERAS_MOMENTUM)]
    return [layer]


def authors_classifier(param: str, in_features: int, num_classes: int) -> nn.Module:
    """The authors' read-out ``(N, in_features) -> (N, num_classes)``: Keras' ``Dense``
    (Glorot-uniform, zero bias), or its WN (their ``DenseWN``, ``g = ‖v‖``) for ``wn`` and
    ``wn_mbn``."""
    p = check_param(param, ALL_PARAMS)
    lin = linear(in_features, num_classes, "keras")
    return weight_norm(lin) if p in ("wn", "wn_mbn") else lin
