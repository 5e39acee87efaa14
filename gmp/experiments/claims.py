"""Every claim of the paper, with the book's verdict computed from the committed results.

One function per chapter returns :class:`Claim` objects; the chapters print them and the
conclusion collects them all (:func:`all_claims`), so a verdict is computed in one place and
the two can never disagree (``tests/test_claims.py`` compares the printed tables too).

The verdict is one of three words (:data:`gmp.experiments.distributions.WORDS`):
*supported* (significant in the claimed direction), *contradicted* (significant the other
way) or *not shown* (neither), for a claim against several rivals combined by
:func:`gmp.experiments.distributions.claim_word`; a claim without data in this repository
reads :data:`NOT_TESTED`. Differences are signed **positive = GmP better** throughout (for
UCI in % of the rival's RMSE). The statistics are explained in the book's appendix on
comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..params import LABELS, PARAMS, PROPOSED
from .distributions import (
    ALPHA,
    Comparison,
    claim_word,
    compare_family,
    fisher_exact,
    power_note,
    scores,
    split_modes,
)
from .tasks import TASKS

__all__ = ["Claim", "NOT_TESTED", "RESULTS", "theory", "figure1", "levy", "banana",
           "learning_rates", "LR_FILES", "uci", "imagenet32", "imagenet", "all_claims",
           "verdict_table", "comparison_table", "bimodality_p", "separation", "uci_claim"]

#: The folder of the committed results files.
RESULTS = Path(__file__).resolve().parents[2] / "results"

#: The verdict of a claim this repository has no data for.
NOT_TESTED = "not tested here (needs a GPU)"


@dataclass(frozen=True)
class Claim:
    """One claim of the paper (or one question of the book) and its verdict.

    ``key`` identifies it (``"levy-accuracy"``); ``title`` is the row label in every table
    (chapter and conclusion); ``source`` the paper's section/figure; ``word`` the verdict;
    ``protocol`` the setting it was tested under; ``strength`` the evidence in plain words;
    ``detail`` the numbers; ``chapter`` the book page (``"05_levy"``);
    ``comparisons`` the paired comparisons behind it, by rival."""

    key: str
    title: str
    source: str
    word: str
    protocol: str
    strength: str
    detail: str
    chapter: str
    paper: bool = True
    comparisons: dict = field(default_factory=dict)


def _runs(results: Path, name: str):
    from .small import load_results

    return load_results(str(Path(results) / f"{name}.json"))[1]


def _family(runs, key: str | None, lower_is_better: bool) -> dict[str, Comparison]:
    rivals = [m for m in PARAMS if m != PROPOSED and any(r.param == m for r in runs)]
    return compare_family(scores(runs, PROPOSED, key), {m: scores(runs, m, key) for m in rivals},
                          lower_is_better)


def _against(comps: dict[str, Comparison]) -> str:
    """``"supported against SP, WN; contradicted against BN"``."""
    parts = []
    for w in ("supported", "contradicted", "not shown"):
        who = [LABELS[k] for k, c in comps.items() if c.word == w]
        if who:
            parts.append(f"{w} against {', '.join(who)}")
    return "; ".join(parts)


def _plain(comps: dict[str, Comparison], unit: str = "seeds") -> str:
    return "; ".join(f"vs {LABELS[k]}: {c.plain(unit)}, adjusted p = {c.p:.2g}"
                     for k, c in comps.items())


def _strength(comps: dict[str, Comparison], unit: str = "seeds") -> str:
    """The evidence in plain words, with the range the data allow and a power note."""
    w = claim_word(c.word for c in comps.values())
    n = max(c.n for c in comps.values())
    total = max(len(c.seeds) for c in comps.values())
    if w == "supported":
        lo = min(c.win_ci[0] for c in comps.values())
        return (f"GmP better on at least {min(c.wins for c in comps.values())} of {total} "
                f"{unit} against every rival; the data allow win rates down to {lo:.2f}")
    if w == "contradicted":
        bad = {k: c for k, c in comps.items() if c.word == "contradicted"}
        return ("GmP worse: " + "; ".join(
            f"vs {LABELS[k]} better on only {c.wins} of {len(c.seeds)} {unit} (win rate at "
            f"most {c.win_ci[1]:.2f})" for k, c in bad.items()))
    lo = min(c.win_ci[0] for c in comps.values())
    hi = max(c.win_ci[1] for c in comps.values())
    return (f"inconclusive: the data allow GmP win rates from {lo:.2f} to {hi:.2f}; "
            + power_note(n, len(comps), unit=unit))


# ---------------------------------------------------------------------------------------
# Part I: theory
# ---------------------------------------------------------------------------------------
def theory() -> list[Claim]:
    """Props. 2.3–2.5 and Theorem 3.7, each checked by SymPy (:mod:`gmp.symbolic`)."""
    from .. import symbolic

    cart = [symbolic.sp_flip(2), symbolic.wn_direction_change(2),
            symbolic.bn_direction_change(2)]
    bound = symbolic.metric_bound(3)
    ok = all(d.holds for d in cart)
    return [
        Claim("cab-instability", "SP, WN and BN boundaries can turn by any angle under a "
              "small step (small weights)", "Sec. 2.3, Props. 2.3–2.5",
              "supported" if ok else "contradicted", "mathematics",
              "a proof; each step re-derived by SymPy", ", ".join(
                  f"{d.name}: {'verified' if d.holds else 'FAILED'}" for d in cart),
              "02_instability"),
        Claim("gmp-bound", "under GmP a small step can only make a small turn",
              "Sec. 3.3, Thm. 3.7", "supported" if bound.holds else "contradicted",
              "mathematics", "a proof; the metric bound re-derived by SymPy",
              f"{bound.name}: {'verified' if bound.holds else 'FAILED'}",
              "03_hyperspherical"),
    ]


def figure1(m: int = 1000, delta: float = 1e-3) -> Claim:
    """Fig. 1(b–e): ``m`` small-weight units perturbed by ``delta``; the median turn of
    each parameterization's boundaries. Supported when GmP's largest turn is below every
    rival's median turn."""
    from ..perturbation import run_perturbation

    med, top = {}, {}
    for p in PARAMS:
        ang = run_perturbation(p, delta, m=m).angle_change_deg
        med[p], top[p] = float(np.median(ang)), float(np.max(ang))
    ok = top[PROPOSED] < min(med[p] for p in PARAMS if p != PROPOSED)
    detail = (f"{m} units, weights of size 1e-3, every parameter moved by {delta:g}: "
              "median turn " + ", ".join(f"{LABELS[p]} {med[p]:.3g}°" for p in PARAMS)
              + f"; largest GmP turn {top[PROPOSED]:.3g}°")
    return Claim("figure1", "a small perturbation swings SP/WN/BN boundaries, not GmP's",
                 "Sec. 2.3, Fig. 1(b–e)", "supported" if ok else "not shown",
                 "the paper's perturbation experiment",
                 "deterministic: every unit drawn, none left out", detail, "02_instability")


