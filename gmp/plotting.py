"""Drawing ReLU units and their characteristic activation boundaries (CABs) in R².

Chen & Ge 2024, Sec. 2.2 (Defs. 2.1-2.2) and Fig. 1. A unit ``z = s·ReLU(wᵀx + b)``
with input ``x ∈ R²`` is *active* on the half-plane ``{wᵀx + b > 0}``; its CAB is the line
``{wᵀx + b = 0}`` and the CAB's *spatial location* ``φ = -b·w/‖w‖²`` is the point of that line
nearest the origin. ``s`` is an output scale: 1 under SP, ``r`` under GmP, where the unit is
``r·ReLU(u(θ)ᵀx + λ)`` and its boundary is read from ``(u, λ)`` whatever the sign of ``r``.

The geometry (:func:`boundary_segment`, :func:`active_region`, :func:`location`) is plain
numpy and independent of matplotlib; the ``draw_*`` functions add artists to a given
``Axes`` and the ``*_figure`` functions build whole figures (used by the book and the labs).

A *box* is ``(xmin, xmax, ymin, ymax)``. Every function takes one unit: ``w`` of shape
``(2,)`` and a scalar ``b``; arrays are converted to float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .cab import cab_geometry, gmp_cab_geometry
from .params import LABELS

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .perturbation import PerturbationResult

__all__ = [
    "Box",
    "DEFAULT_BOX",
    "location",
    "gmp_unit",
    "boundary_segment",
    "active_region",
    "unit_output",
    "draw_unit",
    "draw_perturbation",
    "unit_figure",
    "explorer_figure",
    "auto_box",
    "perturbation_figure",
    "sphere_grid_figure",
    "step_turns_figure",
]

Box = tuple[float, float, float, float]
DEFAULT_BOX: Box = (-3.0, 3.0, -3.0, 3.0)

# Colours of the "before" and "after" states in perturbation plots (colour-blind safe pair).
_BEFORE, _AFTER = "#0072B2", "#D55E00"


def _unit(w, b) -> tuple[np.ndarray, float]:
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (2,):
        raise ValueError(f"expected a weight vector of shape (2,) (a unit with input in R²), "
                         f"got shape {w.shape}")
    b_arr = np.asarray(b, dtype=np.float64)
    if b_arr.size != 1:
        raise ValueError(f"expected a scalar bias, got shape {b_arr.shape}")
    return w, float(b_arr.reshape(()))


def _box(box: Sequence[float]) -> Box:
    if len(box) != 4:
        raise ValueError(f"box must be (xmin, xmax, ymin, ymax), got {box!r}")
    x0, x1, y0, y1 = (float(v) for v in box)
    if not (x0 < x1 and y0 < y1):
        raise ValueError(f"box must satisfy xmin < xmax and ymin < ymax, got {box!r}")
    return x0, x1, y0, y1


def location(w, b) -> np.ndarray:
    """Spatial location ``φ = -b·w/‖w‖²`` of the CAB of one unit, ``(2,)``.

    Raises:
        ValueError: if ``w = 0`` (the unit is constant and has no CAB).
    """
    w, b = _unit(w, b)
    if float(w @ w) == 0.0:
        raise ValueError("w = 0: the unit is constant (ReLU(b)) and has no boundary")
    return cab_geometry(w, np.asarray(b))[0]


def gmp_unit(theta: float, lam: float) -> tuple[np.ndarray, float]:
    """Direction ``u(θ) = (cos θ, sin θ)`` and offset ``λ`` of a GmP unit in R².

    The unit ``r·ReLU(uᵀx + λ)`` has CAB ``{uᵀx + λ = 0}`` at spatial location ``-λ·u``.
    """
    return np.array([np.cos(theta), np.sin(theta)], dtype=np.float64), float(lam)


def _box_corners(box: Box) -> np.ndarray:
    x0, x1, y0, y1 = box
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def active_region(w, b, box: Sequence[float] = DEFAULT_BOX) -> np.ndarray:
    """Polygon ``box ∩ {x : wᵀx + b ≥ 0}`` (the closed active half-plane), ``(k, 2)``.

    Vertices are in counter-clockwise order, ``k ∈ {0, 3, 4, 5}`` (``k = 0``: the unit is
    inactive on the whole box). One step of Sutherland–Hodgman clipping of the box.
    """
    w, b = _unit(w, b)
    corners = _box_corners(_box(box))
    s = corners @ w + b
    out: list[np.ndarray] = []
    for i in range(4):
        j = (i + 1) % 4
        if s[i] >= 0:
            out.append(corners[i])
        if (s[i] > 0 > s[j]) or (s[i] < 0 < s[j]):  # the edge crosses the boundary
            t = s[i] / (s[i] - s[j])
            out.append(corners[i] + t * (corners[j] - corners[i]))
    if len(out) < 3:  # an empty set, a single corner or an edge: no area
        return np.empty((0, 2), dtype=np.float64)
    return np.stack(out)


def boundary_segment(w, b, box: Sequence[float] = DEFAULT_BOX) -> np.ndarray | None:
    """The part of the CAB ``{wᵀx + b = 0}`` inside ``box``: endpoints ``(2, 2)`` or None.

    None when the line misses the box (or touches it in a single corner) or ``w = 0``.
    """
    w, b = _unit(w, b)
    if not np.any(w):
        return None
    corners = _box_corners(_box(box))
    s = corners @ w + b
    pts: list[np.ndarray] = []
    for i in range(4):
        j = (i + 1) % 4
        if s[i] == 0:
            pts.append(corners[i])
        elif s[i] * s[j] < 0:
            t = s[i] / (s[i] - s[j])
            pts.append(corners[i] + t * (corners[j] - corners[i]))
    if not pts:
        return None
    pts_arr = np.unique(np.round(np.stack(pts), 12), axis=0)
    if len(pts_arr) < 2:
        return None
    # The line meets a convex box in a segment: keep the two extreme points along it.
    along = pts_arr @ np.array([-w[1], w[0]])
    return pts_arr[[int(np.argmin(along)), int(np.argmax(along))]]


def unit_output(w, b, scale: float = 1.0, box: Sequence[float] = DEFAULT_BOX,
                resolution: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The unit's output ``scale·ReLU(wᵀx + b)`` on a grid over ``box``.

    Returns:
        ``(X, Y, Z)``, each ``(resolution, resolution)`` (``meshgrid`` layout, rows along y).
    """
    w, b = _unit(w, b)
    x0, x1, y0, y1 = _box(box)
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution}")
    X, Y = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    Z = float(scale) * np.maximum(w[0] * X + w[1] * Y + b, 0.0)
    return X, Y, Z


