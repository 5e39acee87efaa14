"""Modes, paired comparisons, the sign test and the strip figure."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

from gmp.experiments import figures
from gmp.experiments.distributions import paired, scores, sign_test, split_modes, verdict

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


def test_verdict_words():
    assert verdict(True) == "holds"
    assert verdict(False, True, "in the good mode") == "holds only in the good mode"
    assert verdict(False) == "does not hold here"


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
