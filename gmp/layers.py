"""What a layer is under each parameterization: the entry points.

A *param* (:mod:`gmp.params`) names how a layer's weights are parameterized, and its
:class:`~gmp.params.Parameterization` in the registry builds its layers: the factories here
ask it (:func:`gmp.params.get_spec`), and every network of the book is built from them:
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

from torch import nn

from .nn import KerasBatchNorm1d, keras_conv2d, linear
from .params import Preset, check_param, get_preset, get_spec, names

__all__ = ["linear", "KerasBatchNorm1d", "hidden_layer", "output_layer", "conv", "classifier",
           "norm_layer", "keras_conv2d", "authors_conv", "authors_classifier"]


def hidden_layer(param: str, in_features: int, out_features: int,
                 preset: str | Preset | None = None) -> nn.Module:
    """The hidden layer under ``param`` (a dense param, :data:`gmp.params.PARAMS`): input
    ``(N, in)`` → ``(N, out)``.

    The pre-activation, except for GmP in the preset's ``"paper"`` unit form, whose layer
    includes its ReLU (``r·ReLU(uᵀx + λ)``); ``OneHiddenLayerMLP.act`` accounts for it.
    """
    return get_spec(check_param(param)).hidden(in_features, out_features, get_preset(preset))


def output_layer(param: str, in_features: int, out_features: int,
                 preset: str | Preset | None = None) -> nn.Module:
    """The linear read-out ``(N, in) -> (N, out)`` under ``param``: WN reads out with a WN
    layer, GmP with a plain layer (``"dense"``) or a GmP layer in weight form (``"gmp"``),
    SP and BN with a plain one."""
    return get_spec(check_param(param)).readout(in_features, out_features, get_preset(preset))


def conv(param: str, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
         padding: int | str = 0, *, first: bool = False, gmp_init: str = "sphere") -> nn.Module:
    """A conv producing a pre-activation ``(N, C_in, H, W) -> (N, C_out, H', W')`` under
    ``param`` (one of :data:`gmp.params.ALL_PARAMS`), including the normalizer that belongs to
    it (the ``book-v1`` table above; where the normalizers sit: :mod:`gmp.models`).

    ``first``: the network's first layer (no IMN before it). ``gmp_init``: the GmP layers'
    ``init`` (:class:`~gmp.nn.GmPConv2d`)."""
    spec = get_spec(check_param(param, names()))
    return spec.conv(in_channels, out_channels, kernel_size, stride, padding, first=first,
                     gmp_init=gmp_init)


def classifier(param: str, in_features: int, num_classes: int) -> nn.Module:
    """The final linear layer ``(N, in_features) -> (N, num_classes)`` under ``param``."""
    return get_spec(check_param(param, names())).classifier(in_features, num_classes)


def norm_layer(param: str) -> Callable[[int], nn.Module]:
    """What follows a conv of a torchvision ResNet under ``param`` (its ``norm_layer``): BN,
    MBN, or nothing (``nn.Identity``)."""
    return get_spec(check_param(param, names())).norm_layer()


def authors_conv(param: str, in_channels: int, out_channels: int, kernel_size: int = 3,
                 padding: int = 1) -> list[nn.Module]:
    """One conv layer of the authors' VGG-6 under ``param``, with its activation and
    normalizer, in their order (the ``authors`` table above): modules that map
    ``(N, C_in, H, W)`` to the post-activation ``(N, C_out, H, W)``."""
    spec = get_spec(check_param(param, names()))
    return spec.authors_conv(in_channels, out_channels, kernel_size, padding)


def authors_classifier(param: str, in_features: int, num_classes: int) -> nn.Module:
    """The authors' read-out ``(N, in_features) -> (N, num_classes)``: Keras' ``Dense``
    (Glorot-uniform, zero bias), or its WN (their ``DenseWN``, ``g = ‖v‖``) for ``wn`` and
    ``wn_mbn``."""
    return get_spec(check_param(param, names())).authors_classifier(in_features, num_classes)
