"""Figures, tables and comparison sentences for the illustrative experiments (Figs. 2-3).

Every function takes the :class:`~gmp.experiments.small.SmallRunResult` objects returned by
:func:`gmp.experiments.small.run` and draws or summarizes them; the book chapters call these
so that their cells stay short. Figures are small matplotlib figures; tables are Markdown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..params import COLORS as _COLORS
from ..params import LABELS, PARAMS, PROPOSED
from .small import SmallRunResult, summarize
from .tasks import TASKS, get_task

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.figure import Figure

    from ..data.banana import BananaSplits
    from ..data.levy import LevyData

__all__ = [
    "COLORS",
    "AUTHORS_REPORTED",
    "select",
    "characteristic_points_figure",
    "max_change_figure",
    "levy_fits_figure",
    "cab_trajectories_figure",
    "decision_boundary_figure",
    "lr_sensitivity_figure",
    "strip_figure",
    "by_param",
    "paired_markdown",
    "change_stats",
    "results_table",
    "runs_table",
    "reference_comparison",
    "units_through_data",
    "kept_characteristic_points",
    "panels_figure",
    "levy_training_scrubber",
]

#: Okabe-Ito colours (colour-blind safe), one per parameterization (the registry's
#: ``color``, a live view of :data:`gmp.params.COLORS`).
COLORS: Mapping[str, str] = _COLORS

#: Single-seed test scores printed by the authors' official notebooks (their seed 0, the
#: ``official`` protocol; Sec. 4.1, Figs. 2-3): test RMSE for Levy, test accuracy for
#: Banana. Quoted next to our runs, never used in any computation of ours.
AUTHORS_REPORTED: dict[str, dict[str, float]] = {
    "levy": {"sp": 1.104, "wn": 1.219, "bn": 1.244, "gmp": 0.496},
    "banana": {"sp": 0.800, "wn": 0.810, "bn": 0.875, "gmp": 0.885},
}


def select(results: Sequence[SmallRunResult], *, seed: int | None = None,
           lr: float | None = None, param: str | None = None) -> list[SmallRunResult]:
    """The runs matching every given field."""
    return [r for r in results if (seed is None or r.seed == seed)
            and (lr is None or math.isclose(r.lr, lr)) and (param is None or r.param == param)]


def _one_per_param(results: Sequence[SmallRunResult], seed: int) -> list[SmallRunResult]:
    runs = select(results, seed=seed)
    params = [m for m in PARAMS if any(r.param == m for r in runs)]
    out = []
    for m in params:
        mine = [r for r in runs if r.param == m]
        if len(mine) != 1:
            raise ValueError(f"expected one run of {m!r} with seed {seed}, got {len(mine)} "
                             "(select one learning rate first)")
        out.append(mine[0])
    if not out:
        raise ValueError(f"no runs with seed {seed}")
    return out


def _grid(n: int, size: float = 2.6, rows: int | None = None):
    import matplotlib.pyplot as plt

    rows = rows or (1 if n <= 2 else 2)
    cols = math.ceil(n / rows)
    fig, axes = plt.subplots(rows, cols, figsize=(size * 1.25 * cols, size * rows),
                             squeeze=False, constrained_layout=True)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


# ---------------------------------------------------------------------------------------
# Levy (Fig. 2)
# ---------------------------------------------------------------------------------------
def characteristic_points_figure(results: Sequence[SmallRunResult], seed: int = 0,
                                 xlim: tuple[float, float] = (-15.0, 15.0),
                                 data_range: tuple[float, float] = (-10.0, 10.0)) -> Figure:
    """Fig. 2(a-b, d-g): every hidden unit's characteristic point ``x*`` over training.

    One panel per parameterization (runs of ``seed``); x-axis ``x*``, y-axis the optimizer step; the
    data interval is shaded and a dashed line marks the step of the kept weights. Points
    outside ``xlim`` leave the panel; the title counts the units whose ``x*`` at the kept
    weights lies outside the data interval.
    """
    runs = _one_per_param(results, seed)
    fig, axes = _grid(len(runs))
    for ax, r in zip(axes, runs, strict=True):
        pts = r.characteristic_points                     # (T, m)
        ax.axvspan(*data_range, color="0.92", zorder=0)
        ax.plot(pts, r.steps, color=COLORS[r.param], lw=0.6, alpha=0.6)
        ax.axhline(r.kept_step, color="k", lw=0.8, ls="--")
        kept = pts[r.steps <= r.kept_step][-1]
        out = int(np.sum(~((kept >= data_range[0]) & (kept <= data_range[1]))))
        ax.set(xlim=xlim, ylim=(0, max(int(r.steps[-1]), 1)), xlabel="characteristic point $x^*$",
               title=f"{LABELS[r.param]} (lr {r.lr:g}): {out}/{pts.shape[1]} end outside")
        ax.title.set_fontsize(9)
    axes[0].set_ylabel("optimizer step")
    if len(axes) > 2:
        axes[2].set_ylabel("optimizer step")
    return fig


def max_change_figure(results: Sequence[SmallRunResult], seed: int = 0,
                      kind: str | None = None, ax=None) -> Figure:
    """Fig. 2(c) / 3(i): the per-step maximum CAB change over training, log scale.

    ``kind``: ``"location"`` (``max |Δx*|`` or ``max ‖Δφ‖``) or ``"angle"`` (degrees);
    default: location for Levy, angle for Banana.
    """
    import matplotlib.pyplot as plt

    runs = _one_per_param(results, seed)
    kind = kind or TASKS[runs[0].task].change
    if kind not in ("location", "angle"):
        raise ValueError(f"kind must be 'location' or 'angle', got {kind!r}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 3.0), constrained_layout=True)
    else:
        fig = ax.figure
    for r in runs:
        y = r.max_location_change if kind == "location" else r.max_angular_change
        y = np.where(y > 0, y, np.nan)  # log scale: steps without any change are not drawn
        ax.plot(np.arange(1, len(y) + 1), y, color=COLORS[r.param], lw=0.7, alpha=0.8,
                label=LABELS[r.param])
    ax.set_yscale("log")
    if kind == "angle":
        unit = "max direction change (degrees)"
    else:
        unit = TASKS[runs[0].task].location_label
    ax.set(xlabel="optimizer step", ylabel=unit)
    ax.legend(ncols=len(runs), fontsize=8, loc="upper right")
    return fig


def levy_fits_figure(results: Sequence[SmallRunResult], data: LevyData, seed: int = 0) -> Figure:
    """Final fits (kept weights) on the test grid, with the training points and, as ticks on
    the x-axis, the characteristic points of the hidden units."""
    from ..data.levy import levy

    runs = _one_per_param(results, seed)
    fig, axes = _grid(len(runs))
    xt = data.x_test.double()
    fine = torch.linspace(float(xt.min()), float(xt.max()), 801, dtype=torch.float64)[:, None]
    for ax, r in zip(axes, runs, strict=True):
        if r.model is None:
            raise ValueError("levy_fits_figure needs runs with their trained model")
        with torch.no_grad():
            r.model.eval()
            pred = r.model(fine.to(next(r.model.parameters()).dtype)).double()
        ax.plot(fine, levy(fine), color="0.5", lw=1, label="Levy $f(x)$")
        ax.plot(data.x_train, data.y_train, "k.", ms=3, label="training data")
        ax.plot(fine, pred, color=COLORS[r.param], lw=1.3, label="network")
        pts = kept_characteristic_points(r)
        lo, hi = float(xt.min()), float(xt.max())
        inside = pts[(pts >= lo) & (pts <= hi)]
        ax.plot(inside, np.full_like(inside, -1.5), "|", color=COLORS[r.param], ms=6)
        ax.set(ylim=(-2.2, 16), xlabel="$x$",
               title=f"{LABELS[r.param]}: test RMSE {r.metrics['test_rmse']:.3f}")
        ax.title.set_fontsize(9)
    axes[0].legend(fontsize=7, loc="upper center")
    return fig


# ---------------------------------------------------------------------------------------
# Banana (Fig. 3)
# ---------------------------------------------------------------------------------------
def _raw_scatter(ax, splits: BananaSplits, alpha: float = 0.25) -> None:
    x, y = splits.x_train.numpy(), splits.y_train.numpy()
    for label, c in ((0, "#56B4E9"), (1, "#CC79A7")):
        ax.scatter(*x[y == label].T, s=4, color=c, alpha=alpha, lw=0)


def cab_trajectories_figure(results: Sequence[SmallRunResult], splits: BananaSplits,
                            seed: int = 0, lim: float = 3.0) -> Figure:
    """Fig. 3(j-m): trajectories of the CAB spatial locations ``φ`` during training.

    Drawn from the start (hollow circle) to the last record at or before the kept weights
    (filled circle); the steps after it, which early stopping discards, are left out. The
    training data of the same seed are in the background (standardized coordinates).
    """
    runs = _one_per_param(results, seed)
    fig, axes = _grid(len(runs))
    for ax, r in zip(axes, runs, strict=True):
        _raw_scatter(ax, splits)
        keep = r.steps <= r.kept_step
        loc = r.locations[keep]                               # (T', m, 2)
        c = COLORS[r.param]
        for i in range(loc.shape[1]):
            ax.plot(loc[:, i, 0], loc[:, i, 1], color=c, lw=0.8, alpha=0.8)
        ax.plot(*loc[0].T, "o", mfc="none", mec=c, ms=4)
        ax.plot(*loc[-1].T, "o", color=c, ms=4)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal",
               title=f"{LABELS[r.param]} (lr {r.lr:g}), {int(r.steps[keep][-1])} steps")
        ax.title.set_fontsize(9)
    return fig


def decision_boundary_figure(results: Sequence[SmallRunResult], splits: BananaSplits,
                             seed: int = 0, lim: float = 3.0, n: int = 161) -> Figure:
    """Final decision boundaries (kept weights): predicted probability, the 0.5 contour
    (black), the hidden units' CABs (thin coloured lines) and the test points."""
    from ..cab import effective_weight_bias

    runs = _one_per_param(results, seed)
    fig, axes = _grid(len(runs))
    g = np.linspace(-lim, lim, n)
    gx, gy = np.meshgrid(g, g)
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
    for ax, r in zip(axes, runs, strict=True):
        if r.model is None:
            raise ValueError("decision_boundary_figure needs runs with their trained model")
        model = r.model.eval()
        dtype = next(model.parameters()).dtype
        with torch.no_grad():
            prob = torch.sigmoid(model(torch.from_numpy(pts).to(dtype))).double().numpy()
        ax.contourf(gx, gy, prob.reshape(n, n), levels=np.linspace(0, 1, 11), cmap="RdBu_r",
                    alpha=0.35)
        ax.contour(gx, gy, prob.reshape(n, n), levels=[0.5], colors="k", linewidths=1.2)
        w, b = effective_weight_bias(model.hidden)
        pre = pts @ w.numpy().T + b.numpy()                  # (n², m)
        for i in range(pre.shape[1]):
            z = pre[:, i].reshape(n, n)
            if z.min() < 0 < z.max():
                ax.contour(gx, gy, z, levels=[0.0], colors=COLORS[r.param], linewidths=0.6)
        x, y = splits.x_test.numpy(), splits.y_test.numpy()
        for label, c in ((0, "#56B4E9"), (1, "#CC79A7")):
            ax.scatter(*x[y == label].T, s=6, color=c, edgecolor="k", lw=0.2,
                       label=f"test points of class {label}")
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal",
               title=f"{LABELS[r.param]}: test accuracy {r.metrics['test_acc']:.3f}")
        ax.title.set_fontsize(9)
    # one legend for every panel: the classes, the decision boundary, the units' CABs and
    # the shading (the predicted probability of class 1)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], ls="", marker="o", ms=4, color=c, mec="k", mew=0.2,
                      label=f"class {k} (test)") for k, c in ((0, "#56B4E9"), (1, "#CC79A7"))]
    handles += [Line2D([], [], color="k", lw=1.2, label="decision boundary (p = 0.5)"),
                Line2D([], [], color="0.4", lw=0.6,
                       label="hidden units' CABs (the method's colour)"),
                Patch(color="#b2182b", alpha=0.35, label="p(class 1) high"),
                Patch(color="#2166ac", alpha=0.35, label="p(class 1) low")]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=9,
               frameon=False)
    return fig


