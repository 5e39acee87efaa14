"""Reading a UCI results file (:mod:`gmp.experiments.uci`) into Table 1 and its companions.

Every function takes the ``results`` dict that ``gmp-uci`` writes (``json.loads`` of the
file; layout: ``{"config", "created", "datasets": {name: {"n_rows", "n_features",
"methods": {method: {"test_rmse_mean", "test_rmse_std", "splits": [...]}}, "run",
"wall_s"}}}``) and returns Markdown, arrays or a figure; nothing here trains. A diverged
model's RMSE is stored as ``null`` and read as NaN; NaN ranks last.

- :func:`summarize`, :func:`markdown_table`: Table 1 (Chen & Ge 2024, Sec. 4.2.1), mean ± std;
- :func:`split_rmse`, :func:`best_methods`, :func:`paired_wins`, :func:`rmse_figure`: the
  per-split view;
- :func:`lr_choice_table`, :func:`budget_table`: what cross-validation chose and whether the
  epoch budget sufficed (honest protocol);
- :func:`comparison_table`: two result files side by side (e.g. honest vs official);
- :func:`provenance_markdown`: command, revision, date and machine of the run.
"""

from __future__ import annotations

import math

import numpy as np

from ..data.uci import DATASETS
from ..params import LABELS, PARAMS
from ..params import PARAMS as METHODS
from ..provenance import normalize

__all__ = [
    "METHOD_LABELS",
    "summarize",
    "markdown_table",
    "split_rmse",
    "best_methods",
    "paired_wins",
    "lr_choice_table",
    "budget_table",
    "comparison_table",
    "provenance_markdown",
    "rmse_figure",
]

#: Display names of the methods.
METHOD_LABELS: dict[str, str] = {m: LABELS[m] for m in PARAMS}


def _finite_or_inf(v: float) -> float:
    """``v``, or ``inf`` if it is NaN (a diverged model ranks last)."""
    return v if math.isfinite(v) else math.inf


def _num(v) -> float:
    return math.nan if v is None else float(v)


def summarize(results: dict) -> list[dict]:
    """Rows ``{"dataset", "n_rows", "n_features", "<method>": (mean, std), ...}``, Table 1 order."""
    rows = []
    order = [d for d in DATASETS if d in results["datasets"]]
    order += [d for d in results["datasets"] if d not in order]
    for name in order:
        e = results["datasets"][name]
        row = {"dataset": name, "n_rows": e["n_rows"], "n_features": e["n_features"]}
        for m, r in e["methods"].items():
            row[m] = (_num(r["test_rmse_mean"]), _num(r["test_rmse_std"]))
        rows.append(row)
    return rows


def _decimals(v: float, digits: int) -> int:
    """Decimals that show ``v`` with ``digits`` significant digits."""
    if not math.isfinite(v) or v == 0:
        return digits
    return max(0, digits - 1 - math.floor(math.log10(abs(v))))


