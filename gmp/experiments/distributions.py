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
- :func:`clopper_pearson`: the exact 95 % interval of a win rate;
- :func:`median_interval`: a distribution-free interval for the median paired difference
  (order statistics; the binomial distribution of how many differences fall below it);
- :func:`sign_test_power`: how often the sign test, under Holm's adjustment, detects a given
  true win rate (exact binomial);
- :class:`Comparison`, :func:`compare`, :func:`compare_family`: one paired comparison in the
  book's vocabulary (wins–losses–ties, win rate with its interval, median difference with
  its interval, positive = the first method better, Holm-adjusted p, verdict word), and
  :func:`word`, :func:`claim_word`: the three verdict words *supported*, *contradicted*,
  *not shown* (the comparisons appendix of the book explains each).

Everything works on plain sequences of floats, so the tests can check each piece by hand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..params import PROPOSED

__all__ = ["Modes", "split_modes", "Paired", "paired", "paired_against", "sign_test", "holm",
           "fisher_exact", "scores", "clopper_pearson", "median_interval",
           "sign_test_power", "Comparison", "compare", "compare_family", "word",
           "claim_word", "WORDS", "ALPHA", "power_note"]


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


def paired_against(runs: Sequence, a: str = PROPOSED, key: str | None = None,
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


# ---------------------------------------------------------------------------------------
# the book's vocabulary: intervals, power and three verdict words
# ---------------------------------------------------------------------------------------
#: The three verdict words, in the book's order.
WORDS = ("supported", "contradicted", "not shown")

#: Family-wise error rate of every verdict in the book.
ALPHA = 0.05


def _binom_cdf(k: int, n: int, q: float) -> float:
    """``P(X ≤ k)`` for ``X ~ Binomial(n, q)`` (exact sum)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return math.fsum(math.comb(n, i) * q ** i * (1 - q) ** (n - i) for i in range(k + 1))


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson 1934) two-sided interval for a binomial proportion: ``k``
    successes in ``n`` trials. ``(0, 1)`` when ``n == 0``.

    The bounds solve ``P(X ≥ k | q = lo) = (1 - level)/2`` and ``P(X ≤ k | q = hi) =
    (1 - level)/2``, found by bisection on the exact binomial sums."""
    if not 0 <= k <= n:
        raise ValueError(f"clopper_pearson: need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    a = (1 - level) / 2

    def solve(f) -> float:       # f decreasing in q: the q where f(q) = a
        lo, hi = 0.0, 1.0
        for _ in range(80):
            mid = (lo + hi) / 2
            if f(mid) > a:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    lower = 0.0 if k == 0 else _lower_cp(k, n, a)
    upper = 1.0 if k == n else solve(lambda q: _binom_cdf(k, n, q))
    return lower, upper


def _lower_cp(k: int, n: int, a: float) -> float:
    """The ``q`` with ``P(X ≥ k | q) = a`` (increasing in ``q``), by bisection."""
    lo, hi = 0.0, 1.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if 1 - _binom_cdf(k - 1, n, mid) < a:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def median_interval(values: Iterable[float], level: float = 0.95
                    ) -> tuple[float, float, float]:
    """Distribution-free interval for the median of ``values``: ``(lo, hi, coverage)``.

    With ``n`` sorted values ``x_(1) ≤ … ≤ x_(n)``, the interval ``[x_(j), x_(n+1-j)]``
    contains the true median with probability ``1 − 2·P(B ≤ j − 1)``, ``B ~ Binomial(n,
    1/2)``, whatever the distribution (each value falls below the median with probability
    1/2). ``j`` is the largest with at least ``level``; ``coverage`` is the probability it
    achieves. Too few values for ``level`` give ``(-inf, inf, 1.0)``. NaN values are dropped
    (infinite ones are kept: a diverged run sits at an end)."""
    v = np.sort(np.asarray([x for x in values if not math.isnan(x)], dtype=np.float64))
    n = len(v)
    best = None
    for j in range(1, n // 2 + 1):
        cover = 1 - 2 * _binom_cdf(j - 1, n, 0.5)
        if cover >= level - 1e-12:
            best = (j, cover)
    if best is None:
        return -math.inf, math.inf, 1.0
    j, cover = best
    return float(v[j - 1]), float(v[n - j]), float(cover)


def _sign_p(w: int, n: int) -> float:
    """Two-sided exact sign-test p-value of ``w`` wins in ``n`` untied pairs."""
    k = min(w, n - w)
    return min(1.0, 2 * _binom_cdf(k, n, 0.5))


def sign_test_power(n: int, win_rate: float, family: int = 1, alpha: float = ALPHA,
                    every: bool = False) -> float:
    """Probability that the sign test on ``n`` untied pairs, Holm-adjusted over ``family``
    comparisons, declares the first method better when it truly wins with probability
    ``win_rate`` (exact binomial).

    ``every=False``: one given comparison clears Holm's first threshold ``alpha/family``
    (the most it can count on; it is rejected at a larger p only if others are rejected
    first). ``every=True``: all ``family`` comparisons are rejected, each independent with
    the same true win rate (Holm's step-down: the ``i``-th smallest p at most
    ``alpha/(family − i + 1)``)."""
    if n < 1 or family < 1:
        raise ValueError("sign_test_power: need n >= 1 and family >= 1")
    pmf = [math.comb(n, w) * win_rate ** w * (1 - win_rate) ** (n - w) for w in range(n + 1)]
    right = [w for w in range(n + 1) if 2 * w > n]
    if not every:
        return math.fsum(pmf[w] for w in right if _sign_p(w, n) <= alpha / family)
    # level L of one comparison: the largest j with p <= alpha/j (0: never rejected)
    level_prob = [0.0] * (family + 1)
    for w in range(n + 1):
        p = _sign_p(w, n)
        lev = 0
        if w in right:
            lev = max((j for j in range(1, family + 1) if p <= alpha / j), default=0)
        level_prob[lev] += pmf[w]
    # all rejected iff for every j: #{L >= j} >= family - j + 1. Dynamic programme over
    # j = family … 1 on c = #{L >= j}, the comparisons placed so far.
    state = {0: 1.0}
    remaining = 1.0                        # P(L <= j) for the level being placed
    for j in range(family, 0, -1):
        q = level_prob[j] / remaining if remaining > 0 else 0.0
        new: dict[int, float] = {}
        for c, pr in state.items():
            free = family - c
            for k in range(free + 1):
                c2 = c + k
                if c2 < family - j + 1:
                    continue
                new[c2] = new.get(c2, 0.0) + pr * math.comb(free, k) * q ** k * \
                    (1 - q) ** (free - k)
        state = new
        remaining -= level_prob[j]
    return math.fsum(state.values())


def power_note(n: int, family: int, win_rate: float = 0.7, alpha: float = ALPHA,
               unit: str = "seeds") -> str:
    """One sentence: how often a true ``win_rate`` is detected with ``n`` pairs and Holm
    over ``family`` (one comparison, and all of them)."""
    one = sign_test_power(n, win_rate, family, alpha)
    text = (f"with {n} {unit} and Holm over {family} comparisons, a true {win_rate:.0%} win "
            f"rate is detected in one comparison {one:.0%} of the time")
    if 1 < family <= 4:
        text += f", and in all {family} {sign_test_power(n, win_rate, family, alpha, True):.0%}"
    return text


@dataclass(frozen=True)
class Comparison:
    """One paired comparison of method ``a`` with ``rival`` in the book's vocabulary.

    ``diffs`` and ``median`` are signed so that **positive means a is better** (for errors:
    rival − a; relative ones in % of the rival's value); a diverged run (NaN) enters as
    ±inf, i.e. as a loss for the side that diverged. ``wins``/``losses``/``ties`` count
    seeds; ties leave the sign test, so it sees ``n = wins + losses`` pairs. ``win_ci`` is
    the Clopper–Pearson interval of ``wins / n``, ``median_ci`` the distribution-free
    interval of the median difference (with its ``median_cover``), ``p_raw`` the sign test,
    ``p`` the Holm-adjusted p-value (``p_raw`` for a family of one), ``word`` one of
    :data:`WORDS`."""

    rival: str
    seeds: tuple[int, ...]
    diffs: tuple[float, ...]
    wins: int
    losses: int
    ties: int
    win_rate: float
    win_ci: tuple[float, float]
    median: float
    median_ci: tuple[float, float]
    median_cover: float
    p_raw: float
    p: float
    word: str
    relative: bool = False

    @property
    def n(self) -> int:
        """The untied pairs the sign test sees."""
        return self.wins + self.losses

    def plain(self, unit: str = "seeds", name: str = "GmP") -> str:
        """The plain-words sentence that comes before any p-value."""
        total = self.wins + self.losses + self.ties
        tied = f" ({self.ties} tied)" if self.ties else ""
        return f"{name} better on {self.wins} of {total} {unit}{tied}"

    def cells(self, digits: int = 3) -> list[str]:
        """Table cells: wins–losses–ties, win rate [CI], median [CI], adjusted p, word."""
        f = _fmt_rel if self.relative else (lambda v: _fmt_abs(v, digits))
        return [f"{self.wins}–{self.losses}–{self.ties}",
                f"{self.win_rate:.2f} [{self.win_ci[0]:.2f}, {self.win_ci[1]:.2f}]"
                if self.n else "— (all tied)",
                f"{f(self.median)} [{f(self.median_ci[0])}, {f(self.median_ci[1])}]",
                f"{self.p:.2g}", f"**{self.word}**"]


def _fmt_abs(v: float, digits: int) -> str:
    if math.isinf(v):
        return "+∞" if v > 0 else "−∞"
    return f"{v:+.{digits}g}"


def _fmt_rel(v: float) -> str:
    if math.isinf(v):
        return "+∞" if v > 0 else "−∞"
    return f"{v:+.1f} %"


def word(p: float, wins: int, losses: int, alpha: float = ALPHA) -> str:
    """*supported* (significant, ``a`` better), *contradicted* (significant, ``a`` worse) or
    *not shown* (neither)."""
    if p < alpha and wins > losses:
        return "supported"
    if p < alpha and losses > wins:
        return "contradicted"
    return "not shown"


def claim_word(words: Iterable[str]) -> str:
    """A claim tested against several rivals ("a is better than every rival"): *supported*
    if every comparison is, *contradicted* if any comparison is, *not shown* otherwise."""
    ws = list(words)
    if not ws:
        raise ValueError("claim_word: no comparison")
    bad = [w for w in ws if w not in WORDS]
    if bad:
        raise ValueError(f"claim_word: unknown words {bad}")
    if "contradicted" in ws:
        return "contradicted"
    return "supported" if all(w == "supported" for w in ws) else "not shown"


def _better(a: dict[int, float], b: dict[int, float], lower_is_better: bool, relative: bool
            ) -> tuple[tuple[int, ...], list[float]]:
    seeds = tuple(sorted(set(a) & set(b)))
    if not seeds:
        raise ValueError("compare: the two methods share no seed")
    out = []
    for s in seeds:
        x, y = float(a[s]), float(b[s])
        na, nb = math.isnan(x), math.isnan(y)
        if na or nb:
            out.append(0.0 if na and nb else -math.inf if na else math.inf)
            continue
        d = (y - x) if lower_is_better else (x - y)
        out.append(100 * d / abs(y) if relative else d)
    return seeds, out


def compare(a: dict[int, float], b: dict[int, float], lower_is_better: bool = True,
            relative: bool = False, rival: str = "", p_adjusted: float | None = None,
            alpha: float = ALPHA) -> Comparison:
    """Compare method ``a`` with ``b`` on their shared seeds (``{seed: score}`` each).

    Differences are signed positive when ``a`` is better; ``relative`` expresses them in %
    of ``b``'s score (``100·(b − a)/|b|`` for errors). ``p_adjusted`` replaces the sign
    test's own p-value in the verdict (Holm, see :func:`compare_family`)."""
    seeds, d = _better(a, b, lower_is_better, relative)
    wins, losses, p_raw = sign_test(d)
    ties = sum(x == 0 for x in d)
    n = wins + losses
    lo, hi, cover = median_interval(d)
    p = p_raw if p_adjusted is None else p_adjusted
    return Comparison(rival, seeds, tuple(d), wins, losses, ties,
                      wins / n if n else math.nan,
                      clopper_pearson(wins, n) if n else (0.0, 1.0),
                      float(np.median(d)), (lo, hi), cover, p_raw, p,
                      word(p, wins, losses, alpha), relative)


def compare_family(a: dict[int, float], rivals: dict[str, dict[int, float]],
                   lower_is_better: bool = True, relative: bool = False,
                   alpha: float = ALPHA) -> dict[str, Comparison]:
    """:func:`compare` of ``a`` with every rival, the p-values Holm-adjusted over them."""
    raw = {k: compare(a, v, lower_is_better, relative, k, alpha=alpha)
           for k, v in rivals.items()}
    adj = holm({k: c.p_raw for k, c in raw.items()})
    return {k: compare(a, rivals[k], lower_is_better, relative, k, adj[k], alpha)
            for k in rivals}
