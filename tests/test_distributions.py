"""Modes, paired comparisons, the sign test and the strip figure."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

from gmp.experiments import figures
from gmp.experiments.distributions import paired, scores, sign_test, split_modes

matplotlib.use("Agg")


def test_split_modes_finds_the_gap():
    good, bad = [0.45, 0.5, 0.55, 0.6], [1.2, 1.25, 1.3, 1.35, 1.4, 1.45]
    m = split_modes(good + bad)
    assert (m.low, m.high) == (4, 6)
    assert 0.6 < m.threshold < 1.2
    assert m.threshold == pytest.approx(math.sqrt(0.6 * 1.2))  # geometric midpoint
    assert m.separation > 0.9
    lin = split_modes([1.0, 2.0, 10.0, 11.0], log=False)
    assert (lin.low, lin.high, lin.threshold) == (2, 2, 6.0)
    unimodal = split_modes(np.linspace(1.0, 2.0, 20))
    assert unimodal.separation < 0.8
    with pytest.raises(ValueError, match="distinct"):
        split_modes([1.0, 1.0])
    with pytest.raises(ValueError, match="positive"):
        split_modes([0.0, 1.0])


def test_sign_test_exact_values():
    assert sign_test([1.0] * 10) == (10, 0, pytest.approx(2 / 1024))
    pos, neg, p = sign_test([1, -1, 2, 0, -3, math.nan])
    assert (pos, neg, p) == (2, 2, 1.0)
    # 8 of 10: P(X <= 2) = (1 + 10 + 45)/1024, two-sided doubled
    assert sign_test([1] * 8 + [-1] * 2)[2] == pytest.approx(2 * 56 / 1024)
    assert sign_test([]) == (0, 0, 1.0)


def test_paired_counts_wins_on_shared_seeds():
    a = {0: 0.5, 1: 1.2, 2: 0.4, 3: 0.9, 9: 0.1}
    b = {0: 1.1, 1: 1.0, 2: 0.9, 3: 0.9}
    p = paired(a, b)  # lower is better: a wins on seeds 0 and 2, loses on 1, ties on 3
    assert p.seeds == (0, 1, 2, 3) and (p.wins, p.losses, p.ties) == (2, 1, 1)
    assert p.median == pytest.approx(np.median([-0.6, 0.2, -0.5, 0.0]))
    hi = paired(a, b, lower_is_better=False)
    assert (hi.wins, hi.losses) == (1, 2)
    with pytest.raises(ValueError, match="no data seed"):
        paired({0: 1.0}, {1: 1.0})


class _Run:
    def __init__(self, param, seed, data_seed, score):
        self.param, self.seed, self.data_seed, self.score = param, seed, data_seed, score
        self.metrics = {"r": score}


def test_scores_by_seed_and_duplicates():
    runs = [_Run("sp", 0, 0, 1.0), _Run("sp", 1, 0, 2.0), _Run("gmp", 0, 0, 3.0)]
    assert scores(runs, "sp", by="seed") == {0: 1.0, 1: 2.0}
    assert scores(runs, "gmp", key="r") == {0: 3.0}
    with pytest.raises(ValueError, match="share data_seed 0"):
        scores(runs, "sp")


def test_strip_figure_draws_every_run():
    import matplotlib.pyplot as plt

    groups = {"SP": [1.1, 1.2, 1.3], "GmP": [0.5, 1.4, math.nan]}
    fig = figures.strip_figure(groups, "test RMSE", log=True, threshold=0.9,
                               reference={"GmP": 0.496})
    ax = fig.axes[0]
    dots = [c for c in ax.collections if c.get_offsets().shape[0] in (2, 3)]
    assert sum(c.get_offsets().shape[0] for c in dots) == 5  # NaN dropped
    assert [t.get_text() for t in ax.get_xticklabels()] == ["SP", "GmP"]
    plt.close(fig)


def test_holm_and_fisher_exact():
    from gmp.experiments.distributions import fisher_exact, holm

    adj = holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adj == {"a": pytest.approx(0.03), "c": pytest.approx(0.06), "b": pytest.approx(0.06)}
    # the classic tea-tasting table [[3, 1], [1, 3]]: two-sided p = 0.4857
    assert fisher_exact(3, 1, 1, 3) == pytest.approx(34 / 70)
    # 6 of 20 vs 0 of 60 in a mode: only the observed table is that unlikely
    assert fisher_exact(6, 14, 0, 60) == pytest.approx(
        math.comb(20, 6) * math.comb(60, 0) / math.comb(80, 6), rel=1e-12)


def test_paired_counts_nan_as_a_loss():
    p = paired({0: math.nan, 1: 1.0, 2: math.nan}, {0: 2.0, 1: math.nan, 2: math.nan})
    assert (p.wins, p.losses, p.ties) == (1, 1, 1)


class _R:
    def __init__(self, param, data_seed, score, units):
        self.param, self.seed, self.data_seed, self.score = param, data_seed, data_seed, score
        self.metrics = {"units": units}


def test_paired_against_by_param_and_the_markdown_table():
    from gmp.experiments.distributions import paired_against

    runs = [_R("sp", s, 1.0 + s, 3) for s in range(3)] + [_R("gmp", s, 0.5 + s, 5)
                                                           for s in range(3)]
    pairs = paired_against(runs)
    assert list(pairs) == ["sp"] and (pairs["sp"].wins, pairs["sp"].losses) == (3, 0)
    more = paired_against(runs, key="units", lower_is_better=False)["sp"]
    assert more.wins == 3 and more.median == 2.0
    assert figures.by_param(runs) == {"SP": [1.0, 2.0, 3.0], "GmP": [0.5, 1.5, 2.5]}
    assert figures.by_param(runs, "units")["GmP"] == [5, 5, 5]
    table = figures.paired_markdown(pairs)
    assert table.splitlines()[0].startswith("| GmP vs | GmP better")
    assert "| SP | 3 | 0 | 0 | -0.500 | 0.25 |" in table


# ------------------------------------------------------------ the book's vocabulary (#22)
def test_clopper_pearson_matches_known_intervals():
    from gmp.experiments.distributions import clopper_pearson

    # published values (e.g. R's binom.test): 10 of 19 -> [0.289, 0.756]
    lo, hi = clopper_pearson(10, 19)
    assert lo == pytest.approx(0.2886, abs=1e-3) and hi == pytest.approx(0.7555, abs=1e-3)
    assert clopper_pearson(0, 10)[0] == 0.0 and clopper_pearson(10, 10)[1] == 1.0
    # 0 of 10: upper bound 1 - 0.025**(1/10)
    assert clopper_pearson(0, 10)[1] == pytest.approx(1 - 0.025 ** 0.1, abs=1e-6)
    with pytest.raises(ValueError):
        clopper_pearson(3, 2)


def test_median_interval_order_statistics():
    from gmp.experiments.distributions import median_interval

    lo, hi, cover = median_interval(range(20))       # j = 6: [x_(6), x_(15)]
    assert (lo, hi) == (5.0, 14.0) and cover == pytest.approx(1 - 2 * 0.020695, abs=1e-5)
    lo, hi, cover = median_interval(range(10))       # j = 2: 1 - 2*11/1024
    assert (lo, hi) == (1.0, 8.0) and cover == pytest.approx(1 - 22 / 1024)
    assert median_interval([1, 2, 3, 4, 5])[:2] == (-math.inf, math.inf)   # too few


def test_power_of_the_sign_test_under_holm():
    from gmp.experiments.distributions import sign_test_power

    # 20 seeds, Holm over 3: one comparison needs 16 wins (P = 0.2375); all three need
    # two at >= 16 and the third at >= 15
    assert sign_test_power(20, 0.7, 3) == pytest.approx(0.2375, abs=1e-4)
    a, b = 0.23751, 0.17886
    assert sign_test_power(20, 0.7, 3, every=True) == pytest.approx(a ** 3 + 3 * a * a * b,
                                                                   abs=1e-3)
    # 10 splits, Holm over 21: only 10-0 is significant
    assert sign_test_power(10, 0.8, 21) == pytest.approx(0.8 ** 10)
    assert sign_test_power(20, 0.5, 1) < 0.05 / 2 + 1e-12   # size of the test


def test_verdict_words_on_hand_made_cases():
    from gmp.experiments.distributions import claim_word, compare, compare_family

    seeds = range(20)
    base = {s: 1.0 for s in seeds}
    better = {s: 0.9 for s in seeds}                 # a wins all 20 (errors)
    worse = {s: 1.1 for s in seeds}
    coin = {s: 0.9 if s % 2 else 1.1 for s in seeds}  # 10-10
    assert compare(better, base).word == "supported"
    assert compare(worse, base).word == "contradicted"
    c = compare(coin, base)
    assert c.word == "not shown" and (c.wins, c.losses, c.ties) == (10, 10, 0)
    assert c.win_ci[0] < 0.5 < c.win_ci[1]
    # sign: positive = a better, for errors and for accuracies, absolute and relative
    assert compare(better, base).median == pytest.approx(0.1)
    assert compare(better, base, relative=True).median == pytest.approx(10.0)
    assert compare(base, better, lower_is_better=False).median == pytest.approx(0.1)
    # a diverged run loses; two diverged runs tie and leave the test
    nan = {**better, 0: math.nan}
    c = compare(nan, base)
    assert (c.wins, c.losses) == (19, 1) and min(c.diffs) == -math.inf
    c = compare(nan, {**base, 0: math.nan})
    assert (c.wins, c.losses, c.ties) == (19, 0, 1)
    # Holm over a family: 15-5 is significant alone (p = 0.041) but not among three
    fifteen = {s: 0.9 if s < 15 else 1.1 for s in seeds}
    assert compare(fifteen, base).word == "supported"
    fam = compare_family(fifteen, {"x": base, "y": base, "z": base})
    assert {c.word for c in fam.values()} == {"not shown"}
    assert fam["x"].p == pytest.approx(min(1, 3 * fam["x"].p_raw))
    assert claim_word(["supported", "supported"]) == "supported"
    assert claim_word(["supported", "not shown"]) == "not shown"
    assert claim_word(["supported", "contradicted"]) == "contradicted"
    with pytest.raises(ValueError):
        claim_word(["holds"])
