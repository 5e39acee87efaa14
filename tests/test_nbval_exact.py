"""nbval compares exactly what is exact: a changed digit in a checked output fails.

``tests/sanitize.cfg`` masks only what varies between machines (addresses, timings, progress
bars). These tests take real checked cells of the chapters — a SymPy derivation, decimal
numbers (learning rates) and a count —
put each in a small notebook with the imports it needs, and run nbval on it as ``make test``
does: once as saved (it passes), once with one digit of the saved output changed (it must
fail).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SANITIZE = ROOT / "tests" / "sanitize.cfg"


def _checked_cell(notebook: str, needle: str) -> dict:
    """The first code cell of ``notebook`` checked by nbval whose source holds ``needle``."""
    nb = json.loads((ROOT / "book" / notebook).read_text())
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] == "code" and needle in src and (
                "nbval-check-output" in tags or "NBVAL_CHECK_OUTPUT" in src):
            return cell
    raise AssertionError(f"{notebook}: no nbval-checked cell with {needle!r}")


def _notebook(setup: str, cell: dict) -> dict:
    first = {"cell_type": "code", "execution_count": None, "id": "setup",
             "metadata": {}, "outputs": [], "source": setup}
    cell = copy.deepcopy(cell) | {"id": "checked"}
    return {"cells": [first, cell], "metadata": {"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}


def _change_digit(cell: dict) -> dict:
    """``cell`` with one digit of its saved text output changed (the last one)."""
    cell = copy.deepcopy(cell)
    for out in reversed(cell["outputs"]):
        for key, lines in ([("text", out["text"])] if "text" in out
                           else list(out.get("data", {}).items())):
            if key in ("image/png", "text/plain") and "text" not in out:
                continue
            text = "".join(lines) if isinstance(lines, list) else lines
            digits = [m.start() for m in re.finditer(r"\d", text)]
            if digits:
                i = digits[-1]
                text = text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1:]
                if "text" in out:
                    out["text"] = text
                else:
                    out["data"][key] = text
                return cell
    raise AssertionError("no digit in the cell's saved output")


def _nbval(nb: dict, tmp_path: Path, name: str) -> subprocess.CompletedProcess:
    path = tmp_path / f"{name}.ipynb"
    path.write_text(json.dumps(nb))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "--nbval-lax", "--nbval-sanitize-with", str(SANITIZE), str(path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)


CASES = {
    # a SymPy derivation: the dimension in "In R^3" is a digit of the checked output
    "derivation": ("02_instability.ipynb", "symbolic.cab_direction_change(",
                   "from gmp import symbolic"),
    # a decimal number: the learning rates of chapter 5 (0.1 changed to 0.2 must fail)
    "decimal": ("05_levy.ipynb", "small.LevyConfig()", "from gmp.experiments import small"),
    # a count: rows and features of every UCI data set
    "count": ("08_uci.ipynb", "SHAPES[n][0]",
              "from IPython.display import Markdown, display\n"
              "from gmp.data.uci import DATASETS, SHAPES"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_changed_digit_fails_nbval(case, tmp_path):
    notebook, needle, setup = CASES[case]
    cell = _checked_cell(notebook, needle)
    ok = _nbval(_notebook(setup, cell), tmp_path, f"{case}_as_saved")
    assert ok.returncode == 0, ok.stdout[-3000:]
    bad = _nbval(_notebook(setup, _change_digit(cell)), tmp_path, f"{case}_one_digit")
    assert bad.returncode != 0, "nbval passed an output with a changed digit"
    assert "1 failed" in bad.stdout, bad.stdout[-3000:]


def test_sanitizer_masks_no_plain_number():
    """The old sanitizer turned every decimal number into FLOAT; now no rule matches a
    plain number such as a learning rate or a SymPy coefficient."""
    rules = re.findall(r"^regex: (.*)$", SANITIZE.read_text(), flags=re.M)
    assert rules, "no sanitizer rules found"
    for text in ("0.1", "9.9", "19264", "1e-07", "lr 0.01", "3.16"):
        for rule in rules:
            assert not re.search(rule, text), (rule, text)