def _point_segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    den = float(ab @ ab)
    t = 0.0 if den == 0.0 else float(np.clip((p - a) @ ab / den, 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * ab)))


def _setup_axes(ax: Axes, box: Box) -> None:
    x0, x1, y0, y1 = box
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.axhline(0.0, color="0.8", lw=0.6, zorder=0)
    ax.axvline(0.0, color="0.8", lw=0.6, zorder=0)


def draw_unit(ax: Axes, w, b, *, box: Sequence[float] = DEFAULT_BOX, color: str = _BEFORE,
              label: str | None = None, shade: bool = True, show_location: bool = True,
              show_normal: bool = False, scale: float | None = None, linestyle: str = "-",
              alpha: float = 0.18) -> None:
    """Draw one unit on ``ax``: its active region, its CAB and its spatial location.

    Args:
        ax: matplotlib axes (limits and aspect are set to ``box``).
        w: ``(2,)`` weight (or GmP direction ``u``); b: scalar bias (or GmP ``λ``).
        shade: fill the active region ``{wᵀx + b > 0}``.
        show_location: draw the vector from the origin to ``φ`` and mark ``φ``.
        show_normal: draw the unit normal ``w/‖w‖`` at ``φ`` (it points into the active side).
        scale: if given, draw contour lines of the output ``scale·ReLU(wᵀx + b)``
            (GmP's ``r``): their spacing shows ``|scale|``, their labels its sign.
        linestyle, alpha: style of the line and of the shading.
    """
    w, b = _unit(w, b)
    bx = _box(box)
    _setup_axes(ax, bx)
    if shade:
        poly = active_region(w, b, bx)
        if len(poly):
            ax.fill(poly[:, 0], poly[:, 1], color=color, alpha=alpha, lw=0)
    if scale is not None:
        X, Y, Z = unit_output(w, b, scale, bx, resolution=160)
        extreme = float(Z.max() if scale > 0 else Z.min())
        if extreme != 0.0:  # level lines inside the active region (0 is the CAB itself)
            levels = np.sort(np.linspace(0.0, extreme, 7)[1:])
            cs = ax.contour(X, Y, Z, levels=levels, colors=color, linewidths=0.6, alpha=0.7)
            ax.clabel(cs, fontsize=7, fmt="%.2g")
    seg = boundary_segment(w, b, bx)
    if seg is not None:
        ax.plot(seg[:, 0], seg[:, 1], color=color, lw=2, ls=linestyle, label=label)
    elif label is not None:  # keep the legend entry even if the CAB is outside the box
        ax.plot([], [], color=color, lw=2, ls=linestyle, label=label)
    if not np.any(w):
        return
    phi = location(w, b)
    if show_location:
        ax.annotate("", xy=phi, xytext=(0.0, 0.0),
                    arrowprops={"arrowstyle": "->", "color": color, "lw": 1.2})
        ax.plot(*phi, "o", color=color, ms=4)
    if show_normal:
        span = min(bx[1] - bx[0], bx[3] - bx[2])
        tip = phi + 0.15 * span * w / np.linalg.norm(w)
        ax.annotate("", xy=tip, xytext=phi,
                    arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.2})