# ---------------------------------------------------------------------------------------
# learning rates
# ---------------------------------------------------------------------------------------
def _lr_rows(results: Sequence[SmallRunResult]) -> dict[str, dict[str, Any]]:
    """Per param: the learning rates, and per rate every run's test error and largest
    per-step change (``"err"``, ``"chg"``: lists of arrays) and their medians."""
    out: dict[str, dict[str, Any]] = {}
    for m in PARAMS:
        mine = select(results, param=m)
        if not mine:
            continue
        rows: dict[str, list] = {"lr": [], "err": [], "chg": []}
        for lr in sorted({r.lr for r in mine}):
            runs = select(mine, lr=lr)
            rows["lr"].append(lr)
            rows["err"].append(np.asarray([_error(r) for r in runs], dtype=np.float64))
            rows["chg"].append(np.asarray([r.metrics["max_step_change"] for r in runs],
                                          dtype=np.float64))
        out[m] = {"lr": np.asarray(rows["lr"]), "err": rows["err"], "chg": rows["chg"]}
        for key in ("err", "chg"):
            out[m][key + "_median"] = np.asarray(
                [np.nanmedian(v) if np.isfinite(v).any() else np.nan for v in rows[key]])
    return out


def _error(r: SmallRunResult) -> float:
    """Test error: RMSE (Levy) or 1 - accuracy (Banana)."""
    return TASKS[r.task].error(r.metrics)


