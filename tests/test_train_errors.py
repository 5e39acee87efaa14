"""gmp-train finishes what it claims and fails in one line (#21): completion on --resume,
stray temporaries, divergence, the run folder's lock, and the expected errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gmp.data.imagenet32 import write_synthetic
from gmp.files import OutputLock
from gmp.train import checkpoint as ckpt_io
from gmp.train.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def in32(tmp_path_factory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("in32"), 48, 16, num_classes=10)


def _argv(data: Path, out: Path, *extra: str) -> list[str]:
    return ["imagenet32", "--data", str(data), "--out", str(out), "--param", "gmp_imn",
            "--width", "0.0625", "--num-classes", "10", "--epochs", "1", "--batch-size", "16",
            "--max-steps-per-epoch", "2", "--device", "cpu", "--no-progress",
            "--no-tensorboard", *extra]


def _one_line_error(capsys, *words: str) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("gmp-train: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


class _Killed(Exception):
    pass


def test_resume_completes_a_run_killed_after_its_checkpoint(in32, tmp_path, monkeypatch,
                                                            capsys):
    """Killed after checkpoint.pt but before best.pt and summary.json: --resume writes them
    (it used to print "already completed" and leave them missing)."""
    out = tmp_path / "run"

    def killed(*a, **k):
        raise _Killed

    with monkeypatch.context() as m:
        m.setattr(ckpt_io, "atomic_copy", killed)  # dies while copying to best.pt
        with pytest.raises(_Killed):
            main(_argv(in32, out))
    assert (out / "checkpoint.pt").exists()
    assert not (out / "best.pt").exists() and not (out / "summary.json").exists()
    assert main(_argv(in32, out, "--resume")) == 0
    assert ckpt_io.load(out / "best.pt")["epoch"] == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] and summary["epochs_completed"] == 1
    assert summary["best_epoch"] == 1 and summary["diverged"] is None


def test_resume_rewrites_a_stale_summary(in32, tmp_path):
    out = tmp_path / "run"
    assert main(_argv(in32, out)) == 0
    stale = json.loads((out / "summary.json").read_text())
    stale.update(finished=False, epochs_completed=0)
    (out / "summary.json").write_text(json.dumps(stale))
    assert main(_argv(in32, out, "--resume")) == 0
    assert json.loads((out / "summary.json").read_text())["finished"]


def test_stray_temporaries_are_removed_on_start(in32, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    stray = out / ".checkpoint.pt.x1y2z3.tmp"
    stray.write_bytes(b"half a checkpoint")
    assert main(_argv(in32, out)) == 0
    assert not stray.exists() and not list(out.glob(".*.tmp"))


def test_divergence_stops_with_an_error_and_is_recorded(in32, tmp_path, capsys):
    out, results = tmp_path / "run", tmp_path / "results"
    code = main(_argv(in32, out, "--lr", "1e6", "--epochs", "3", "--results-dir", str(results)))
    assert code == 2
    _one_line_error(capsys, "diverged")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] is False and "diverged" in summary["diverged"]
    (copy,) = results.glob("*.json")
    assert json.loads(copy.read_text())["finished"] is False


def test_a_second_run_in_the_same_folder_fails_at_once(in32, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    with OutputLock(out / ".lock", what=f"the run folder {out}"):  # another live run
        assert main(_argv(in32, out)) == 2
    _one_line_error(capsys, "another run")
    assert not (out / "config.json").exists()  # nothing was written


def test_out_that_is_a_file(in32, tmp_path, capsys):
    out = tmp_path / "file"
    out.write_text("not a folder")
    assert main(_argv(in32, out)) == 2
    _one_line_error(capsys, "is a file")


def test_corrupt_checkpoint_on_resume(in32, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_argv(in32, out)) == 0
    (out / "checkpoint.pt").write_bytes(b"\x00garbage")
    capsys.readouterr()
    assert main(_argv(in32, out, "--resume")) == 2
    _one_line_error(capsys, "cannot read checkpoint", "corrupt")


def test_data_not_found_says_where_to_put_it(tmp_path, capsys):
    assert main(_argv(tmp_path / "none", tmp_path / "o")) == 2
    _one_line_error(capsys, "train_data_batch_1..10")
    argv = ["imagenet", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o2"),
            "--device", "cpu", "--no-progress", "--no-tensorboard"]
    assert main(argv) == 2
    _one_line_error(capsys, "train/<wnid>/*.JPEG")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda(in32, tmp_path, capsys):
    argv = _argv(in32, tmp_path / "o")
    argv[argv.index("cpu")] = "cuda"
    assert main(argv) == 2
    _one_line_error(capsys, "--device cuda", "no CUDA")
