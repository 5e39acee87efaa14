"""Commands never lie or lose work (#21): outputs checked before work, committed files never
written unasked, an interrupted replacement keeps the old file, one run per output, worker
processes die with their parent, one-line errors, and reruns in one process are identical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from gmp import files
from gmp.experiments import small, tasks, uci, uci_protocol, uci_report, uci_runner
from gmp.experiments.__main__ import main as small_main
from gmp.experiments.__main__ import parse_seeds

ROOT = Path(__file__).resolve().parents[1]


def _have_uci() -> bool:
    root = os.environ.get("GMP_DATA_DIR")
    return bool(root) and (Path(root) / "uci" / "yacht" / "data.txt").is_file()


needs_data = pytest.mark.skipif(not _have_uci(), reason="set GMP_DATA_DIR to the data mirror")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _uci_argv(out: Path | None, datasets: str = "yacht") -> list[str]:
    argv = ["--protocol", "official", "--datasets", datasets, "--splits", "1",
            "--params", "sp,gmp", "--max-epochs", "4", "--patience", "2", "--hidden", "5",
            "--quiet", "--threads", "1"]
    return argv + (["--out", str(out)] if out is not None else [])


def _never(*a, **k):
    raise AssertionError("work started although the output was bad")


# ---------------------------------------------------------------- gmp.files

def test_check_output_file_rejects_folders_and_unwritable_places(tmp_path):
    with pytest.raises(files.OutputError, match="is a folder"):
        files.check_output_file(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(files.OutputError, match="cannot create the folder"):
        files.check_output_file(blocker / "sub" / "out.json")
    assert files.check_output_file(tmp_path / "new" / "out.json").parent.is_dir()
    assert list((tmp_path / "new").iterdir()) == []        # nothing left by the probe


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_check_output_file_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(files.OutputError, match="not writable"):
            files.check_output_file(ro / "out.json")
    finally:
        ro.chmod(0o700)


def test_output_lock_excludes_a_second_writer_and_is_removed(tmp_path):
    lock = tmp_path / "out.json.lock"
    with files.OutputLock(lock, what="out.json"):
        assert lock.read_text().strip() == str(os.getpid())
        with pytest.raises(files.OutputError, match="being written by another run"):
            files.OutputLock(lock, what="out.json").acquire()
    assert not lock.exists()
    files.OutputLock(lock).acquire().release()              # free again


def test_output_lock_of_a_killed_process_is_released(tmp_path):
    lock = tmp_path / "x.lock"
    code = (f"from gmp.files import OutputLock; import time; OutputLock({str(lock)!r})"
            ".acquire(); print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(files.OutputError):
            files.OutputLock(lock).acquire()
        proc.kill()
        proc.wait(timeout=30)
        files.OutputLock(lock).acquire().release()          # the OS dropped the dead lock
    finally:
        proc.kill()


def test_remove_stale_temporaries(tmp_path):
    (tmp_path / ".summary.json.abc123.tmp").write_text("half")
    (tmp_path / "keep.json").write_text("{}")
    assert [p.name for p in files.remove_stale_temporaries(tmp_path)] == [
        ".summary.json.abc123.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["keep.json"]


def test_results_target_rules(tmp_path):
    def ok(p):
        return None if json.loads(p.read_text()).get("mine") else f"{p} is not mine"

    out = tmp_path / "r.json"
    with files.results_target(out, recognise=ok) as t:          # new file
        assert (t.work, t.resume) == (out, False)
    out.write_text('{"mine": 1}')
    with pytest.raises(files.OutputError, match="exists: pass --resume"):
        files.results_target(out, recognise=ok)
    with files.results_target(out, recognise=ok, resume=True) as t:
        assert (t.work, t.resume) == (out, True)
    with files.results_target(out, recognise=ok, replace=True) as t:
        assert t.work == files.partial_path(out) and t.replacing
        t.work.write_text('{"mine": 2}')
    with pytest.raises(files.OutputError, match="unfinished replacement"):
        files.results_target(out, recognise=ok, replace=True)
    with files.results_target(out, recognise=ok, replace=True, resume=True) as t:
        assert t.resume
        t.finish()
    assert json.loads(out.read_text()) == {"mine": 2} and not files.partial_path(out).exists()
    out.write_text("[1, 2]")
    with pytest.raises(files.OutputError, match="is not mine"):
        files.results_target(out, recognise=lambda p: f"{p} is not mine", replace=True)
    assert out.read_text() == "[1, 2]"


# ---------------------------------------------------------------- gmp-uci

@needs_data
def test_uci_default_out_is_new_and_committed_results_are_untouched(tmp_path, monkeypatch,
                                                                  capsys):
    """From the repository root, the README's gmp-uci command trains and writes a new file
    under runs/; it never resumes or rewrites results/uci_official.json."""
    monkeypatch.chdir(tmp_path)
    committed = tmp_path / "results" / "uci_official.json"
    committed.parent.mkdir()
    committed.write_bytes((ROOT / "results" / "uci_official.json").read_bytes())
    before = committed.read_bytes()
    assert uci.main(_uci_argv(None)) == 0
    assert committed.read_bytes() == before
    written = list((tmp_path / "runs").glob("uci-official-*.json"))
    assert len(written) == 1
    res = uci_report.load_results(written[0])
    assert list(res["datasets"]["yacht"]["params"]) == ["sp", "gmp"]   # it trained
    assert f"written to {written[0].relative_to(tmp_path)}" in capsys.readouterr().out


@needs_data
def test_uci_output_is_checked_before_any_unit(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(uci_runner, "run_unit", _never)
    assert uci.main(_uci_argv(tmp_path)) == 2                          # a folder
    assert "is a folder" in capsys.readouterr().err
    (tmp_path / "f").write_text("x")
    assert uci.main(_uci_argv(tmp_path / "f" / "out.json")) == 2       # under a file
    assert "cannot create the folder" in capsys.readouterr().err
    partial_doc = tmp_path / "no_config.json"          # looks like one, has no config
    partial_doc.write_text('{"format": 3, "datasets": {}, "protocol": "honest"}')
    assert uci.main(_uci_argv(partial_doc) + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert "is not a gmp-uci results file" in err and "Traceback" not in err
    foreign = tmp_path / "list.json"
    foreign.write_text("[1]")
    for extra in ([], ["--resume"], ["--replace"]):
        assert uci.main(_uci_argv(foreign) + extra) == 2
        err = capsys.readouterr().err
        assert err.startswith("gmp-uci: error: ") and err.count("\n") == 1, err
    assert foreign.read_text() == "[1]"
    held = tmp_path / "held.json"
    with files.OutputLock(files.lock_file_for(held)):
        assert uci.main(_uci_argv(held)) == 2
    assert "being written by another run" in capsys.readouterr().err
    assert not held.exists()


@needs_data
def test_uci_replace_keeps_the_old_file_until_the_new_one_is_complete(tmp_path, monkeypatch,
                                                                     capsys):
    out = tmp_path / "uci.json"
    assert uci.main(_uci_argv(out)) == 0
    old = out.read_bytes()
    argv = _uci_argv(out) + ["--replace", "--max-epochs", "6"]
    real, calls = uci_runner.run_unit, []

    def killed_after_one(*a, **k):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(uci_runner, "run_unit", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        uci.main(argv)
    assert out.read_bytes() == old                                    # nothing lost
    partial = files.partial_path(out)
    assert list(uci_report.load_results(partial)["datasets"]["yacht"]["params"]) == ["sp"]
    monkeypatch.setattr(uci_runner, "run_unit", real)
    assert uci.main(argv) == 2
    assert "unfinished replacement" in capsys.readouterr().err
    assert uci.main(argv + ["--resume"]) == 0
    assert not partial.exists()
    new = uci_report.load_results(out)
    assert new["config"]["max_epochs"] == 6 and list(new["datasets"]["yacht"]["params"]) == [
        "sp", "gmp"]


@needs_data
def test_uci_rejects_empty_and_repeated_lists_before_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(uci_runner, "run_unit", _never)
    out = tmp_path / "x.json"
    for datasets, msg in (("yacht,yacht", "names yacht more than once"),
                          ("yacht,Yacht", "names yacht more than once"),
                          ("", "--datasets is empty"), (",", "--datasets is empty")):
        argv = _uci_argv(out, datasets)
        assert uci.main(argv) == 2, datasets
        assert msg in capsys.readouterr().err
    argv = _uci_argv(out)
    argv[argv.index("sp,gmp")] = "gmp,gmp"
    assert uci.main(argv) == 2
    assert "--params names gmp more than once" in capsys.readouterr().err
    assert not out.exists()


def test_uci_missing_data_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GMP_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("GMP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GMP_OFFLINE", "1")
    monkeypatch.setattr(uci_runner, "run_unit", _never)
    assert uci.main(_uci_argv(tmp_path / "x.json")) == 2
    err = capsys.readouterr().err
    assert err.startswith("gmp-uci: error: ") and "Traceback" not in err, err
    assert "GMP_DATA_DIR" in err or "cache" in err                 # where to put the file


WORKERS = textwrap.dedent("""
    import sys
    from gmp.experiments import uci_protocol, uci_runner
    cfg = uci_protocol.UCIConfig(protocol="official", splits=10, params=("sp", "gmp"),
                                 max_epochs=100000, patience=100000)
    uci_runner.run(["yacht", "boston"], cfg, progress=False, jobs=2)
