"""The verdicts of the book: every chapter prints the verdict that gmp.experiments.claims
computes from the committed results, and the conclusion prints the same word (#22)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gmp.experiments import claims
from gmp.experiments.distributions import WORDS

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = {"05_levy": claims.levy, "06_banana": claims.banana,
            "07_learning_rates": claims.learning_rates, "08_uci": claims.uci}


def _printed(notebook: str) -> dict[str, str]:
    """``{row label: bold verdict word}`` from the saved Markdown outputs of a notebook."""
    nb = json.loads((ROOT / "book" / f"{notebook}.ipynb").read_text())
    out = {}
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            text = "".join(o.get("data", {}).get("text/markdown", ""))
            for line in text.splitlines():
                m = re.match(r"\| ([^|]+?) \| (?:[^|]+ \| )?\*\*([^*]+)\*\* \|", line)
                if m:
                    out[m.group(1)] = m.group(2)
    return out


@pytest.fixture(scope="module")
def computed():
    return {c.title: c for c in claims.all_claims()}


def test_every_verdict_uses_the_vocabulary(computed):
    allowed = set(WORDS) | {claims.NOT_TESTED}
    assert {c.word for c in computed.values()} <= allowed


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_chapter_and_conclusion_print_the_computed_verdict(chapter, computed):
    mine = CHAPTERS[chapter]()
    printed, concl = _printed(chapter), _printed("11_conclusion")
    for c in mine:
        assert c.title in computed
        assert printed.get(c.title) == c.word, (chapter, c.title, printed.get(c.title))
        assert concl.get(c.title) == c.word, ("conclusion", c.title, concl.get(c.title))


def test_conclusion_has_a_row_for_every_claim(computed):
    concl = _printed("11_conclusion")
    assert set(concl) == set(computed)
    assert all(concl[t] == c.word for t, c in computed.items())


def test_the_verdicts_the_book_reports(computed):
    """The committed results give these words; a change of results or rules shows here."""
    word = {c.key: c.word for c in computed.values()}
    assert word["levy-stability"] == "supported"
    assert word["levy-accuracy"] == "not shown"
    assert word["banana-accuracy-official"] == "supported"
    assert word["banana-accuracy-honest"] == "not shown"
    assert word["banana-stability"] == "contradicted"
    assert word["banana-selection"] == "not shown"
    assert word["uci-official"] == word["uci-honest"] == "not shown"
    assert word["lr-levy"] == "not shown"
    assert word["lr-banana"] == "contradicted"
    assert word["imagenet"] == claims.NOT_TESTED


def test_two_modes_need_more_than_a_best_split():
    import numpy as np

    rng = np.random.default_rng(1)
    one = np.exp(rng.normal(0, 0.3, 80))
    two = np.concatenate([np.exp(rng.normal(-0.7, 0.05, 10)), np.exp(rng.normal(0.1, 0.05, 10))])
    assert claims.bimodality_p(one)[1] > 0.05
    assert claims.bimodality_p(two)[1] < 0.01
