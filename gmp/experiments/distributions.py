"""Results as distributions: modes, paired comparisons, exact tests, computed verdicts.

The small experiments end in one number per run (test RMSE or accuracy). Over many seeds
these numbers are often **bimodal** (a run fits the data or it does not), so a mean ± std
hides what happens. The helpers here keep every run in view:

- :func:`split_modes`: the threshold that best separates the runs into two groups (Otsu's
  criterion on the pooled values, in log space for errors), and the count in each group;
- :func:`paired`: per data seed, the difference between two parameterizations trained on the *same*
  data (the comparison that removes the data sample's own variance), with
- :func:`sign_test`: the exact two-sided sign test of those differences (no assumption on
  their distribution; ties dropped);
- :func:`holm`: Holm's step-down adjustment when one claim is tested against several
  parameterizations;
- :func:`fisher_exact`: the exact test of a 2×2 table (e.g. runs in the low-error mode, per
  parameterization);
- :func:`verdict`: a claim's status computed from these numbers.

Everything works on plain sequences of floats, so the tests can check each piece by hand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Modes", "split_modes", "Paired", "paired", "paired_against", "sign_test", "holm",
           "fisher_exact", "verdict", "scores"]


@dataclass(frozen=True)
class Modes:
    """Two groups of runs split at ``threshold``: ``low`` (values ≤ threshold), ``high``.

    ``separation`` is the between-group share of the variance (Otsu's criterion, 0–1): near
    1 the two groups are far apart compared with their spread (clearly bimodal)."""

    threshold: float
    low: int
    high: int
    separation: float


def split_modes(values: Iterable[float], log: bool = True) -> Modes:
    """Split ``values`` into two groups at the threshold with the largest between-group
    variance (Otsu 1979), computed on ``log(values)`` when ``log`` (for positive errors).

    The threshold is the midpoint (geometric midpoint when ``log``) between the two sorted
    neighbours where the split falls. NaN values are dropped. Needs at least two distinct
    values; raises ValueError otherwise."""
    v = np.sort(np.asarray([x for x in values if not math.isnan(x)], dtype=np.float64))
    if log:
        if (v <= 0).any():
            raise ValueError("split_modes(log=True) needs positive values")
        v = np.log(v)
    if len(v) < 2 or v[0] == v[-1]:
        raise ValueError("split_modes needs at least two distinct values")
    total = v.var() * len(v)
    best, k_best = -1.0, 1
    for k in range(1, len(v)):
        a, b = v[:k], v[k:]
        between = len(a) * len(b) / len(v) * (a.mean() - b.mean()) ** 2
        if between > best:
            best, k_best = between, k
    cut = (v[k_best - 1] + v[k_best]) / 2
    return Modes(float(np.exp(cut) if log else cut), k_best, len(v) - k_best,
                 float(best / total) if total > 0 else 0.0)


def sign_test(diffs: Iterable[float]) -> tuple[int, int, float]:
    """Exact two-sided sign test: ``(positives, negatives, p-value)``; zeros are dropped.

    Under the null hypothesis each non-zero difference is positive with probability 1/2, so
    ``p = min(1, 2·P(X ≤ min(pos, neg)))`` with ``X ~ Binomial(pos + neg, 1/2)``."""
    d = [x for x in diffs if not math.isnan(x)]
    pos, neg = sum(x > 0 for x in d), sum(x < 0 for x in d)
    n = pos + neg
    if n == 0:
        return pos, neg, 1.0
    k = min(pos, neg)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return pos, neg, min(1.0, 2 * tail)


@dataclass(frozen=True)
class Paired:
    """``a − b`` per data seed (``diffs``, in the order of ``seeds``), the number of seeds
    where ``a`` is better (``wins``: lower when ``lower_is_better``), worse, tied, the median
    difference and the sign test's p-value."""

    seeds: tuple[int, ...]
    diffs: tuple[float, ...]
    wins: int
    losses: int
    ties: int
    median: float
    p_value: float


def paired(a: dict[int, float], b: dict[int, float], lower_is_better: bool = True) -> Paired:
    """Compare two parameterizations run on the same data seeds (``{data_seed: score}`` each).

    Only seeds present in both count. ``wins`` counts the seeds where ``a`` beats ``b``. A
    NaN score (a diverged run) loses against any number; two NaNs tie."""
    seeds = tuple(sorted(set(a) & set(b)))
    if not seeds:
        raise ValueError("paired: the two parameterizations share no data seed")
    diffs = tuple(float(a[s] - b[s]) for s in seeds)
    sign = -1.0 if lower_is_better else 1.0
    better = []
    for s in seeds:
        na, nb = math.isnan(a[s]), math.isnan(b[s])
        better.append(0.0 if na and nb else -math.inf if na else math.inf if nb
                      else sign * (a[s] - b[s]))
    wins, losses, p = sign_test(better)
    ties = sum(x == 0 for x in better)
    return Paired(seeds, diffs, wins, losses, ties, float(np.median(diffs)), p)


def paired_against(runs: Sequence, a: str = "gmp", key: str | None = None,
                   lower_is_better: bool = True) -> dict[str, Paired]:
    """:func:`paired` comparisons of parameterization ``a`` with every other one in ``runs``,
    keyed by the other (in the order first seen), on ``metrics[key]`` (default the score)."""
    others = list(dict.fromkeys(r.param for r in runs if r.param != a))
    mine = scores(runs, a, key)
    return {b: paired(mine, scores(runs, b, key), lower_is_better) for b in others}


def scores(runs: Sequence, param: str, key: str | None = None, by: str = "data_seed"
           ) -> dict[int, float]:
    """``{data_seed (or seed): score}`` of one parameterization's runs (a single learning rate)."""
    out: dict[int, float] = {}
    for r in runs:
        if r.param != param:
            continue
        k = getattr(r, by)
        if k in out:
            raise ValueError(f"scores: two runs of {param} share {by} {k} (several learning "
                             "rates or presets?); select one first")
        out[k] = r.metrics[key] if key else r.score
    return out


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values (family-wise error control), same keys."""
    order = sorted(p_values, key=p_values.get)
    k, out, running = len(order), {}, 0.0
    for i, key in enumerate(order):
        running = max(running, min(1.0, (k - i) * p_values[key]))
        out[key] = running
    return out


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided exact p-value of the 2×2 table ``[[a, b], [c, d]]`` (rows: groups; columns:
    e.g. runs in / out of the low-error mode): the probability, with the margins fixed, of a
    table at most as likely as the one observed."""
    n1, n2, k = a + b, c + d, a + c

    def prob(x: int) -> float:
        return math.comb(n1, x) * math.comb(n2, k - x) / math.comb(n1 + n2, k)

    observed = prob(a)
    lo, hi = max(0, k - n2), min(k, n1)
    return min(1.0, sum(prob(x) for x in range(lo, hi + 1) if prob(x) <= observed * (1 + 1e-9)))


def verdict(holds: bool, partly: bool = False, where: str = "") -> str:
    """``"holds"``, ``"holds only <where>"`` or ``"does not hold here"``."""
    if holds:
        return "holds"
    if partly:
        return f"holds only {where}".rstrip()
    return "does not hold here"