""")


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@needs_data
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_uci_workers_die_with_their_parent():
    """kill -9 of gmp-uci's process leaves no worker training on as an orphan."""
    parent = subprocess.Popen([sys.executable, "-c", WORKERS], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        workers: list[int] = []
        while time.monotonic() < deadline:
            workers = [k for k in _children(parent.pid)
                       if "spawn_main" in Path(f"/proc/{k}/cmdline").read_text(errors="ignore")]
            if len(workers) == 2:
                break
            time.sleep(0.2)
        assert len(workers) == 2, "the workers did not start"
        time.sleep(3)                                    # let them import and start training
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(map(_alive, workers)):
            time.sleep(0.2)
        assert not any(map(_alive, workers)), "orphaned workers are still running"
    finally:
        parent.kill()
        for k in _children(parent.pid):
            os.kill(k, signal.SIGKILL)


# ---------------------------------------------------------------- python -m gmp.experiments

def test_small_cli_never_replaces_a_file_unasked(tmp_path, monkeypatch, capsys):
    out = tmp_path / "levy.json"
    argv = ["levy", "--param", "sp", "--seeds", "0", "--max-epochs", "2", "--hidden", "3",
            "--no-progress", "--no-tracks", "--out", str(out)]
    assert small_main(argv) == 0
    first = out.read_bytes()
    monkeypatch.setattr(small, "run", _never)
    import gmp.experiments.__main__ as cli

    monkeypatch.setattr(cli, "run", _never)
    assert small_main(argv) == 2
    assert "exists: pass --replace" in capsys.readouterr().err
    assert out.read_bytes() == first
    foreign = tmp_path / "other.json"
    foreign.write_text('{"unrelated": true}')
    assert small_main(argv[:-1] + [str(foreign), "--replace"]) == 2
    assert "not a results file of these experiments" in capsys.readouterr().err
    assert foreign.read_text() == '{"unrelated": true}'
    assert small_main(argv[:-1] + [str(tmp_path)]) == 2                 # a folder: at once
    assert "is a folder" in capsys.readouterr().err
    monkeypatch.undo()
    assert small_main(argv + ["--replace", "--seeds", "1"]) == 0
    assert json.loads(out.read_text())["runs"][0]["seed"] == 1


def test_small_cli_rejects_repeated_and_huge_seed_lists(capsys):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="0 given more than once"):
        parse_seeds(["0", "0", "1"])
    with pytest.raises(argparse.ArgumentTypeError, match="3 given more than once"):
        parse_seeds(["0-5,3"])
    t0 = time.perf_counter()
    with pytest.raises(argparse.ArgumentTypeError, match="too many seeds"):
        parse_seeds(["0-1000000000000"])
    assert time.perf_counter() - t0 < 1.0                    # refused before building it
    with pytest.raises(SystemExit):
        small_main(["levy", "--param", "sp", "sp", "--max-epochs", "1"])
    assert "--param names sp more than once" in capsys.readouterr().err