# ---------------------------------------------------------------------------------------
# Part II: Levy, Banana
# ---------------------------------------------------------------------------------------
def separation(values) -> np.ndarray:
    """Otsu's between-group share of the variance for each sample (rows of ``values``,
    already on the scale to split; sorted internally): the best split's share, vectorized
    over rows."""
    v = np.sort(np.atleast_2d(np.asarray(values, dtype=np.float64)), axis=1)
    n = v.shape[1]
    k = np.arange(1, n)
    csum = np.cumsum(v, axis=1)[:, :-1]
    total = v.sum(axis=1, keepdims=True)
    ma, mb = csum / k, (total - csum) / (n - k)
    between = k * (n - k) / n * (ma - mb) ** 2
    var = v.var(axis=1) * n
    return between.max(axis=1) / np.where(var > 0, var, np.inf)


def bimodality_p(values: Sequence[float], sims: int = 4000, seed: int = 0,
                 log: bool = True) -> tuple[float, float]:
    """``(separation, p)``: the two-mode split's separation of ``values`` (on log scale when
    ``log``) and how often ``sims`` samples of the same size from one normal distribution
    with the same mean and spread (log-normal for ``log``) separate at least as well — a
    parametric bootstrap of the one-mode hypothesis. Small ``p``: two modes."""
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=np.float64)
    v = np.log(v) if log else v
    obs = float(separation(v)[0])
    rng = np.random.default_rng(seed)
    sim = rng.normal(v.mean(), v.std(ddof=1), size=(sims, len(v)))
    return obs, float(np.mean(separation(sim) >= obs - 1e-12))


def _p(p: float, sims: int = 4000) -> str:
    return f"< {1 / sims:.2g}" if p == 0 else f"= {p:.2g}"


