"""Swap every ``nn.Linear`` / ``nn.Conv2d`` of a model for its GmP twin, and back.

``convert`` preserves the model's function exactly (up to float round-off): each layer's
weight ``w`` becomes ``r = ‖w‖``, ``θ = angles(w)``, ``λ = b/‖w‖``. ``revert`` turns GmP
layers back into plain ones, so a model trained with GmP ships with zero overhead.

Both work in place, all or nothing: every layer is checked and converted first, and the
model is modified only if none failed (a :class:`ConversionError` lists all failures).
A module registered at several places (shared weights) is replaced by one shared new module.
A parameter shared by *different* modules (tied weights, e.g. an output head tied to an
embedding) cannot stay tied once one side is re-parameterized, so such a layer is refused
with a :class:`ConversionError` that names every place the parameter is used.
Hooks registered on a replaced module do not carry over.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torch.nn.utils import parametrize

from .nn import _INITS, GmPConv2d, GmPLinear, InputMeanNorm

__all__ = ["convert", "revert", "ConversionError"]

# fn(qualified_name, module) -> replacement, or None to keep the module and visit its children
_Rule = Callable[[str, nn.Module], "nn.Module | None"]


class ConversionError(ValueError):
    """Raised when some layers of a model cannot be converted; lists every one of them."""


def _replace(model: nn.Module, fn: _Rule, what: str) -> nn.Module:
    """Apply ``fn`` to ``model`` and its descendants (pre-order, registration order).

    A replaced module's children are not visited. ``fn`` raising ValueError marks a failure.
    """
    failures: list[str] = []
    plan: list[tuple[nn.Module, str, nn.Module]] = []
    memo: dict[int, nn.Module | None] = {}

    def apply(name: str, m: nn.Module) -> nn.Module | None:
        if id(m) not in memo:
            try:
                new = fn(name, m)
            except ValueError as e:
                failures.append(f"  {name or '<model>'} ({type(m).__name__}): {e}")
                new = None
            if new is not None and new is not m:
                new.train(m.training)
            memo[id(m)] = new if new is not m else None
        return memo[id(m)]

    def visit(parent: nn.Module, prefix: str) -> None:
        # _modules, not named_children(): the latter skips repeated registrations
        for name, child in list(parent._modules.items()):
            if child is None:
                continue
            full = f"{prefix}.{name}" if prefix else name
            new = apply(full, child)
            if new is None:
                visit(child, full)
            else:
                plan.append((parent, name, new))

    root = apply("", model)
    if root is None:
        visit(model, "")
    if failures:
        raise ConversionError(f"{what}: {len(failures)} layer(s) could not be converted "
                              "(the model was not modified):\n" + "\n".join(failures))
    if root is not None:
        return root
    for parent, name, new in plan:
        setattr(parent, name, new)
    return model


_OTHER_WEIGHTED = (nn.modules.conv._ConvNd, nn.Bilinear)


def convert(model: nn.Module, *, imn: bool = False, skip_first: bool = True,
            init: str = "sphere", strict: bool = True) -> nn.Module:
    """Replace every ``nn.Linear``/``nn.Conv2d`` in ``model`` (in place) by a GmP layer.

    Args:
        model: any module; a bare ``nn.Linear`` or ``nn.Conv2d`` is converted and returned.
        imn: put :class:`~gmp.nn.InputMeanNorm` before every converted layer except the first
            (Remark 3.6), as ``nn.Sequential(InputMeanNorm, GmP layer)``. IMN subtracts a
            batch mean, so with ``imn=True`` the converted model's function differs from the
            original's by design. "First" is registration order, which usually but not
            necessarily is execution order.
        skip_first: with ``imn``, leave the first converted layer without IMN.
        init: ``init`` recorded on the new layers (used only by ``reset_parameters``).
        strict: raise for layers that look convertible but are not (see below). With
            ``strict=False`` they are left as they are.

    Returns:
        ``model`` (or the new layer when ``model`` itself is a Linear/Conv2d).

    Raises:
        ConversionError: listing every layer that cannot be converted: subclasses of
            Linear/Conv2d (custom forwards, e.g. ``nn.MultiheadAttention``'s out_proj),
            parametrized layers (``weight_norm``), uninitialized lazy layers, other
            convolutions (Conv1d/3d, transposed) and Bilinear (strict only), non-finite
            weights, or units with ``w = 0`` and ``b ≠ 0``. The model is left unchanged.
    """
    if init not in _INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {_INITS}")
    seen = 0
    users = _parameter_users(model)

    def fn(name: str, m: nn.Module) -> nn.Module | None:
        nonlocal seen
        if isinstance(m, (GmPLinear, GmPConv2d)):
            return m
        if isinstance(m, nn.modules.lazy.LazyModuleMixin) and m.has_uninitialized_params():
            raise ValueError("lazy layer with uninitialized parameters; run one forward first")
        if parametrize.is_parametrized(m):
            raise ValueError("layer carries torch parametrizations (e.g. weight_norm); remove "
                             "them first (torch.nn.utils.parametrize.remove_parametrizations)")
        if type(m) not in (nn.Linear, nn.Conv2d):
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                base = "Linear" if isinstance(m, nn.Linear) else "Conv2d"
                raise ValueError(f"subclass of nn.{base} (its forward or its users may rely on "
                                 "a .weight parameter); convert it by hand")
            if strict and isinstance(m, _OTHER_WEIGHTED):
                raise ValueError("only nn.Linear and nn.Conv2d have GmP versions; pass "
                                 "strict=False to leave this layer as it is")
            return None
        for pname, p in m.named_parameters(recurse=False):
            others = [u for mod, u in users[id(p)] if mod is not m]
            if others:
                raise ValueError(
                    f"its {pname} is tied to {', '.join(others)} (the same Parameter); GmP "
                    "would untie them, so untie them first or convert this layer by hand")
        new: nn.Module = (GmPLinear.from_linear(m, init=init) if isinstance(m, nn.Linear)
                          else GmPConv2d.from_conv(m, init=init))
        seen += 1
        if imn and not (skip_first and seen == 1):
            features = m.in_features if isinstance(m, nn.Linear) else m.in_channels
            new = nn.Sequential(InputMeanNorm(features, device=m.weight.device,
                                              dtype=m.weight.dtype), new)
        return new

    return _replace(model, fn, "gmp.convert")


def _parameter_users(model: nn.Module) -> dict[int, list[tuple[nn.Module, str]]]:
    """For every parameter of ``model`` (by ``id``), the modules holding it and its qualified
    names there, every registration counted (a tied parameter has several)."""
    users: dict[int, list[tuple[nn.Module, str]]] = {}
    for mname, mod in model.named_modules(remove_duplicate=False):
        for pname, p in mod._parameters.items():
            if p is not None:
                users.setdefault(id(p), []).append(
                    (mod, f"{mname}.{pname}" if mname else pname))
    return users


def revert(model: nn.Module) -> nn.Module:
    """Replace every GmP layer in ``model`` (in place) by the plain layer it computes.

    ``InputMeanNorm`` modules are kept: in eval mode they subtract a constant, which a user
    may fold into the following layer's bias. Returns the model (or the new layer when
    ``model`` itself is a GmP layer).
    """

    def fn(name: str, m: nn.Module) -> nn.Module | None:
        if isinstance(m, GmPLinear):
            return m.to_linear()
        if isinstance(m, GmPConv2d):
            return m.to_conv()
        return None

    return _replace(model, fn, "gmp.revert")