def unit_figure(w, b, *, box: Sequence[float] = DEFAULT_BOX, size: float = 3.6,
                dpi: int = 90) -> Figure:
    """Fig. 1(a)-style figure of one unit: active region, CAB, ``φ`` and the normal ``w``."""
    import matplotlib.pyplot as plt

    w, b = _unit(w, b)
    fig, ax = plt.subplots(figsize=(size, size), dpi=dpi, layout="constrained")
    draw_unit(ax, w, b, box=box, show_normal=True, label="CAB $w^\\top x+b=0$")
    phi = location(w, b)
    ax.annotate(r"$\phi$", xy=phi, xytext=(6, -12), textcoords="offset points")
    # Region labels: inside the box, on either side of the CAB, as far as possible from
    # the two arrows (origin → φ and the normal at φ).
    x0, x1, y0, y1 = _box(box)
    span = min(x1 - x0, y1 - y0)
    n_hat = w / np.linalg.norm(w)
    t_hat = np.array([-n_hat[1], n_hat[0]])
    arrows = [(np.zeros(2), phi), (phi, phi + 0.15 * span * n_hat)]
    for sign, text in ((1.0, "active\n$w^\\top x+b>0$"), (-1.0, "inactive\n$w^\\top x+b<0$")):
        best, best_d = None, -1.0
        for d in (0.15, 0.25, 0.35):
            for t in np.linspace(-0.45, 0.45, 19):
                p = phi + span * (sign * d * n_hat + t * t_hat)
                if not (x0 + 0.15 * span < p[0] < x1 - 0.15 * span
                        and y0 + 0.1 * span < p[1] < y1 - 0.1 * span):
                    continue
                dist = min(_point_segment_distance(p, a0, a1) for a0, a1 in arrows)
                if dist > best_d:
                    best, best_d = p, dist
        if best is not None:
            ax.text(best[0], best[1], text, ha="center", va="center", fontsize=8)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.legend(loc="lower left", fontsize=8)
    return fig


def explorer_figure(sp: tuple[float, float, float], gmp: tuple[float, float, float], *,
                    box: Sequence[float] = DEFAULT_BOX, dpi: int = 80) -> Figure:
    """Two panels for the CAB explorer: SP ``(w1, w2, b)`` and GmP ``(θ, λ, r)``.

    Each panel shades the active region, draws the CAB, ``φ`` and the normal, and draws
    contour lines of the unit's output (``ReLU(wᵀx+b)``, resp. ``r·ReLU(u(θ)ᵀx+λ)``).
    An SP unit with ``w = 0`` has no CAB: the panel says so.
    """
    import matplotlib.pyplot as plt

    w1, w2, b = sp
    theta, lam, r = gmp
    fig, axes = plt.subplots(1, 2, figsize=(7.6, 3.9), dpi=dpi, layout="constrained")
    w = np.array([w1, w2], dtype=np.float64)
    if np.any(w):
        draw_unit(axes[0], w, b, box=box, show_normal=True, scale=1.0)
        phi = location(w, b)
        axes[0].set_title(f"SP: $\\|w\\|$={np.linalg.norm(w):.2f}, "
                          f"$\\phi$=({phi[0]:.2f}, {phi[1]:.2f})", fontsize=9)
    else:
        _setup_axes(axes[0], _box(box))
        axes[0].text(0.5, 0.5, "w = 0: constant unit, no CAB", ha="center",
                     transform=axes[0].transAxes)
        axes[0].set_title("SP", fontsize=9)
    u, lam = gmp_unit(theta, lam)
    draw_unit(axes[1], u, lam, box=box, color=_AFTER, show_normal=True, scale=r)
    phi = gmp_cab_geometry(np.asarray(lam), u)[0]
    axes[1].set_title(f"GmP: $|\\lambda|$={abs(lam):.2f}, "
                      f"$\\phi$=({phi[0]:.2f}, {phi[1]:.2f}), r={r:.2f}", fontsize=9)
    for ax in axes:
        ax.set_xlabel("$x_1$")
    axes[0].set_ylabel("$x_2$")
    return fig