def lr_sensitivity_figure(results_by_task: dict[str, Sequence[SmallRunResult]]) -> Figure:
    """Test error and the largest per-step CAB change against the learning rate.

    One row per task (``{"levy": runs, "banana": runs}``): left, the test error (RMSE, or
    1 - accuracy); right, the largest per-step change of a run (Levy ``max |Δx*|``, Banana
    direction change in degrees). Every run is a dot (parameterizations side by side around each
    rate); lines join the medians. Test errors above twice their 90th percentile (diverged
    runs) are drawn on the top edge and counted; log scales where the values shown span more
    than a factor of 20.
    """
    import matplotlib.pyplot as plt

    tasks = list(results_by_task)
    fig, axes = plt.subplots(len(tasks), 2, figsize=(7.6, 2.9 * len(tasks)), squeeze=False,
                             constrained_layout=True)
    rng = np.random.default_rng(0)
    clipped: dict[str, str] = {}
    for row, task in zip(axes, tasks, strict=True):
        stats = _lr_rows(results_by_task[task])
        for ax, key in zip(row, ("err", "chg"), strict=True):
            finite = [v[np.isfinite(v)] for s in stats.values() for v in s[key]]
            allv = np.concatenate(finite) if finite else np.array([])
            # Test errors: a few diverging runs (BN on Levy at rate 1) would squash the
            # differences between the others, so the axis stops at twice the 90th
            # percentile and the runs above are drawn on the top edge (and counted).
            cap = (2 * float(np.quantile(allv, 0.9))
                   if key == "err" and allv.size else math.inf)
            above = 0
            for k, (m, s) in enumerate(stats.items()):
                shift = 10 ** (0.06 * (k - (len(stats) - 1) / 2))   # side by side
                for lr, vals in zip(s["lr"], s[key], strict=True):
                    v = vals[np.isfinite(vals)]
                    above += int((v > cap).sum())
                    x = lr * shift * 10 ** rng.uniform(-0.02, 0.02, size=len(v))
                    ax.scatter(x, np.minimum(v, cap), s=6, color=COLORS[m], alpha=0.45,
                               lw=0)
                ax.plot(s["lr"] * shift, np.minimum(s[key + "_median"], cap),
                        color=COLORS[m], marker="o", ms=3, lw=1, label=LABELS[m])
            if above:
                ax.set_ylim(top=cap * 1.03)
                clipped[task] = f"\n({above} runs above {cap:.3g}, drawn at the top)"
            allv = allv[(allv > 0) & (allv <= cap)]
            if allv.size and allv.max() / allv.min() > 20:
                ax.set_yscale("log")
            ax.set_xscale("log")
            ax.set_xlabel("learning rate")
        t = get_task(task)
        row[0].set(ylabel=t.error_label, title=f"{task}: test error" + clipped.get(task, ""))
        row[1].set(ylabel=t.change_label, title=f"{task}: largest per-step CAB change")
        for ax in row:
            ax.title.set_fontsize(9)
    axes[0][0].legend(fontsize=9)
    return fig


