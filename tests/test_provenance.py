"""gmp.provenance: the revision and machine recorded in every results file."""

import re
import subprocess
from pathlib import Path

import pytest

from gmp import provenance

ROOT = Path(__file__).resolve().parents[1]


def _in_checkout() -> bool:
    try:
        subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, check=True)
        return True
    except (OSError, subprocess.CalledProcessError):
        return False


@pytest.mark.skipif(not _in_checkout(), reason="not a git checkout")
def test_git_revision_is_head(tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    info = provenance.git_revision()
    assert info["revision"] == head and isinstance(info["dirty"], bool)
    assert provenance.git_revision(tmp_path / "out.json") == info   # outside: no effect
    s = provenance.revision_string()
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", s)
    assert s.endswith("+dirty") == info["dirty"]


def test_ignored_results_file_does_not_make_the_checkout_dirty(monkeypatch, tmp_path):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                       cwd=tmp_path, capture_output=True, check=True)

    try:
        git("init", "-q")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results.json").write_text("{}\n")
    git("add", ".")
    git("commit", "-q", "-m", "init")
    monkeypatch.setattr(provenance, "_ROOT", tmp_path)
    assert provenance.git_revision()["dirty"] is False
    (tmp_path / "results.json").write_text('{"a": 1}\n')       # the run writes its results
    assert provenance.git_revision()["dirty"] is True
    assert provenance.git_revision(tmp_path / "results.json")["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")                # a change of the code counts
    assert provenance.git_revision(tmp_path / "results.json")["dirty"] is True


def test_outside_a_checkout(monkeypatch, tmp_path):
    monkeypatch.setattr(provenance, "_ROOT", tmp_path)
    assert provenance.git_revision() == {"revision": None, "dirty": None}
    assert provenance.revision_string() == "unknown"


def test_cpu_model():
    assert isinstance(provenance.cpu_model(), str) and provenance.cpu_model()
