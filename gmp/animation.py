"""Kernel-free interactive figures: a slider and play buttons over precomputed frames.

The book's HTML is static and offline: no kernel, no widget JavaScript, no CDN. What a
reader can still do there is scrub through frames that were drawn when the page was built.
:func:`scrubber` renders a matplotlib animation with matplotlib's own
:meth:`~matplotlib.animation.Animation.to_jshtml` (every frame embedded as a PNG, a slider
and play buttons in a few lines of inline JavaScript) and makes the result offline
(:func:`offline`): the Font Awesome stylesheet that ``to_jshtml`` links from a CDN is
dropped and its button icons are replaced by plain Unicode characters.

The figures of the labs and chapters (Fig. 1 and Fig. 2 of Chen & Ge 2024 in motion):

- :func:`cab_explorer_scrubber`: one unit under SP and the same unit under GmP while ``b``,
  the direction of ``w`` or its length changes (Defs. 2.1-2.2, Sec. 3.2);
- :func:`perturbation_scrubber`: one unit under SP, WN, BN and GmP before and after a
  perturbation ``δ`` while ``δ`` or the weight scale ``σ`` changes (Fig. 1(b-e), Prop. 2.3);
- :func:`hypersphere_scrubber`: ``u(θ)`` on ``S²`` and the metric factors
  ``G_ii = ∏_{j<i} sin²θ_j`` while ``θ₁`` sweeps from 0 to π (Sec. 3.1, Eq. 10).

(The Levy training run scrubbed epoch by epoch needs :mod:`gmp.experiments`, a layer below:
:func:`gmp.experiments.figures.levy_training_scrubber`.)

Keep frames few and small: each is a PNG inside the page (about 20-40 kB at 100 dpi and
6.8 in wide). :attr:`Scrubber.nbytes` reports the size.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .params import LABELS, PARAMS
from .plotting import DEFAULT_BOX, draw_perturbation, draw_unit, gmp_unit, location

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.figure import Figure

__all__ = [
    "WIDTH",
    "DPI",
    "Scrubber",
    "offline",
    "scrubber",
    "cab_explorer_scrubber",
    "perturbation_scrubber",
    "hypersphere_scrubber",
]

#: Width of the frames in inches (680 px at :data:`DPI`, the book's content column).
WIDTH = 6.8
#: Resolution of the frames in dots per inch.
DPI = 100

# Button icons of matplotlib's HTML animation (Font Awesome 4 class -> Unicode character).
_ICONS = {
    "fa-minus": "−", "fa-fast-backward": "|◀◀", "fa-step-backward": "◀|",
    "fa-play fa-flip-horizontal": "◀", "fa-pause": "▮▮", "fa-play": "▶",
    "fa-step-forward": "|▶", "fa-fast-forward": "▶▶|", "fa-plus": "+",
}
_ICON = re.compile(r'<i class="fa ([^"]+)"></i>')
_LINK = re.compile(r"<link[^>]*font-awesome[^>]*>\s*", re.IGNORECASE)
_FRAME = re.compile(r'"data:image/png;base64,([A-Za-z0-9+/=\\\n]+)"')


def _small_png(data: str, colors: int = 64) -> str:
    """A base64 PNG frame re-encoded with a palette of ``colors`` (about 3x smaller)."""
    import base64
    import io

    from PIL import Image

    raw = base64.b64decode(data.replace("\\", "").replace("\n", ""))
    img = Image.open(io.BytesIO(raw)).convert("RGB")
    out = io.BytesIO()
    img.quantize(colors, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
    return base64.b64encode(out.getvalue()).decode()


@dataclass(frozen=True)
class Scrubber:
    """A kernel-free interactive figure: HTML with its frames and JavaScript inline.

    Jupyter and the book display it through its ``_repr_html_()``.

    Attributes:
        html: the self-contained HTML (no external resource).
        frames: number of frames.
        caption: one line shown under the slider (what the slider changes).
    """

    html: str
    frames: int
    caption: str = ""

    @property
    def nbytes(self) -> int:
        """Size of the HTML in bytes (what the figure adds to the page)."""
        return len(self._repr_html_().encode())

    def _repr_html_(self) -> str:
        cap = (f'<p class="gmp-scrubber-caption" style="margin:0.2em 0 0 0;font-size:90%">'
               f"{self.caption}</p>") if self.caption else ""
        return f'<div class="gmp-scrubber">{self.html}{cap}</div>'

    def __repr__(self) -> str:
        return f"<Scrubber: {self.frames} frames, {self.nbytes / 1e6:.2f} MB>"


def offline(html: str) -> str:
    """``to_jshtml`` output made light and offline.

    Without its CDN stylesheet, the icons as Unicode characters, and every PNG frame
    re-encoded with a 64-colour palette (the figures are flat colours and lines).
    """
    html = _LINK.sub("", html)
    html = _FRAME.sub(lambda m: f'"data:image/png;base64,{_small_png(m.group(1))}"', html)

    def icon(m: re.Match) -> str:
        return f'<span aria-hidden="true">{_ICONS.get(m.group(1), "•")}</span>'

    html = _ICON.sub(icon, html)
    # The slider is as wide as the frames (the default is a fixed 374 px).
    return html.replace("</style>", ".anim-slider { width: 100%; }\n</style>", 1)


def scrubber(fig: Figure, update: Callable[[int], Any], frames: int, *, fps: float = 4,
             caption: str = "") -> Scrubber:
    """Draw ``update(i)`` for ``i < frames`` on ``fig`` and return the frames with a slider.

    ``update`` redraws ``fig`` for frame ``i`` (the page opens on frame 0); ``fps`` is the
    play speed. The figure is closed afterwards.
    """
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    if frames < 2:
        raise ValueError(f"a scrubber needs at least 2 frames, got {frames}")
    anim = FuncAnimation(fig, update, frames=range(frames), interval=1000 / fps,
                         repeat=False, cache_frame_data=False)
    try:
        html = anim.to_jshtml(fps=fps, default_mode="once")
    finally:
        plt.close(fig)
    return Scrubber(offline(html), frames, caption)


def _figure(ncols: int, height: float) -> tuple[Figure, list]:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(WIDTH, height), dpi=DPI,
                             layout="constrained", squeeze=False)
    return fig, list(axes[0])


def cab_explorer_scrubber(vary: str = "b", frames: int = 21,
                          box: Sequence[float] = DEFAULT_BOX) -> Scrubber:
    """The CAB explorer lab without a kernel: one unit under SP (left) and GmP (right).

    The unit starts at ``w = (1, 0.5)``, ``b = -0.8``; the GmP panel shows the same unit
    converted exactly (``r = ‖w‖``, ``θ`` = the angle of ``w``, ``λ = b/‖w‖``).

    Args:
        vary: ``"b"`` (the bias from -3 to 3: the boundary slides, SP and GmP alike),
            ``"angle"`` (the direction of ``w`` turns once around: only ``θ`` changes) or
            ``"norm"`` (``(w, b)`` scaled by ``c`` from 2 down to 0.05: the boundary stays
            put, only the output's steepness, GmP's ``r``, changes).
        frames: number of frames.
    """
    w0, b0 = np.array([1.0, 0.5]), -0.8
    ts = np.linspace(0.0, 1.0, frames)
    if vary == "b":
        units = [(w0, b) for b in np.linspace(-3.0, 3.0, frames)]
        caption = "The slider moves b from −3 to 3 (w fixed): the boundary slides."
    elif vary == "angle":
        a0, n0 = math.atan2(w0[1], w0[0]), float(np.linalg.norm(w0))
        units = [(n0 * np.array([math.cos(a0 + 2 * math.pi * t),
                                 math.sin(a0 + 2 * math.pi * t)]), b0) for t in ts]
        caption = "The slider turns w once around (‖w‖ and b fixed): only θ changes."
    elif vary == "norm":
        cs = np.geomspace(2.0, 0.05, frames)
        units = [(c * w0, c * b0) for c in cs]
        caption = ("The slider scales (w, b) by c from 2 to 0.05: the boundary stays, "
                   "only r = ‖w‖ changes.")
    else:
        raise ValueError(f"vary must be 'b', 'angle' or 'norm', got {vary!r}")
    fig, axes = _figure(2, 3.4)

    def update(i: int) -> None:
        w, b = units[i]
        norm = float(np.linalg.norm(w))
        theta, lam = math.atan2(w[1], w[0]), b / norm
        for ax in axes:
            ax.clear()
        draw_unit(axes[0], w, b, box=box, show_normal=True, scale=1.0)
        u, lam_ = gmp_unit(theta, lam)
        draw_unit(axes[1], u, lam_, box=box, color="#D55E00", show_normal=True, scale=norm)
        phi = location(w, b)
        axes[0].set_title(f"SP: w = ({w[0]:.2f}, {w[1]:.2f}), b = {b:.2f}", fontsize=9)
        axes[1].set_title(f"GmP: θ = {theta:.2f}, λ = {lam:.2f}, r = {norm:.2f}",
                          fontsize=9)
        for ax in axes:
            ax.set_xlabel("$x_1$", fontsize=9)
            ax.tick_params(labelsize=9)
            ax.plot(*phi, "k+", ms=8)
        axes[0].set_ylabel("$x_2$", fontsize=9)

    return scrubber(fig, update, frames, caption=caption)


def perturbation_scrubber(vary: str = "delta", frames: int = 17, seed: int = 0,
                          delta: float = 1e-3, std: float = 1e-3) -> Scrubber:
    """The perturbation lab without a kernel: Fig. 1(b-e) while ``δ`` or ``σ`` changes.

    One unit in R² (:func:`gmp.perturbation.run_perturbation` with ``seed``) under SP, WN,
    BN and GmP, before (solid) and after (dashed) every parameter is perturbed by ``δ``; the
    number in each panel is the angle through which the boundary turned.

    Args:
        vary: ``"delta"`` (``δ`` from 1e-5 to 1e-1 at weight scale ``std``) or ``"std"``
            (the weight scale ``σ`` from 1e-4 to 1 at perturbation ``delta``).
    """
    from .perturbation import run_perturbation

    if vary == "delta":
        values = np.geomspace(1e-5, 1e-1, frames)
        runs = [[run_perturbation(m, d, std=std, seed=seed) for m in PARAMS] for d in values]
        caption = f"The slider raises δ from 1e-5 to 1e-1 (weight scale σ = {std:g})."
    elif vary == "std":
        values = np.geomspace(1e-4, 1.0, frames)
        runs = [[run_perturbation(m, delta, std=s, seed=seed) for m in PARAMS]
                for s in values]
        caption = f"The slider raises the weight scale σ from 1e-4 to 1 (δ = {delta:g})."
    else:
        raise ValueError(f"vary must be 'delta' or 'std', got {vary!r}")
    fig, axes = _figure(len(PARAMS), 2.3)
    half = 1.6 * max(float(np.abs(np.stack([r.location_before[0], r.location_after[0]])
                                  ).max()) for row in runs for r in row
                     if np.all(np.isfinite(r.location_after[0])))
    half = min(max(half, 1.0), 50.0)
    box = (-half, half, -half, half)

    def update(i: int) -> None:
        fig.suptitle(("δ" if vary == "delta" else "σ") + f" = {values[i]:.1e}",
                     fontsize=10)
        for ax, res in zip(axes, runs[i], strict=True):
            ax.clear()
            draw_perturbation(ax, res, 0, box=box, legend=False)
            ax.set_title(LABELS[res.param], fontsize=9)
            ax.text(0.97, 0.95, f"{float(np.degrees(res.angle_change[0])):.1f}°",
                    transform=ax.transAxes, ha="right", va="top", fontsize=9)
            ax.tick_params(labelsize=8)
        axes[0].legend(loc="lower left", fontsize=8)

    return scrubber(fig, update, frames, caption=caption)


def hypersphere_scrubber(frames: int = 13, theta2: float = 1.0) -> Scrubber:
    """``u(θ)`` on the sphere ``S²`` (left) and the metric factors (right) as ``θ₁`` sweeps.

    ``u(θ) = (cos θ₁, sin θ₁ cos θ₂, sin θ₁ sin θ₂)`` (Eq. 10, n = 3). Right: the diagonal of
    the metric, ``G₁₁ = 1`` and ``G₂₂ = sin²θ₁``: the length a unit step in ``θ₂`` moves ``u``
    shrinks to 0 at the poles (θ₁ = 0, π), where the stable inverse must pick some θ₂.
    """
    import matplotlib.pyplot as plt

    th1 = np.linspace(0.0, np.pi, frames)
    fig = plt.figure(figsize=(WIDTH, 3.0), dpi=DPI, layout="constrained")
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    ax2 = fig.add_subplot(1, 2, 2)
    t = np.linspace(0, 2 * np.pi, 121)
    grid = np.linspace(0.0, np.pi, 200)

    def update(i: int) -> None:
        a = th1[i]
        ax.clear()
        for c in (np.pi / 4, np.pi / 2, 3 * np.pi / 4):  # three circles of constant θ₁
            ax.plot(np.full_like(t, np.cos(c)), np.sin(c) * np.cos(t), np.sin(c) * np.sin(t),
                    color="0.6", lw=0.7)
        ax.plot(np.cos(grid), np.sin(grid) * np.cos(theta2), np.sin(grid) * np.sin(theta2),
                color="C1", lw=1.2, label="θ₁ varies")
        ax.plot(np.full_like(t, np.cos(a)), np.sin(a) * np.cos(t), np.sin(a) * np.sin(t),
                color="C0", lw=1.5, label="θ₂ varies")
        u = np.array([np.cos(a), np.sin(a) * np.cos(theta2), np.sin(a) * np.sin(theta2)])
        ax.quiver(0, 0, 0, *u, color="C3", lw=1.5, arrow_length_ratio=0.1)
        ax.set(xlim=(-1, 1), ylim=(-1, 1), zlim=(-1, 1), box_aspect=(1, 1, 1))
        ax.set_xlabel("$x_1$", fontsize=9, labelpad=-8)
        ax.set_ylabel("$x_2$", fontsize=9, labelpad=-8)
        ax.set_zlabel("$x_3$", fontsize=9, labelpad=-8)
        ax.tick_params(labelsize=0, length=0)
        ax.view_init(elev=20, azim=-35)
        ax.set_title(f"u(θ), θ₁ = {a:.2f}, θ₂ = {theta2:.2f}", fontsize=9)
        ax.legend(loc="lower left", fontsize=8)
        ax2.clear()
        ax2.plot(grid, np.ones_like(grid), color="C1", label="$G_{11} = 1$")
        ax2.plot(grid, np.sin(grid) ** 2, color="C0", label=r"$G_{22} = \sin^2\theta_1$")
        ax2.axvline(a, color="C3", lw=1)
        ax2.plot([a], [np.sin(a) ** 2], "o", color="C0")
        ax2.set(xlim=(0, np.pi), ylim=(0, 1.1))
        ax2.set_xlabel("θ₁", fontsize=9)
        ax2.set_ylabel("metric entry", fontsize=9)
        ax2.tick_params(labelsize=9)
        ax2.legend(loc="lower center", fontsize=8)
        ax2.set_title("squared length of a unit step in θ₂", fontsize=9)

    return scrubber(fig, update, frames,
                    caption="The slider sweeps θ₁ from 0 to π (θ₂ fixed).")