def levy(results: Path = RESULTS) -> list[Claim]:
    """Fig. 2 (Sec. 4.1.1): stability, coverage and accuracy of GmP on Levy (``authors``
    preset, 20 data seeds), and the book's two questions about its low-error runs."""
    runs = _runs(results, "levy_authors")
    fixed = _runs(results, "levy_authors_data0")
    proto = "preset authors, 20 data seeds, the paper's learning rates"
    out = []
    comps = _family(runs, "max_step_change", lower_is_better=True)
    gm = [r.metrics["max_step_change"] for r in runs if r.param == PROPOSED]
    w = claim_word(c.word for c in comps.values())
    out.append(Claim("levy-stability", "Levy: GmP's characteristic points move little per "
                     "step", "Sec. 4.1.1, Fig. 2(c)", w, proto, _strength(comps),
                     f"largest GmP move in any run {max(gm):.3g}; " + _plain(comps),
                     "05_levy", comparisons=comps))
    comps = _family(runs, "units_through_data", lower_is_better=False)
    w = claim_word(c.word for c in comps.values())
    out.append(Claim("levy-coverage", "Levy: GmP keeps more units cutting the data",
                     "Sec. 4.1.1, Fig. 2(d–g)", w, proto, _against(comps),
                     _plain(comps), "05_levy", comparisons=comps))
    comps = _family(runs, None, lower_is_better=True)
    w = claim_word(c.word for c in comps.values())
    out.append(Claim("levy-accuracy", "Levy: GmP has the lowest test RMSE",
                     "Sec. 4.1.1, Fig. 2(g)", w, proto, _strength(comps), _plain(comps),
                     "05_levy", comparisons=comps))
    # the book's questions: more low-error runs? two modes?
    modes = split_modes([r.score for r in runs])
    low = {m: sum(r.score <= modes.threshold for r in runs if r.param == m) for m in PARAMS}
    n = {m: sum(r.param == m for r in runs) for m in PARAMS}
    rivals = [m for m in PARAMS if m != PROPOSED]
    ol, on = sum(low[m] for m in rivals), sum(n[m] for m in rivals)
    p = fisher_exact(low[PROPOSED], n[PROPOSED] - low[PROPOSED], ol, on - ol)
    w = ("supported" if p < ALPHA and low[PROPOSED] / n[PROPOSED] > ol / on else
         "contradicted" if p < ALPHA else "not shown")
    out.append(Claim("levy-low-runs", "Levy: GmP reaches the low-error region more often",
                     "the book's question", w, proto,
                     f"GmP {low[PROPOSED]} of {n[PROPOSED]} runs below test RMSE "
                     f"{modes.threshold:.2f}, the others {ol} of {on}",
                     f"Fisher's exact p = {p:.2g}", "05_levy", paper=False))
    g0 = [r.score for r in fixed if r.param == PROPOSED]
    sep, p0 = bimodality_p(g0)
    m0 = split_modes(g0)
    pooled, pp = bimodality_p([r.score for r in runs])
    w = "supported" if p0 < ALPHA else "not shown"
    out.append(Claim("levy-modes", "Levy: GmP's test RMSE has two modes",
                     "the book's question", w,
                     "the authors' data sample, 20 initializations",
                     f"{m0.low} runs at most {m0.threshold:.2f}, {m0.high} above; separation "
                     f"{sep:.2f}, one-mode bootstrap p {_p(p0)}",
                     f"over 20 data seeds, all methods pooled: separation {pooled:.2f}, "
                     f"which one mode reaches with probability {pp:.2f}", "05_levy",
                     paper=False))
    return out


def _accuracy(runs, proto: str, key: str, title: str) -> Claim:
    comps = _family(runs, None, lower_is_better=False)
    w = claim_word(c.word for c in comps.values())
    return Claim(key, title, "Sec. 4.1.2, Fig. 3", w, proto, _strength(comps),
                 _plain(comps), "06_banana", comparisons=comps)