def by_param(results: Sequence[SmallRunResult], key: str | None = None
              ) -> dict[str, list[float]]:
    """``{label: [value per run]}`` per parameterization in :data:`gmp.params.PARAMS` order:
    the score, or ``metrics[key]`` — the groups :func:`strip_figure` draws."""
    return {LABELS[m]: [r.metrics[key] if key else r.score for r in results if r.param == m]
            for m in PARAMS if any(r.param == m for r in results)}


def paired_markdown(pairs: dict[str, Any], a: str = PROPOSED) -> str:
    """Markdown table of :func:`gmp.experiments.distributions.paired_against` results."""
    lines = [f"| {LABELS[a]} vs | {LABELS[a]} better | worse | tied | median difference | "
             "sign test p |", "|---|---|---|---|---|---|"]
    lines += [f"| {LABELS[b]} | {p.wins} | {p.losses} | {p.ties} | {p.median:+.3f} | "
              f"{p.p_value:.2g} |" for b, p in pairs.items()]
    return "\n".join(lines)


def strip_figure(groups: dict[str, Sequence[float]], ylabel: str, *,
                 colors: dict[str, str] | None = None, log: bool = False,
                 threshold: float | None = None, reference: dict[str, float] | None = None,
                 title: str = "", ax=None) -> Figure:
    """Every run as a dot, one column per group, over a violin of the group's distribution.

    Args:
        groups: ``{label: values}`` in display order (NaN values are dropped).
        ylabel: the axis label.
        colors: colour per label (default: grey).
        log: logarithmic value axis.
        threshold: draw a dashed line there (e.g. the split between two modes).
        reference: ``{label: value}`` drawn as a black diamond (e.g. a published single run).
        title: the axes' title.
        ax: draw into these axes (default: a new figure).

    The horizontal jitter is deterministic (a fixed generator), so the figure is the same at
    every build.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(1.1 + 1.0 * len(groups), 2.8), constrained_layout=True)
    else:
        fig = ax.figure
    rng = np.random.default_rng(0)
    ref_label = "authors' run"
    for i, (label, vals) in enumerate(groups.items()):
        v = np.asarray([x for x in vals if not math.isnan(x)], dtype=np.float64)
        c = (colors or {}).get(label, "0.4")
        if len(v) > 1 and np.ptp(v) > 0:
            body = ax.violinplot(np.log10(v) if log else v, positions=[i], widths=0.8,
                                 showextrema=False)["bodies"][0]
            body.set(facecolor=c, alpha=0.18, edgecolor="none")
        x = i + rng.uniform(-0.18, 0.18, size=len(v))
        ax.scatter(x, np.log10(v) if log else v, s=12, color=c, alpha=0.85, lw=0, zorder=3)
        if reference and label in reference:
            r = reference[label]
            ax.scatter([i], [math.log10(r) if log else r], marker="D", s=28, color="k",
                       zorder=4, label=ref_label)
            ref_label = None  # one legend entry
    if threshold is not None:
        ax.axhline(math.log10(threshold) if log else threshold, ls="--", lw=0.8, color="0.5")
    ax.set_xticks(range(len(groups)), list(groups), fontsize=8)
    if log:  # values were drawn as log10: label the ticks with the values themselves
        from matplotlib.ticker import FuncFormatter

        ax.yaxis.set_major_formatter(FuncFormatter(lambda t, _: f"{10 ** t:.3g}"))
        ax.tick_params(axis="y", labelsize=7)
    ax.set_ylabel(ylabel + (" (log scale)" if log else ""), fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    if reference:
        ax.legend(fontsize=7, loc="best")
    return fig


# ---------------------------------------------------------------------------------------
# tables and sentences
# ---------------------------------------------------------------------------------------
def change_stats(results: Sequence[SmallRunResult], threshold: float | None = None,
                 kind: str | None = None) -> list[dict[str, Any]]:
    """Per param, over all its runs: median and maximum of the per-step maximum change and
    the share of steps whose change exceeds ``threshold``.

    ``kind``: ``"location"`` or ``"angle"`` (default: location for Levy, angle for Banana);
    ``threshold`` default: 1 (Levy, one unit of ``x``) or 90 degrees (Banana).
    """
    rows = []
    for m in PARAMS:
        runs = select(results, param=m)
        if not runs:
            continue
        k = kind or TASKS[runs[0].task].change
        t = threshold if threshold is not None else (1.0 if k == "location" else 90.0)
        ys = np.concatenate([r.max_location_change if k == "location" else r.max_angular_change
                             for r in runs])
        ys = ys[np.isfinite(ys)]
        rows.append({"param": m, "kind": k, "threshold": t, "steps": int(ys.size),
                     "median": float(np.median(ys)) if ys.size else math.nan,
                     "max": float(ys.max()) if ys.size else math.nan,
                     "share_above": float(np.mean(ys > t)) if ys.size else math.nan})
    return rows


def results_table(results: Sequence[SmallRunResult], reference: dict[str, float] | None = None,
                  digits: int = 3) -> str:
    """Markdown table of the headline test metric per parameterization: mean ± std over seeds, the
    per-seed range, and (if given) the authors' reported single-seed value."""
    rows = summarize(results)
    name = TASKS[results[0].task].headline_label
    head = f"| param | lr | seeds | {name}: mean ± std | min – max |"
    sep = "|---|---|---|---|---|"
    if reference is not None:
        head += " authors' reported value (single seed) |"
        sep += "---|"
    lines = [head, sep]
    f = f"{{:.{digits}f}}"
    for row in rows:
        v = np.asarray(row["values"])
        line = (f"| {LABELS[row['param']]} | {row['lr']:g} | {row['n']} | "
                f"{f.format(row['mean'])} ± {f.format(row['std'])} | "
                f"{f.format(v.min())} – {f.format(v.max())} |")
        if reference is not None:
            ref = reference.get(row["param"])
            line += f" {f.format(ref)} |" if ref is not None else " – |"
        lines.append(line)
    return "\n".join(lines)


