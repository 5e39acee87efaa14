"""gmp-train on CPU: every variant, exact resume after a crash, 2-process DDP (gloo), the CLI."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from gmp import provenance
from gmp.data.imagenet import write_synthetic_folder
from gmp.data.imagenet32 import write_synthetic
from gmp.models import PAPER_PARAMS
from gmp.params import ALL_PARAMS as PARAMS
from gmp.train import ConfigError, TrainConfig
from gmp.train.cli import build_parser, config_from_args, main
from gmp.train.engine import train
from gmp.train.report import load_results, results_table

torch.set_num_threads(1)

N_TRAIN, N_VAL = 96, 37  # 37: uneven validation shards under 2 processes


@pytest.fixture(scope="module")
def in32(tmp_path_factory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("in32"), N_TRAIN, N_VAL, num_classes=10)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_synthetic_folder(tmp_path_factory.mktemp("inet"), classes=3,
                                  train_per_class=4, val_per_class=3, size=40)


def _cfg32(data, out, **kw) -> TrainConfig:
    base = dict(task="imagenet32", data=str(data), out=str(out), param="gmp_imn", width=1 / 16,
                num_classes=10, epochs=1, batch_size=16, max_steps_per_epoch=3, device="cpu",
                tensorboard=False, progress=False, log_every=1)
    base.update(kw)
    return TrainConfig(**base)


def _cfg_inet(data, out, **kw) -> TrainConfig:
    base = dict(task="imagenet", data=str(data), out=str(out), param="bn", width=1 / 16,
                num_classes=3, epochs=1, batch_size=4, device="cpu", workers=0, crop=32,
                resize_min=36, resize_max=48, val_resize=36, tensorboard=False,
                progress=False, log_every=1)
    base.update(kw)
    return TrainConfig(**base)


# ------------------------------------------------------------------------------ configuration

def test_source_defaults():
    """ImageNet32: the authors' script (official protocol, no weight decay, float32, the
    authors' network); ImageNet: the paper's text (90 epochs, steps at 30/60/80)."""
    c = TrainConfig("imagenet32", "d", "o", param="gmp").resolved()
    assert (c.arch, c.preset, c.protocol, c.lr, c.epochs, c.momentum, c.milestones) == (
        "vgg6", "authors", "official", 0.1, 500, 0.9, None)
    assert (c.weight_decay, c.amp, c.tf32) == (0.0, "off", False)
    assert (c.plateau_patience, c.early_stop_patience, c.gamma) == (5, 10, 0.1)
    assert TrainConfig("imagenet32", "d", "o", param="bn").resolved().lr == 0.01
    assert TrainConfig("imagenet32", "d", "o", param="wn_mbn").resolved().lr == 0.01
    r = TrainConfig("imagenet", "d", "o", param="wn_mbn").resolved()
    assert (r.arch, r.protocol, r.lr, r.batch_size, r.weight_decay, r.epochs) == (
        "resnet18", "paper-text", 0.1, 256, 0.0, 90)
    assert (r.milestones, r.color_jitter, r.lighting) == ([30, 60, 80], 0.0, 0.1)
    args = build_parser().parse_args(["imagenet32", "--data", "d", "--out", "o", "--param",
                                      "sp", "--lr", "0.05", "--protocol", "paper-text",
                                      "--milestones", "10,20"])
    c = config_from_args(args).resolved()
    assert (c.lr, c.milestones, c.weight_decay, c.epochs) == (0.05, [10, 20], 0.0, 90)


def test_help_shows_presets_and_protocols(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["imagenet32", "--help"])
    out = capsys.readouterr().out
    for word in ("--preset {authors,book-v1}", "--protocol {official,paper-text}",
                 "official     the authors' script", "paper-text   the paper's text",
                 "No weight decay and float32 by default"):
        assert word in out


@pytest.mark.parametrize("kw,msg", [
    (dict(param="ln"), "unknown parameterization"),
    (dict(arch="vgg16"), "unknown architecture"),
    (dict(milestones=[60, 30], protocol="paper-text"), "milestones"),
    (dict(milestones=[30]), "milestones belong to --protocol paper-text"),
    (dict(protocol="keras"), "unknown protocol"),
    (dict(preset="remark-3.5"), "unknown preset"),
    (dict(lr=-1.0), "lr must be"),
    (dict(amp="fp16"), "amp must be"),
])
def test_bad_config(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        TrainConfig("imagenet32", "d", "o", **kw).resolved()


def test_cli_reports_bad_data_folder(tmp_path, capsys):
    code = main(["imagenet32", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o"),
                 "--device", "cpu", "--no-progress", "--no-tensorboard"])
    assert code == 2
    assert "ImageNet32 folder" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- training

@pytest.mark.parametrize("param", PARAMS)
def test_vgg6_every_variant(in32, tmp_path, param):
    res = train(_cfg32(in32, tmp_path / param, param=param, limit_val=20))
    (row,) = res.history
    assert row["train_images"] == 48 and row["val_images"] == 20
    assert all(torch.isfinite(torch.tensor(float(row[k]))) for k in row)
    assert (tmp_path / param / "checkpoint.pt").exists()


@pytest.mark.parametrize("param", PAPER_PARAMS["resnet18"])
def test_resnet18_on_image_folder(folder, tmp_path, param):
    res = train(_cfg_inet(folder, tmp_path / param, param=param))
    (row,) = res.history
    assert row["train_images"] == 12 and row["val_images"] == 9


def test_cli_writes_run_folder(in32, tmp_path):
    out, results = tmp_path / "run", tmp_path / "results"
    argv = ["imagenet32", "--data", str(in32), "--out", str(out), "--param", "wn_mbn",
            "--width", "0.0625", "--num-classes", "10", "--epochs", "2", "--batch-size", "16",
            "--max-steps-per-epoch", "2", "--limit-val", "10", "--device", "cpu",
            "--no-progress", "--results-dir", str(results)]
    assert main(argv) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["lr"], cfg["weight_decay"], cfg["param"]) == (0.01, 0.0, "wn_mbn")
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"lr", "val_top1", "val_top5", "images_per_s"} <= set(rows[0])
    summary = json.loads((results / "imagenet32_vgg6_wn_mbn_b16_s0.json").read_text())
    prov = summary["provenance"]
    assert summary["finished"] and prov["command"].startswith("gmp-train imagenet32")
    assert set(provenance.KEYS) <= set(prov) and prov["device"]["type"] == "cpu"
    assert "1x cpu" in results_table(load_results(results)).splitlines()[2]
    assert any((out / "tb").iterdir()) and (out / "best.pt").exists()
    assert main(argv) == 2  # the folder holds a run: refuse to overwrite it without --resume
    assert main(argv + ["--resume", "--lr", "0.5"]) == 2  # settings differ from the saved run


class _Crash(Exception):
    pass


def _crash_at(epoch: int, step: int):
    def hook(e, s):
        if (e, s) == (epoch, step):
            raise _Crash
    return hook


@pytest.mark.parametrize("task", ["imagenet32", "imagenet"])
def test_resume_after_crash_is_exact(in32, folder, tmp_path, task):
    make = (lambda out, **kw: _cfg32(in32, out, epochs=2, **kw)) if task == "imagenet32" else \
        (lambda out, **kw: _cfg_inet(folder, out, epochs=2, **kw))
    ref = train(make(tmp_path / "ref"))
    with pytest.raises(_Crash):  # killed in the middle of epoch 2
        train(make(tmp_path / "cut"), on_step=_crash_at(1, 1))
    resumed = train(make(tmp_path / "cut", resume=True))
    a, b = ref.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    with (tmp_path / "cut" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[1]["train_loss"]) == ref.history[1]["train_loss"]
    again = train(make(tmp_path / "cut", resume=True))  # already complete: nothing to do
    assert again.history == resumed.history


# -------------------------------------------------------------------------------------- DDP

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, data: str, root: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo")
    try:
        for param in ("gmp_imn", "bn"):
            res = train(_cfg32(data, Path(root) / param, param=param, epochs=2))
            torch.save({"state": res.model.state_dict(), "history": res.history},
                       Path(root) / f"{param}_rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_two_processes_gloo(in32, tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(in32), str(tmp_path)), nprocs=2)
    for param in ("gmp_imn", "bn"):
        r0, r1 = (torch.load(tmp_path / f"{param}_rank{r}.pt") for r in (0, 1))
        for k, v in r0["state"].items():
            assert torch.equal(v, r1["state"][k]), (param, k)
        for row in r0["history"]:
            assert row["val_images"] == N_VAL  # 19 + 18: every sample once
            assert row["train_images"] == 3 * 16  # global batch 16 = 2 × 8
            assert row["max_rank_param_diff"] == 0.0
        timing = ("images_per_s", "epoch_time_s")  # measured per process
        strip = [[{k: v for k, v in row.items() if k not in timing} for row in r["history"]]
                 for r in (r0, r1)]
        assert strip[0] == strip[1]  # metrics are all-reduced


@pytest.mark.slow
def test_torchrun_cli(in32, tmp_path):
    """The documented multi-process command line, end to end (2 CPU processes)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "gmp.train", "imagenet32", "--data", str(in32), "--out", str(tmp_path / "r"),
           "--param", "gmp_imn", "--width", "0.0625", "--num-classes", "10", "--epochs", "1",
           "--batch-size", "16", "--max-steps-per-epoch", "2", "--device", "cpu",
           "--no-progress", "--no-tensorboard"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["provenance"]["device"] == {"type": "cpu", "processes": 2}
    assert summary["final"]["val_images"] == N_VAL