def banana(results: Path = RESULTS) -> list[Claim]:
    """Fig. 3 (Sec. 4.1.2) on Banana (``authors`` preset, 20 data seeds, both protocols),
    and whether the test-set selection helps GmP more than its rivals."""
    off = _runs(results, "banana_authors_official")
    hon = _runs(results, "banana_authors_honest")
    out = []
    comps = _family(hon, "max_step_change", lower_is_better=True)
    above = {m: sum(r.metrics["max_step_change"] > 90 for r in hon if r.param == m)
             for m in PARAMS}
    runs_of = {m: sum(r.param == m for r in hon) for m in PARAMS}
    out.append(Claim("banana-stability", "Banana: GmP's boundaries turn least per step",
                     "Sec. 4.1.2, Fig. 3(i)", claim_word(c.word for c in comps.values()),
                     "honest protocol, the paper's learning rates (GmP's 10× the others')",
                     _strength(comps),
                     "runs with a one-step turn above 90°: " + ", ".join(
                         f"{LABELS[m]} {above[m]}/{runs_of[m]}" for m in PARAMS)
                     + "; " + _plain(comps),
                     "06_banana", comparisons=comps))
    comps = _family(hon, "units_through_data", lower_is_better=False)
    out.append(Claim("banana-coverage", "Banana: GmP keeps more boundaries among the data",
                     "Sec. 4.1.2, Fig. 3(j–m)", claim_word(c.word for c in comps.values()),
                     "honest protocol", "almost every run of every method keeps all 10 "
                     "boundaries in the data (ties)" if all(
                         c.ties >= 0.8 * len(c.seeds) for c in comps.values())
                     else _strength(comps), _plain(comps), "06_banana", comparisons=comps))
    out.append(_accuracy(off, "official protocol (selects on the test split)",
                         "banana-accuracy-official", "Banana: GmP has the best test accuracy "
                         "(official protocol)"))
    out.append(_accuracy(hon, "honest protocol (selects on a validation split)",
                         "banana-accuracy-honest", "Banana: GmP has the best test accuracy "
                         "(honest protocol)"))
    gain = {m: {s: scores(off, m)[s] - scores(hon, m)[s] for s in scores(off, m)}
            for m in PARAMS}
    comps = compare_family(gain[PROPOSED], {m: gain[m] for m in PARAMS if m != PROPOSED},
                           lower_is_better=False)
    out.append(Claim("banana-selection", "Banana: selecting on the test split helps GmP "
                     "more than its rivals", "the book's question",
                     claim_word(c.word for c in comps.values()),
                     "official gain (official − honest accuracy) of GmP against each rival's",
                     _strength(comps), _plain(comps), "06_banana", paper=False,
                     comparisons=comps))
    return out


#: The learning-rate sweeps of chapter 7 (``make lr-results``), by task.
LR_FILES = {"levy": "lr_levy", "banana": "lr_banana_honest"}


def learning_rates(results: Path = RESULTS, lr: float = 1.0) -> list[Claim]:
    """The robustness of GmP to large learning rates (Secs. 4.1.1–4.1.2), on the sweeps of
    chapter 7 (every param at 0.001, 0.01, 0.1 and 1, 20 seeds, the notebooks' budgets):
    GmP against each rival at learning rate ``lr``, paired by seed (test RMSE for Levy,
    test accuracy for Banana under the honest protocol)."""
    out = []
    for name, file in LR_FILES.items():
        runs = [r for r in _runs(results, file) if r.lr == lr]
        task = TASKS[name]
        comps = _family(runs, None, lower_is_better=not task.higher_is_better)
        # the protocol is named where it matters: where the official one selects on test
        honest = task.selection_leaks("official") and runs[0].protocol == "honest"
        out.append(Claim(
            f"lr-{name}", f"{name.capitalize()}: GmP tolerates a large learning rate "
            f"({lr:g})", "Secs. 4.1.1–4.1.2", claim_word(c.word for c in comps.values()),
            f"{task.headline_label} at learning rate {lr:g}, the notebooks' full budgets"
            + (", honest protocol" if honest else ""),
            _strength(comps), _plain(comps), "07_learning_rates", comparisons=comps))
    return out


# ---------------------------------------------------------------------------------------
# Part III: UCI, ImageNet
# ---------------------------------------------------------------------------------------
def uci_claim(res: dict, protocol: str, key: str) -> Claim:
    """Table 1's claim, "GmP consistently achieves the best test RMSE", on one file
    (:func:`gmp.experiments.uci_report.claim_verdict`)."""
    from .uci_report import claim_verdict, comparisons

    comps = comparisons(res)
    v = claim_verdict(res)
    fam = sum(len(cs) for cs in comps.values())
    splits = max(len(c.seeds) for cs in comps.values() for c in cs.values())
    strength = v["summary"] + "; " + power_note(splits, fam, 0.8, unit="splits")
    detail = "; ".join(f"{n}: {w}" for n, w in v["per_dataset"].items())
    return Claim(key, f"UCI: GmP has the best test RMSE ({protocol})", "Sec. 4.2.1, Table 1",
                 v["word"], protocol, strength, detail, "08_uci", comparisons=comps)