def test_small_cli_missing_data_is_one_line(tmp_path, monkeypatch, capsys):
    from gmp.data import DataNotFoundError

    def missing(*a, **k):
        raise DataNotFoundError("banana.csv is not in GMP_DATA_DIR; put it in /x/banana/")

    monkeypatch.setattr(tasks, "banana_splits_authors", missing)
    assert small_main(["banana", "--param", "sp", "--max-epochs", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "error: banana.csv is not in GMP_DATA_DIR" in err and "Traceback" not in err


# ---------------------------------------------------------------- same machine, same numbers

def test_small_training_twice_in_one_process_is_bit_identical():
    cfg = small.LevyConfig(max_epochs=60, hidden=8)
    runs = [small.run_levy("all", seeds=[0, 1], config=cfg, dtype=torch.float32,
                           progress=False) for _ in range(2)]
    for a, b in zip(*runs, strict=True):
        assert a.param == b.param and a.score == b.score and a.best_epoch == b.best_epoch
        assert a.history["train_loss"].tobytes() == b.history["train_loss"].tobytes()


@needs_data
def test_uci_training_twice_in_one_process_is_bit_identical():
    cfg = uci_protocol.UCIConfig(protocol="official", splits=2, max_epochs=40, patience=5)
    a, b = (uci_runner.run_dataset("yacht", cfg) for _ in range(2))
    for p in cfg.params:
        sa, sb = a["params"][p]["splits"], b["params"][p]["splits"]
        assert [s["test_rmse"] for s in sa] == [s["test_rmse"] for s in sb]
        assert [s["best_epoch"] for s in sa] == [s["best_epoch"] for s in sb]