def draw_perturbation(ax: Axes, result: PerturbationResult, unit: int = 0, *,
                      box: Sequence[float] = DEFAULT_BOX, legend: bool = False) -> None:
    """Draw one unit of a :class:`gmp.perturbation.PerturbationResult` before and after."""
    m = result.weight_before.shape[0]
    if not 0 <= unit < m:
        raise IndexError(f"unit {unit} out of range for a result with {m} units")
    if result.weight_before.shape[1] != 2:
        raise ValueError("draw_perturbation draws units with input in R² only, got n = "
                         f"{result.weight_before.shape[1]}")
    draw_unit(ax, result.weight_before[unit], result.bias_before[unit], box=box,
              color=_BEFORE, label="before", alpha=0.12)
    draw_unit(ax, result.weight_after[unit], result.bias_after[unit], box=box,
              color=_AFTER, label="after", linestyle="--", alpha=0.12)
    if legend:
        ax.legend(loc="lower left", fontsize=7)


def auto_box(points: np.ndarray, margin: float = 1.5, minimum: float = 1.0) -> Box:
    """Square box centred at the origin containing ``points`` ``(k, 2)`` with a margin.

    Non-finite points are ignored; the half-width is at least ``minimum``.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    half = max(minimum, margin * float(np.abs(pts).max())) if len(pts) else minimum
    return (-half, half, -half, half)


def perturbation_figure(results: Sequence[Sequence[PerturbationResult]], unit: int = 0, *,
                        box: Sequence[float] | None = DEFAULT_BOX, size: float = 1.9,
                        params_as_columns: bool = False, dpi: int = 80) -> Figure:
    """Grid of before/after CABs of one unit for several parameterizations and perturbations δ.

    Fig. 1(b–e) of the paper: by default one row per parameterization and one column per δ.

    Args:
        results: ``results[i][j]`` is the result of parameterization ``i`` at perturbation
            ``j``, e.g. from :func:`gmp.perturbation.perturbation_grid`.
        unit: which unit of each result to draw.
        box: the drawing box, or None for one box fitted to every spatial location drawn
            (:func:`auto_box`).
        params_as_columns: transpose the grid (one column per parameterization, one row per δ).
    """
    import matplotlib.pyplot as plt

    rows = len(results)
    cols = len(results[0]) if rows else 0
    if rows == 0 or cols == 0 or any(len(r) != cols for r in results):
        raise ValueError("results must be a non-empty rectangular grid (params × deltas)")
    m = results[0][0].weight_before.shape[0]
    if not 0 <= unit < m:
        raise IndexError(f"unit {unit} out of range for results with {m} units")
    if box is None:
        box = auto_box(np.concatenate([np.stack([r.location_before[unit], r.location_after[unit]])
                                       for row in results for r in row]))
    nr, nc = (cols, rows) if params_as_columns else (rows, cols)
    fig, axes = plt.subplots(nr, nc, figsize=(size * nc, size * nr), dpi=dpi,
                             squeeze=False, sharex=True, sharey=True, layout="constrained")
    for i, row in enumerate(results):
        for j, res in enumerate(row):
            r_, c_ = (j, i) if params_as_columns else (i, j)
            ax = axes[r_, c_]
            draw_perturbation(ax, res, unit, box=box, legend=(r_ == 0 and c_ == 0))
            ang = float(np.degrees(res.angle_change[unit]))
            ax.text(0.97, 0.95, f"{ang:.1f}°", transform=ax.transAxes, ha="right",
                    va="top", fontsize=8)
            name = LABELS.get(res.param, res.param)
            top, side = (name, f"δ = {res.delta:g}") if params_as_columns else \
                (f"δ = {res.delta:g}", name)
            if r_ == 0:
                ax.set_title(top, fontsize=9)
            if c_ == 0:
                ax.set_ylabel(side, fontsize=9)
            ax.tick_params(labelsize=7)
    return fig


def sphere_grid_figure(u: np.ndarray, n_lines: int = 4) -> Figure:
    """Hyperspherical coordinates on ``S²`` (left) and ``G_ii`` as the tail mass of ``u``.

    Left: lines of constant ``θ₁`` (circles around the ``x₁`` axis, ``u₁ = cos θ₁``) and of
    constant ``θ₂`` (half-circles from ``e₁`` to ``-e₁``), the coordinate grid of Eq. (10)
    for ``n = 3``. Right: for one unit vector ``u`` of shape ``(n,)``, the squares ``u_k²``
    stacked from the last coordinate inwards; the height of the stack starting at ``k = i``
    is ``G_ii = Σ_{k≥i} u_k² = ∏_{j<i} sin²θ_j`` (Eq. 26), marked with dots.
    """
    import matplotlib.pyplot as plt

    u = np.asarray(u, dtype=np.float64).reshape(-1)
    if u.size < 2 or not np.isclose(np.linalg.norm(u), 1.0):
        raise ValueError(f"u must be a unit vector with at least 2 entries, got {u}")
    fig = plt.figure(figsize=(8.0, 3.4), dpi=85, layout="constrained")
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    t = np.linspace(0, 2 * np.pi, 181)
    for th1 in np.linspace(0, np.pi, n_lines + 1)[1:-1]:   # constant θ₁
        ax.plot(np.full_like(t, np.cos(th1)), np.sin(th1) * np.cos(t), np.sin(th1) * np.sin(t),
                color="C0", lw=0.8)
    s_ = np.linspace(0, np.pi, 91)
    for th2 in np.linspace(-np.pi, np.pi, 2 * n_lines + 1)[:-1]:  # constant θ₂
        ax.plot(np.cos(s_), np.sin(s_) * np.cos(th2), np.sin(s_) * np.sin(th2),
                color="C1", lw=0.8)
    ax.set(xlabel="$x_1$", ylabel="$x_2$", box_aspect=(1, 1, 1))   # x₃ up (no label:
    # it would run into the next panel)
    ax.view_init(elev=20, azim=-35)
    ax.set_title("constant θ₁ (blue), constant θ₂ (orange); $x_3$ up", fontsize=9)
    ax2 = fig.add_subplot(1, 2, 2)
    n = u.size
    sq = u**2
    tail = np.cumsum(sq[::-1])[::-1]                      # Σ_{k≥i} u_k²
    for k in range(n - 1, -1, -1):  # u_k² sits on the later coordinates, in every bar i ≤ k
        below = tail[k + 1] if k + 1 < n else 0.0
        ax2.bar(np.arange(1, k + 2), sq[k], bottom=below, color=f"C{k % 10}", width=0.7,
                label=f"$u_{{{k + 1}}}^2$" if n <= 10 else None)
    ax2.plot(np.arange(1, n), tail[: n - 1], "ko", ms=4, label="$G_{ii}$")
    ax2.set(xlabel="i", ylabel="tail mass", ylim=(0, 1.05), xticks=np.arange(1, n + 1))
    ax2.set_title(f"$G_{{ii}} = \\sum_{{k \\geq i}} u_k^2$ (n = {n})", fontsize=9)
    ax2.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def step_turns_figure(runs: Sequence, bounds: dict[str, float] | None = None) -> Figure:
    """Per-step CAB turns of :func:`gmp.perturbation.optimizer_step_turns` runs.

    One panel per ``init_scale`` group (runs are grouped by their ``label`` attribute if
    present, else by order of ``(param, optimizer)``); each run draws the largest turn of any
    unit at each step (degrees, log scale); GmP runs are labelled with their form
    (``"GmP, weight form"``, ``"GmP, unit form"``), whose turns differ once ``r`` changes
    sign. ``bounds`` maps a legend label to a horizontal line (radians), e.g.
    ``{"lr·sqrt(n-1)": 0.055}``.
    """
    import matplotlib.pyplot as plt

    groups: dict[str, list] = {}
    for label, run in runs:
        groups.setdefault(label, []).append(run)
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.0), dpi=85,
                             layout="constrained", squeeze=False)
    for ax, (label, group) in zip(axes[0], groups.items(), strict=True):
        for run in group:
            name = LABELS.get(run.param, run.param)
            form = getattr(run, "form", "")
            ax.plot(np.degrees(run.turn.max(axis=1)), lw=0.9,
                    ls="--" if form == "unit" else "-",
                    label=f"{name}, {form} form" if form else name)
        for k, (name, value) in enumerate((bounds or {}).items()):
            ax.axhline(np.degrees(value), color="k", lw=0.8, ls=("--", ":")[k % 2], label=name)
        ax.set(yscale="log", xlabel="step", ylabel="largest turn of a CAB (degrees)",
               title=label)
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7)
    return fig