def uci(results: Path = RESULTS) -> list[Claim]:
    """Table 1 under the official protocol (selects on the test split) and the honest one
    with the refit (learning rate, schedule and training length chosen on the training
    part, then refit on all of it: ``results/uci_honest_refit.json``). A file that holds
    fewer data sets than the official one says so in the claim's strength: the claim is
    about every data set, so it cannot be *supported* there."""
    from .uci_report import load_results

    off = load_results(Path(results) / "uci_official.json")
    hon = load_results(Path(results) / "uci_honest_refit.json")
    honest = uci_claim(hon, "honest protocol (refit)", "uci-honest")
    missing = [n for n in off["datasets"] if n not in hon["datasets"]]
    if missing:
        honest = replace(
            honest, word="not shown" if honest.word == "supported" else honest.word,
            strength=honest.strength + f"; {', '.join(missing)} not run under this "
            "protocol (cut for time), so the claim cannot be supported on all "
            f"{len(off['datasets'])}")
    return [uci_claim(off, "official protocol", "uci-official"), honest]


def _gpu_claim(key: str, title: str, source: str, chapter: str, folder: Path) -> Claim:
    have = sorted(Path(folder).glob("*/summary.json")) + sorted(Path(folder).glob(
        "summary*.json")) if Path(folder).is_dir() else []
    note = (f"{len(have)} run summaries recorded; the verdict needs every row of the table"
            if have else "no runs recorded: the chapter gives the commands and the cost")
    return Claim(key, title, source, NOT_TESTED, "—", note, "", chapter)


def imagenet32(results: Path = RESULTS) -> list[Claim]:
    """Table 2 and Fig. 4 (Sec. 4.2.2): not run here."""
    folder = Path(results) / "imagenet32"
    return [_gpu_claim("imagenet32", "ImageNet32: VGG-6 with GmP+IMN has the best accuracy "
                       "at every batch size", "Sec. 4.2.2, Table 2, Fig. 4", "09_imagenet32",
                       folder),
            _gpu_claim("imn", "IMN improves GmP in deep networks", "Remark 3.6, Table 2",
                       "09_imagenet32", folder)]


def imagenet(results: Path = RESULTS) -> list[Claim]:
    """Table 3 (Sec. 4.2.3): not run here."""
    return [_gpu_claim("imagenet", "ImageNet: ResNet-18 with GmP+IMN beats BN and WN+MBN",
                       "Sec. 4.2.3, Table 3", "10_imagenet", Path(results) / "imagenet")]


def all_claims(results: Path = RESULTS) -> list[Claim]:
    """Every claim, in the order of the book."""
    return [*theory(), figure1(), *levy(results), *banana(results), *learning_rates(results),
            *uci(results), *imagenet32(results), *imagenet(results)]


# ---------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------
def verdict_table(claims: Sequence[Claim], link: bool = False) -> str:
    """Markdown: one row per claim — claim, verdict (bold), protocol, evidence in plain
    words, numbers (and, with ``link``, the paper's place and the chapter)."""
    head = "| claim | verdict | tested under | evidence | numbers |"
    sep = "|---|---|---|---|---|"
    if link:
        head = "| claim | paper | verdict | tested under | evidence | chapter |"
        sep = "|---|---|---|---|---|---|"
    lines = [head, sep]
    for c in claims:
        if link:
            lines.append(f"| {c.title} | {c.source} | **{c.word}** | {c.protocol} | "
                         f"{c.strength} | {{doc}}`{c.chapter}` |")
        else:
            lines.append(f"| {c.title} | **{c.word}** | {c.protocol} | {c.strength} | "
                         f"{c.detail} |")
    return "\n".join(lines)


def comparison_table(comps: dict[str, Comparison], label: str = "GmP vs",
                     names: dict[str, str] | None = None, unit: str = "difference") -> str:
    """Markdown: one row per comparison — wins–losses–ties, win rate [95 % CI], median
    difference [distribution-free CI] (positive = GmP better), adjusted p, verdict."""
    names = names or LABELS
    lines = [f"| {label} | wins–losses–ties | win rate [95 % CI] | median {unit} [CI] | "
             "adjusted p | verdict |", "|---|---|---|---|---|---|"]
    lines += [f"| {names.get(k, k)} | " + " | ".join(c.cells()) + " |"
              for k, c in comps.items()]
    return "\n".join(lines)
