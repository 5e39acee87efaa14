"""gmp.provenance: the revision and machine recorded in every results file."""

import datetime
import json
import re
import subprocess
from pathlib import Path

import pytest

from gmp import provenance
from gmp.experiments.uci_report import load_results

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


def _git_repo(path: Path):
    """``git(*args)`` in a new repository at ``path`` (skips the test without git)."""
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                       cwd=path, capture_output=True, check=True)

    try:
        git("init", "-q")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available")
    return git


def test_ignored_results_file_does_not_make_the_checkout_dirty(monkeypatch, tmp_path):
    git = _git_repo(tmp_path)
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


def test_record_schema():
    rec = provenance.record(["gmp-uci", "--datasets", "all", "--out", "a b.json"], threads=3,
                            extra={"jobs": 2})
    assert list(rec)[: len(provenance.KEYS)] == list(provenance.KEYS) and rec["jobs"] == 2
    assert rec["command"] == "gmp-uci --datasets all --out 'a b.json'"
    assert rec["git_dirty"] in (True, False, None)
    assert datetime.datetime.fromisoformat(rec["date_utc"]).utcoffset() == datetime.timedelta(0)
    hw, sw = rec["hardware"], rec["software"]
    assert hw["torch_threads"] == 3 and hw["cpu"] == provenance.cpu_model()
    assert isinstance(hw["cuda_devices"], list) and {"python", "torch", "numpy"} <= set(sw)
    assert json.loads(json.dumps(rec)) == rec                  # plain JSON
    assert provenance.normalize(rec) == rec                    # the current schema is a fixed point
    assert provenance.record("make bench")["command"] == "make bench"


def test_record_rejects_bad_arguments():
    with pytest.raises(ValueError, match="git_revision"):
        provenance.record([], extra={"git_revision": "x"})
    with pytest.raises(ValueError, match="threads must be >= 1"):
        provenance.record([], threads=0)
    with pytest.raises(TypeError, match="mapping"):
        provenance.normalize(["not", "a", "record"])


def test_normalize_reads_the_older_schemas():
    uci_2026 = {"command": "gmp-uci", "git": {"revision": "abc", "dirty": False},
                "date": "2026-11-30T18:54:52+00:00",
                "hardware": {"cpu": "AMD EPYC", "logical_cpus": 2, "torch_threads": 1,
                             "load_avg_at_start": [1.0, 1.0, 1.0]},
                "software": {"python": "3.11.7", "torch": "2.4.0"}, "max_rows": 8192}
    new = provenance.normalize(uci_2026)
    assert (new["git_revision"], new["git_dirty"], new["date_utc"]) == ("abc", False,
                                                                       uci_2026["date"])
    assert new["hardware"]["load_avg"] == [1.0, 1.0, 1.0] and new["max_rows"] == 8192
    small = {"command": "python -m gmp.experiments levy", "git_revision": "abc+dirty",
             "date": "2026-11-30T00:00:00+00:00",
             "hardware": {"machine": "x86_64", "processor": "", "cpu_count": 4,
                          "python": "3.11.7", "torch": "2.4.0"}}
    new = provenance.normalize(small)
    assert (new["git_revision"], new["git_dirty"]) == ("abc", True)
    assert new["hardware"] == {"cpu": "x86_64", "machine": "x86_64", "logical_cpus": 4}
    assert new["software"] == {"python": "3.11.7", "torch": "2.4.0"}
    train = {"command": "gmp-train", "git": {"revision": None, "dirty": None},
             "started": "2026-11-30T00:00:00+00:00", "hardware": {"device": "cpu"}}
    new = provenance.normalize(train)
    assert new["date_utc"] == train["started"] and new["git_revision"] is None
    assert provenance.normalize({"git_revision": "unknown"})["git_revision"] is None


def test_committed_uci_results_read_in_the_current_schema():
    for name in ("uci.json", "uci_official.json", "uci_honest_paper_lr.json"):
        path = ROOT / "results" / name
        if not path.exists():
            continue
        res = load_results(path)
        rec = provenance.normalize(res["provenance"])
        assert set(provenance.KEYS) <= set(rec) and len(rec["git_revision"]) == 40
        assert rec["date_utc"].startswith("20") and rec["hardware"]["logical_cpus"] >= 1
        # every unit was computed by one committed revision, without local changes
        units = [provenance.normalize(m["run"]) for e in res["datasets"].values()
                 for m in e["params"].values()]
        assert {u["git_revision"] for u in units} == {rec["git_revision"]}, name
        assert not any(u["git_dirty"] for u in units), name


def test_describe_one_line_any_schema():
    rec = provenance.record(["prog", "--x"], extra={"wall_s": 90.0})
    line = provenance.describe(rec)
    assert line.startswith("`prog --x` at revision") and line.endswith("1.5 min")
    old = {"command": "c", "git_revision": "abc+dirty", "date": "2026-01-01",
           "hardware": {"processor": "cpu0"}}
    assert "`abc` with uncommitted changes on 2026-01-01, cpu0" in provenance.describe(old)


def test_committed_results_files_never_make_the_checkout_dirty(monkeypatch, tmp_path):
    """make small-results rewrites several committed results files in turn: the second run
    must still record the code as clean (results are outputs, not code)."""
    git = _git_repo(tmp_path)
    for d in provenance.RESULTS_DIRS:
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / "a.json").write_text("{}\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("commit", "-q", "-m", "init")
    monkeypatch.setattr(provenance, "_ROOT", tmp_path)
    for d in provenance.RESULTS_DIRS:
        (tmp_path / d / "a.json").write_text('{"rewritten": 1}\n')  # an earlier run
    assert provenance.git_revision()["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert provenance.git_revision()["dirty"] is True