def markdown_table(results: dict, digits: int = 3) -> str:
    """Table 1 as Markdown: test RMSE mean ± std per data set and method, best in bold."""
    rows = summarize(results)
    methods = [m for m in METHODS if any(m in r for r in rows)]
    head = "| data set | N × d | " + " | ".join(METHOD_LABELS[m] for m in methods) + " |"
    lines = [head, "|" + "---|" * (len(methods) + 2)]
    for r in rows:
        means = {m: r[m][0] for m in methods if m in r}
        best = min(means, key=lambda m: _finite_or_inf(means[m]))
        cells = []
        for m in methods:
            if m not in r:
                cells.append("")
                continue
            mean, std = r[m]
            d = _decimals(mean, digits)          # the std gets the mean's decimals
            s = f"{mean:.{d}f} ± {std:.{d}f}"
            cells.append(f"**{s}**" if m == best else s)
        lines.append(f"| {r['dataset']} | {r['n_rows']} × {r['n_features']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def split_rmse(results: dict) -> dict[str, dict[str, np.ndarray]]:
    """Per data set and method, the test RMSE of every split (``(splits,)``, NaN if diverged)."""
    return {name: {m: np.array([_num(r["test_rmse"]) for r in e["methods"][m]["splits"]])
                   for m in e["methods"]}
            for name, e in results["datasets"].items()}


def best_methods(results: dict) -> dict[str, str]:
    """The method with the lowest mean test RMSE on every data set."""
    return {r["dataset"]: min((m for m in METHODS if m in r), key=lambda m: _finite_or_inf(r[m][0]))
            for r in summarize(results)}


def paired_wins(results: dict, method: str = "gmp") -> dict[str, dict[str, tuple[int, int]]]:
    """Per data set and rival: ``(splits where method beats the rival, splits compared)``."""
    out = {}
    for name, per in split_rmse(results).items():
        if method not in per:
            continue
        out[name] = {m: (int(np.sum(per[method] < v)), int(np.sum(np.isfinite(per[method] - v))))
                     for m, v in per.items() if m != method}
    return out


def lr_choice_table(results: dict) -> str:
    """Markdown: how often cross-validation chose each learning rate, per method."""
    grid = results["config"]["lr_grid"]
    counts = {m: dict.fromkeys(grid, 0) for m in METHODS}
    for e in results["datasets"].values():
        for m, r in e["methods"].items():
            for s in r["splits"]:
                counts[m][s["lr"]] += 1
    used = [m for m in METHODS if sum(counts[m].values())]
    lines = ["| method | " + " | ".join(f"{lr:g}" for lr in grid) + " |",
             "|---|" + "---|" * len(grid)]
    lines += [f"| {METHOD_LABELS[m]} | " + " | ".join(str(counts[m][lr]) for lr in grid) + " |"
              for m in used]
    return "\n".join(lines)


def budget_table(results: dict) -> str:
    """Markdown: per data set, the share of models (CV and final) that used the whole epoch
    budget (never early-stopped), and the median best epoch of the final models."""
    cap = results["config"]["max_epochs"]
    lines = ["| data set | CV models at the cap | final models at the cap | "
             "median best epoch (final) |", "|---|---|---|---|"]
    for name, e in results["datasets"].items():
        finals = [s for r in e["methods"].values() for s in r["splits"]]
        n_cv = sum(len(s.get("cv_best_epochs", [])) for s in finals) * len(
            results["config"].get("lr_grid", [0]))
        cv_cap = sum(s.get("cv_capped", 0) for s in finals)
        fin_cap = sum(s["stopped_epoch"] >= cap for s in finals)
        med = float(np.median([s["best_epoch"] for s in finals]))
        cv = f"{cv_cap / n_cv:.0%}" if n_cv else "–"
        lines.append(f"| {name} | {cv} | {fin_cap / len(finals):.0%} | {med:.0f} |")
    return "\n".join(lines)


def comparison_table(a: dict, b: dict, label_a: str, label_b: str, digits: int = 3) -> str:
    """Markdown: mean test RMSE under two result sets and the relative change ``b/a - 1``."""
    ra = {r["dataset"]: r for r in summarize(a)}
    rb = {r["dataset"]: r for r in summarize(b)}
    names = [n for n in ra if n in rb]
    methods = [m for m in METHODS if all(m in ra[n] and m in rb[n] for n in names)]
    lines = ["| data set | " + " | ".join(METHOD_LABELS[m] for m in methods) + " |",
             "|---|" + "---|" * len(methods)]
    for n in names:
        cells = []
        for m in methods:
            x, y = ra[n][m][0], rb[n][m][0]
            d = _decimals(x, digits)
            cells.append(f"{x:.{d}f} → {y:.{d}f} ({y / x - 1:+.0%})")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return f"{label_a} → {label_b} (relative change)\n\n" + "\n".join(lines)


def provenance_markdown(results: dict) -> str:
    """Markdown list: how and where the results were produced."""
    c = normalize(results["created"])  # files of either schema (gmp.provenance.normalize)
    hw = c["hardware"]
    rev = (c["git_revision"] or "unknown")[:12] + (" (uncommitted changes)" if c["git_dirty"]
                                                   else "")
    walls = {n: e.get("wall_s") for n, e in results["datasets"].items()}
    total = sum(v for v in walls.values() if v)
    runs = {normalize(e["run"])["git_revision"] for e in results["datasets"].values()
            if "run" in e}
    lines = [f"- command: `{c['command']}`",
             f"- git revision: `{rev}`" + ("" if len(runs) <= 1 else
                                            f" (data sets from {len(runs)} revisions)"),
             f"- started: {c['date_utc']}",
             f"- hardware: {hw['cpu']}, {hw['logical_cpus']} logical CPUs, "
             f"{hw['torch_threads']} torch thread(s), load average at start "
             f"{hw.get('load_avg')}",
             f"- software: Python {c['software']['python']}, torch {c['software']['torch']}",
             f"- training time: {total / 60:.1f} min in all ("
             + ", ".join(f"{n} {v / 60:.1f}" for n, v in walls.items() if v) + " min)"]
    return "\n".join(lines)


def rmse_figure(results: dict, normalize: bool = True):
    """Per-split test RMSE, one panel per data set; grey lines join the same split.

    With ``normalize`` every split's RMSEs are divided by that split's SP RMSE (paired view).
    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    per = split_rmse(results)
    names = list(per)
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        methods = [m for m in METHODS if m in per[name]]
        vals = np.stack([per[name][m] for m in methods])           # (methods, splits)
        if normalize and "sp" in per[name]:
            vals = vals / per[name]["sp"]
        xs = np.arange(len(methods))
        ax.plot(xs, vals, color="0.8", lw=0.8, zorder=1)
        for i, _ in enumerate(methods):
            ax.scatter(np.full(vals.shape[1], i), vals[i], s=10, zorder=2, color=f"C{i}")
            ax.scatter([i], [np.nanmean(vals[i])], marker="_", s=300, color="k", zorder=3)
        ax.set_xticks(xs, [METHOD_LABELS[m] for m in methods])
        ax.set_title(name, fontsize=10)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes[0, 0].set_ylabel("test RMSE / SP's" if normalize else "test RMSE")
    fig.tight_layout()
    return fig
