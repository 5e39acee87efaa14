"""Swap every ``nn.Linear`` / ``nn.Conv2d`` of a model for its GmP twin, and back.

``convert`` preserves the model's function exactly (up to float round-off): each layer's
weight ``w`` becomes ``r = ‖w‖``, ``θ = angles(w)``, ``λ = b/‖w‖``. ``revert`` turns GmP
layers back into plain ones, so a model trained with GmP ships with zero overhead.
"""

from __future__ import annotations

from torch import nn

from .nn import GmPConv2d, GmPLinear, InputMeanNorm

__all__ = ["convert", "revert", "ConversionError"]


class ConversionError(ValueError):
    """Raised when some layers of a model cannot be converted; lists every one of them."""


def _replace(model: nn.Module, fn, what: str) -> nn.Module:
    """Apply ``fn(name, module) -> module | None`` to every descendant; ``None`` keeps it."""
    failures: list[str] = []
    replaced = 0

    def visit(parent: nn.Module, prefix: str) -> None:
        nonlocal replaced
        for name, child in list(parent.named_children()):
            full = f"{prefix}.{name}" if prefix else name
            try:
                new = fn(full, child)
            except ValueError as e:
                failures.append(f"  {full} ({type(child).__name__}): {e}")
                continue
            if new is None:
                visit(child, full)
            else:
                setattr(parent, name, new)
                replaced += 1

    root = fn("", model) if not list(model.children()) else None
    if root is not None:
        return root
    visit(model, "")
    if failures:
        raise ConversionError(f"{what}: {len(failures)} layer(s) could not be converted:\n"
                              + "\n".join(failures))
    return model


def convert(model: nn.Module, *, imn: bool = False, skip_first: bool = True,
            init: str = "sphere") -> nn.Module:
    """Replace every ``nn.Linear``/``nn.Conv2d`` in ``model`` (in place) by a GmP layer.

    Args:
        model: any module; a bare ``nn.Linear`` or ``nn.Conv2d`` is converted and returned.
        imn: insert :class:`InputMeanNorm` before every converted layer except the first
            (Remark 3.6). IMN subtracts a batch mean, so with ``imn=True`` the converted
            model's training-mode output differs from the original's by design.
        skip_first: with ``imn``, leave the first converted layer without IMN.
        init: ``init`` recorded on the new layers (used only by ``reset_parameters``).

    Raises:
        ConversionError: listing every layer that could not be converted (subclasses of
            Linear/Conv2d with custom forwards, parametrized layers, non-finite weights, or
            units with ``w = 0`` and ``b ≠ 0``). The model is then left partly converted.
    """
    seen = 0

    def fn(name: str, m: nn.Module):
        nonlocal seen
        if isinstance(m, (GmPLinear, GmPConv2d)):
            return m
        if type(m) not in (nn.Linear, nn.Conv2d):
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                raise ValueError(f"subclass {type(m).__name__} of {type(m).__mro__[1].__name__} "
                                 "has a custom forward; convert it by hand")
            return None
        if hasattr(m, "parametrizations"):
            raise ValueError("layer carries torch parametrizations (e.g. weight_norm); "
                             "remove them first (torch.nn.utils.parametrize.remove_parametrizations)")
        new = (GmPLinear.from_linear(m, init=init) if isinstance(m, nn.Linear)
               else GmPConv2d.from_conv(m, init=init))
        seen += 1
        if imn and not (skip_first and seen == 1):
            features = m.in_features if isinstance(m, nn.Linear) else m.in_channels
            return nn.Sequential(InputMeanNorm(features, device=m.weight.device,
                                               dtype=m.weight.dtype), new)
        return new

    return _replace(model, fn, "gmp.convert")


def revert(model: nn.Module) -> nn.Module:
    """Replace every GmP layer in ``model`` (in place) by the plain layer it computes.

    ``InputMeanNorm`` modules are kept: in eval mode they subtract a constant, which a user
    may fold into the following layer's bias. Returns the model (or the new layer when
    ``model`` itself is a GmP layer).
    """

    def fn(name: str, m: nn.Module):
        if isinstance(m, GmPLinear):
            return m.to_linear()
        if isinstance(m, GmPConv2d):
            return m.to_conv()
        return None

    return _replace(model, fn, "gmp.revert")