def units_through_data(run: SmallRunResult, x: torch.Tensor) -> int:
    """Number of hidden units of ``run.model`` (kept weights, evaluation mode) whose CAB
    passes through the data ``x (N, n)``: active on some points and inactive on others. The
    other units are active everywhere (a linear piece) or nowhere (dead) on these points."""
    from ..cab import effective_weight_bias

    if run.model is None:
        raise ValueError("units_through_data needs a run with its trained model")
    w, b = effective_weight_bias(run.model.eval().hidden)
    active = (x.to(w.dtype) @ w.T + b) > 0                   # (N, m)
    frac = active.to(torch.float64).mean(dim=0)
    return int(((frac > 0) & (frac < 1)).sum())


def kept_characteristic_points(run: SmallRunResult) -> np.ndarray:
    """``(m,)`` characteristic points of the kept network in evaluation mode (for BN: with
    its running statistics), i.e. of the function whose test error is reported."""
    from ..cab import characteristic_points

    if run.model is None:
        raise ValueError("kept_characteristic_points needs a run with its trained model")
    return characteristic_points(run.model.eval().hidden).numpy()


def runs_table(results: Sequence[SmallRunResult], digits: int = 3) -> str:
    """Markdown table with one row per run: epochs, kept epoch, stopping, final learning
    rate and the headline test metric."""
    name = TASKS[results[0].task].headline_label
    lines = ["| param | seed | lr | epochs run | kept epoch | stopped early | final lr | "
             f"{name} |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        final_lr = r.history["lr"][-1] if len(r.history["lr"]) else math.nan
        lines.append(f"| {LABELS[r.param]} | {r.seed} | {r.lr:g} | {r.epochs_run} | "
                     f"{r.best_epoch} | {'yes' if r.stopped_early else 'no'} | {final_lr:.0e} | "
                     f"{r.score:.{digits}f} |")
    return "\n".join(lines)


def reference_comparison(results: Sequence[SmallRunResult], reference: dict[str, float]
                         ) -> str:
    """Sentences comparing our multi-seed results with the authors' single-seed values,
    computed from the numbers (so they stay true when the numbers change)."""
    rows = {r["param"]: r for r in summarize(results)}
    task = TASKS[results[0].task]
    higher, metric = task.higher_is_better, task.headline_label
    params = [m for m in PARAMS if m in rows and m in reference]

    def order(vals: dict[str, float]) -> list[str]:
        return sorted(params, key=lambda m: -vals[m] if higher else vals[m])

    ours = order({m: rows[m]["mean"] for m in params})
    theirs = order(reference)
    name = ", ".join
    out = [f"Ranking by mean {metric} (best first): ours {name(LABELS[m] for m in ours)}; "
           f"the authors' single seeds {name(LABELS[m] for m in theirs)}."]
    if ours[0] == theirs[0]:
        out.append(f"Both put {LABELS[ours[0]]} first.")
    else:
        out.append(f"The best parameterization differs: {LABELS[ours[0]]} in our runs, "
                   f"{LABELS[theirs[0]]} in the authors' run.")
    inside, outside = [], []
    for m in params:
        v = np.asarray(rows[m]["values"])
        (inside if v.min() <= reference[m] <= v.max() else outside).append(m)
    if inside:
        out.append(f"The authors' value lies within the range of our seeds for "
                   f"{name(LABELS[m] for m in inside)}.")
    for m in outside:
        v = np.asarray(rows[m]["values"])
        side = "above" if reference[m] > v.max() else "below"
        out.append(f"For {LABELS[m]} the authors' value ({reference[m]:.3f}) lies {side} all "
                   f"{len(v)} of our seeds ({v.min():.3f} – {v.max():.3f}).")
    best = ours[0]
    others = [m for m in params if m != best]
    vb = np.asarray(rows[best]["values"])
    seeds_won = sum(
        all((vb[i] > np.asarray(rows[m]["values"])[i]) if higher
            else (vb[i] < np.asarray(rows[m]["values"])[i]) for m in others)
        for i in range(len(vb)) if all(len(rows[m]["values"]) == len(vb) for m in others))
    out.append(f"{LABELS[best]} has the best {metric} of all parameterizations on {seeds_won} of "
               f"{len(vb)} seeds.")
    return " ".join(out)


def panels_figure(panels: Sequence[dict[str, Any]], width: float = 7.0,
                  height: float = 2.9) -> Figure:
    """Several :func:`strip_figure` panels side by side at the column width: each panel a
    dict of :func:`strip_figure`'s arguments (``groups``, ``ylabel``, and optionally
    ``colors``, ``log``, ``threshold``, ``reference``, ``title``)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(width, height), squeeze=False,
                             constrained_layout=True)
    for ax, panel in zip(axes[0], panels, strict=True):
        strip_figure(ax=ax, **panel)
    return fig


def levy_training_scrubber(runs: Sequence[SmallRunResult], frames: int = 25,
                           xlim: tuple[float, float] = (-15.0, 15.0),
                           data_range: tuple[float, float] = (-10.0, 10.0)):
    """Fig. 2 in motion: every hidden unit's characteristic point ``x*``, step by step.

    One panel per run (e.g. SP and GmP, one seed each, trained with ``track_every`` > 1 to
    keep the frames few); x-axis ``x*``, y-axis the optimizer step (linear up to 10, then
    logarithmic, and frames spaced the same way: the boundaries move most in the first
    steps). At frame ``k`` each
    unit's path up to that step is drawn, its current ``x*`` is a dot, and the title counts
    the units whose ``x*`` lies outside the data interval (shaded). Returns a kernel-free
    :class:`gmp.animation.Scrubber`.
    """
    import matplotlib.pyplot as plt

    from ..animation import DPI, WIDTH, scrubber

    if not runs:
        raise ValueError("no runs to draw")
    fig, axes = plt.subplots(1, len(runs), figsize=(WIDTH, 3.2), dpi=DPI,
                             layout="constrained", sharey=True, squeeze=False)
    axes = list(axes[0])
    t_max = max(int(r.steps[-1]) for r in runs)
    n_rec = len(runs[0].steps)
    idx = np.unique(np.concatenate(
        [[0], np.geomspace(1, n_rec - 1, frames - 1).round().astype(int)]))
    lines, dots = [], []
    for ax, r in zip(axes, runs, strict=True):
        ax.axvspan(*data_range, color="0.92", zorder=0, label="data interval")
        color = COLORS.get(r.param, "k")
        lines.append([ax.plot([], [], color=color, lw=0.6, alpha=0.5)[0]
                      for _ in range(r.characteristic_points.shape[1])])
        dots.append(ax.plot([], [], "o", color=color, ms=2.5)[0])
        ax.set_yscale("symlog", linthresh=10)
        ax.set(xlim=xlim, ylim=(0, max(t_max, 1)))
        ax.set_xlabel("characteristic point $x^*$", fontsize=9)
        ax.tick_params(labelsize=9)
    axes[0].set_ylabel("optimizer step", fontsize=9)
    axes[0].legend(loc="upper left", fontsize=8)

    def update(i: int) -> None:
        for ax, r, ls, dot in zip(axes, runs, lines, dots, strict=True):
            k = min(int(idx[i]), len(r.steps) - 1)
            pts = r.characteristic_points
            for u, line in enumerate(ls):
                line.set_data(pts[: k + 1, u], r.steps[: k + 1])
            dot.set_data(pts[k], np.full(pts.shape[1], r.steps[k]))
            out = int(np.sum((pts[k] < data_range[0]) | (pts[k] > data_range[1])))
            ax.set_title(f"{LABELS[r.param]}, step {int(r.steps[k])}: "
                         f"{out}/{pts.shape[1]} outside", fontsize=9)

    return scrubber(fig, update, len(idx),
                    caption="The slider moves through training; each dot is one unit's "
                            "x*, its line the path so far.")
