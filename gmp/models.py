"""The convolutional networks of the paper's ImageNet experiments, under every parameterization.

Two architectures (Chen & Ge 2024, Sec. 4.2.2–4.2.3, App. C.2–C.3):

- ``vgg6`` (Table 2, ImageNet32): conv3×3 128, 128, maxpool; 256, 256, maxpool; 512, 512,
  maxpool; global average pool; linear. "Same" padding, ReLU after every conv.
- ``resnet18`` (Table 3, ImageNet): He et al. (2016), built from torchvision's
  :class:`~torchvision.models.resnet.BasicBlock`. At ``width=1`` the ``bn`` variant has the
  same modules, parameter names and shapes as ``torchvision.models.resnet18``.

Six parameterizations (``param``, :data:`gmp.params.ALL_PARAMS`) and two presets
(:data:`IMAGENET_PRESETS`, named after their source, as in :mod:`gmp.params`):

- ``"authors"`` (default): VGG-6 exactly as the authors' ``imagenet32.py`` builds it, layer by
  layer (:func:`gmp.layers.authors_conv`, :func:`gmp.layers.authors_classifier`): Keras
  initializations, their GmP conversion of a Glorot draw (``r = ‖w‖``, λ = 0) in the unit
  form ``r·ReLU(uᵀx + λ)``, a plain Dense classifier, BN with Keras' 0.99 / 1e-3, MBN without
  bias after the WN conv, and IMN *after every GmP ReLU, before max pooling* (their
  ``gmp_mn``; none before the classifier). ResNet-18 has no authors' code: under ``authors``
  it is the ``book-v1`` network with the authors' GmP layer initialization
  (``init="glorot-authors"``) and torchvision's plain classifier (no IMN before it), the GmP
  convs in weight form (torchvision's block applies its ReLU after the norm layer and the
  residual addition).
- ``"book-v1"``: the networks of this book's first edition (Remark 3.5's GmP init, weight
  form, GmP classifier, torch's default inits and BN settings, IMN before each GmP layer);
  built by :func:`gmp.layers.conv` and :func:`gmp.layers.classifier`.

Where the normalizers sit in ``book-v1`` (and in the ``authors`` ResNet-18):

- MBN and BN act on a conv's **output** (the pre-activation), before the ReLU and, in a
  residual block, before the addition — exactly where torchvision puts BatchNorm. The
  classifier of ``wn``/``wn_mbn`` is a weight-normalized linear layer without MBN: it has no
  ReLU after it, so there is no activation boundary to stabilise.
- IMN acts on a GmP layer's **input** (Remark 3.6): it re-centres the features a GmP unit
  sees, so the unit's boundary, which passes at distance ``|λ|`` from the origin, sits near
  the data. The first layer gets none (the images are already mean-subtracted by the data
  pipeline). In a ResNet BasicBlock that means IMN before ``conv1`` (the block input, the
  output of the previous block's ReLU), before ``conv2`` (after ``relu(conv1(x))``) and
  before the 1×1 ``downsample`` conv (the same block input; its IMN keeps its own running
  mean, identical to conv1's, so the torchvision block structure is unchanged). The
  identity shortcut carries the un-centred input: it has no weights, hence no boundary.
  IMN also precedes the classifier (after global average pooling of ReLU features).

``width`` scales every channel count (tests use tiny widths; the paper's nets have 1.0).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .layers import authors_classifier, authors_conv, classifier, conv, norm_layer
from .params import ALL_PARAMS, check_param, get_spec, names

__all__ = ["ARCHS", "DEFAULT_IMAGENET_PRESET", "IMAGENET_PRESETS", "PAPER_PARAMS", "VGG6",
           "build_model", "check_preset", "count_parameters", "resnet18", "vgg6"]

ARCHS: tuple[str, ...] = ("vgg6", "resnet18")
#: The variants each table of the paper reports.
PAPER_PARAMS: dict[str, tuple[str, ...]] = {"vgg6": ALL_PARAMS,
                                            "resnet18": ("bn", "wn_mbn", "gmp_imn")}


#: The presets of the ImageNet networks (see the module docstring), named after their source.
IMAGENET_PRESETS: tuple[str, ...] = ("authors", "book-v1")
DEFAULT_IMAGENET_PRESET = "authors"


def check_preset(preset: str | None) -> str:
    """``preset`` (default ``DEFAULT_IMAGENET_PRESET``), or a ValueError naming the
    valid choices."""
    p = DEFAULT_IMAGENET_PRESET if preset is None else str(preset).lower()
    if p not in IMAGENET_PRESETS:
        raise ValueError(f"unknown preset {preset!r} for the ImageNet networks; expected one "
                         f"of {IMAGENET_PRESETS}")
    return p


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


# --------------------------------------------------------------------------------------------
# VGG-6
# --------------------------------------------------------------------------------------------

class VGG6(nn.Module):
    """VGG-6 for 32×32 inputs: ``(N, 3, H, W) -> (N, num_classes)`` logits.

    Three stages of two 3×3 "same" convs + ReLU, each followed by 2×2 max pooling; then
    global average pooling and a linear classifier. Any ``H, W`` divisible by 8 works.
    ``preset``: ``"authors"`` (default) or ``"book-v1"`` (module docstring).
    """

    STAGES: tuple[int, ...] = (128, 256, 512)

    def __init__(self, param: str = "sp", num_classes: int = 1000, width: float = 1.0,
                 preset: str | None = None):
        super().__init__()
        self.param = check_param(param, names())
        self.preset = check_preset(preset)
        layers: list[nn.Module] = []
        c_in, first = 3, True
        for c in self.STAGES:
            c_out = _scaled(c, width)
            for _ in range(2):
                if self.preset == "authors":
                    layers += authors_conv(self.param, c_in, c_out, 3, padding=1)
                else:
                    layers += [conv(self.param, c_in, c_out, 3, padding=1, first=first),
                               nn.ReLU(inplace=True)]
                c_in, first = c_out, False
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = (authors_classifier(self.param, c_in, num_classes)
                   if self.preset == "authors" else classifier(self.param, c_in, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def vgg6(param: str = "sp", num_classes: int = 1000, width: float = 1.0,
         preset: str | None = None) -> VGG6:
    """VGG-6 of Table 2 under ``param`` and ``preset`` (see :class:`VGG6`)."""
    return VGG6(param, num_classes, width, preset)


# --------------------------------------------------------------------------------------------
# ResNet-18
# --------------------------------------------------------------------------------------------

def _resnet_skeleton(param: str, num_classes: int, width: float) -> nn.Module:
    """ResNet-18 with plain bias-free ``nn.Conv2d`` layers and ``param``'s norm layer,
    initialised as torchvision does (He-normal, fan-out)."""
    from torchvision.models.resnet import BasicBlock, ResNet

    norm = norm_layer(param)
    if width == 1.0:
        net = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes, norm_layer=norm)
    else:  # same structure, every channel count scaled
        net = ResNet.__new__(ResNet)
        nn.Module.__init__(net)
        planes = [_scaled(c, width) for c in (64, 128, 256, 512)]
        net._norm_layer, net.dilation, net.groups, net.base_width = norm, 1, 1, 64
        net.inplanes = planes[0]
        net.conv1 = nn.Conv2d(3, planes[0], 7, 2, 3, bias=False)
        net.bn1 = norm(planes[0])
        net.relu = nn.ReLU(inplace=True)
        net.maxpool = nn.MaxPool2d(3, 2, 1)
        net.layer1 = net._make_layer(BasicBlock, planes[0], 2)
        net.layer2 = net._make_layer(BasicBlock, planes[1], 2, stride=2)
        net.layer3 = net._make_layer(BasicBlock, planes[2], 2, stride=2)
        net.layer4 = net._make_layer(BasicBlock, planes[3], 2, stride=2)
        net.avgpool = nn.AdaptiveAvgPool2d(1)
        net.fc = nn.Linear(planes[3], num_classes)
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return net


def _swap_layers(net: nn.Module, param: str, preset: str = "book-v1") -> None:
    """Replace every ``nn.Conv2d`` and the ``fc`` of a ResNet skeleton by ``param``'s layer
    (:meth:`gmp.params.Parameterization.resnet_conv` and ``resnet_fc``; None keeps a layer).

    SP/WN convs keep the skeleton's He-normal weights (WN: ``g = ‖v‖`` at first, so the
    function is unchanged) and gain a zero bias; GmP layers are freshly initialised as in
    Remark 3.5 (direction uniform on the sphere, λ = 0, r = 1) under ``book-v1``, with the
    authors' initialization under ``authors`` (whose GmP variants keep the skeleton's plain
    ``fc``). ``bn`` keeps the skeleton; ``wn_mbn`` convs stay bias-free: the norm layer
    supplies the bias.
    """
    spec = get_spec(param)
    first = True
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Conv2d:
                new = spec.resnet_conv(child, first=first, preset=preset)
                if new is not None:
                    setattr(parent, name, new)
                first = False
    fc = spec.resnet_fc(net.fc, preset)
    if fc is not None:
        net.fc = fc


def resnet18(param: str = "bn", num_classes: int = 1000, width: float = 1.0,
             preset: str | None = None) -> nn.Module:
    """ResNet-18 of Table 3 under ``param``: ``(N, 3, H, W) -> (N, num_classes)`` logits.

    The ``bn`` variant is torchvision's ResNet-18 (``zero_init_residual=False``). Where MBN
    and IMN sit in a residual block is described in the module docstring.
    """
    p, pre = check_param(param, names()), check_preset(preset)
    net = _resnet_skeleton(p, num_classes, width)
    _swap_layers(net, p, pre)
    net.param, net.preset = p, pre
    return net


_BUILDERS: dict[str, Callable[..., nn.Module]] = {"vgg6": vgg6, "resnet18": resnet18}


def build_model(arch: str, param: str, num_classes: int = 1000, width: float = 1.0,
                preset: str | None = None) -> nn.Module:
    """Build ``arch`` (one of :data:`ARCHS`) under ``param`` (a registered param, e.g. one
    of :data:`gmp.params.ALL_PARAMS`) and
    ``preset`` (one of :data:`IMAGENET_PRESETS`, default ``"authors"``).

    Raises:
        ValueError: unknown architecture, parameterization or preset, ``num_classes < 1`` or
            ``width <= 0``.
    """
    a = str(arch).lower()
    if a not in _BUILDERS:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {ARCHS}")
    p = check_param(param, names())
    pre = check_preset(preset)
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if not (math.isfinite(width) and width > 0):
        raise ValueError(f"width must be a positive number, got {width}")
    return _BUILDERS[a](p, int(num_classes), float(width), pre)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars (for GmP: θ, λ and r of every unit)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
