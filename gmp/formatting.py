"""Typesetting the SymPy derivations of :mod:`gmp.symbolic` so that they fit the book's column.

A :class:`gmp.symbolic.Derivation` knows its identity ``lhs = rhs`` as one LaTeX line
(:meth:`~gmp.symbolic.Derivation.latex`), which for anything but the smallest case is wider
than the page and cannot wrap (MathJax does not break lines in its HTML output).
:func:`aligned` writes the same identity as an ``aligned`` block with one summand per line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sympy as sp

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .symbolic import Derivation

__all__ = ["aligned", "summand_lines"]


def summand_lines(expr: sp.Basic, first: str = "") -> list[str]:
    """LaTeX of ``expr`` one summand per line; the first line starts with ``first``.

    A matrix or a single term is one line. Signs go to the front of their line (``+ a``,
    ``- b``).
    """
    terms = sp.Add.make_args(expr) if isinstance(expr, sp.Add) else (expr,)
    lines = []
    for k, t in enumerate(terms):
        if k == 0:
            lines.append(f"{first} {sp.latex(t)}".strip())
        elif t.could_extract_minus_sign():
            lines.append(f"- {sp.latex(-t)}")
        else:
            lines.append(f"+ {sp.latex(t)}")
    return lines


def aligned(d: Derivation) -> str:
    """``d.lhs = d.rhs`` as a LaTeX ``aligned`` block, one summand per line.

    The relation is ``=`` when SymPy verified the identity and ``\\overset{?}{=}`` when not,
    as in :meth:`gmp.symbolic.Derivation.latex`.
    """
    rel = "=" if d.holds else r"\overset{?}{=}"
    lines = summand_lines(d.lhs) + summand_lines(d.rhs, first=rel)
    body = r" \\ ".join("&" + line for line in lines)
    return r"\begin{aligned}" + body + r"\end{aligned}"

