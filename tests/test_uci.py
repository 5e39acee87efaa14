"""UCI benchmark: loader, batched forward/trainer against the modules, protocol, CLI."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gmp import provenance
from gmp.baselines import METHODS, mlp
from gmp.data import DataCorruptError, DataNotFoundError
from gmp.data.uci import DATASETS, SHAPES, UCIData, load_uci, remote_files
from gmp.experiments import uci
from gmp.experiments.uci_trainer import (
    UCI_PRESET,
    TrainConfig,
    batched_forward,
    init_params,
    load_member,
    moments,
    predict,
    train_batched,
    train_loop,
)

F64 = torch.float64
SHARED = Path("/work/shared/data")


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _have_data() -> bool:
    import os

    root = os.environ.get("GMP_DATA_DIR")
    return bool(root) and (Path(root) / "uci" / "yacht" / "data.txt").is_file()


needs_data = pytest.mark.skipif(not _have_data(), reason="set GMP_DATA_DIR to the data mirror")


# ---------------------------------------------------------------- loader

@needs_data
@pytest.mark.parametrize("name", list(DATASETS))
def test_loader_shapes(name):
    d = load_uci(name)
    assert d.X.shape == SHAPES[name] and d.y.shape == (SHAPES[name][0],)
    assert d.X.dtype == np.float64 and d.y.dtype == np.float64
    assert d.target_column not in d.feature_columns
    assert np.isfinite(d.X).all() and np.isfinite(d.y).all()


@needs_data
def test_loader_folder_name_alias():
    assert load_uci("bostonHousing").name == "boston"


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown UCI data set 'kin8nm'.*boston.*yacht"):
        load_uci("kin8nm")


def test_offline_missing_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GMP_DATA_DIR", str(tmp_path / "mirror"))
    monkeypatch.setenv("GMP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GMP_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match="(?s)uci/yacht/data.txt.*GMP_OFFLINE is set"):
        load_uci("yacht")


@needs_data
def test_corrupt_file(tmp_path, monkeypatch):
    import os

    src = Path(os.environ["GMP_DATA_DIR"])
    for rf in remote_files("yacht"):
        (tmp_path / rf.relpath).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / rf.relpath, tmp_path / rf.relpath)
    data = tmp_path / "uci" / "yacht" / "data.txt"
    data.write_text(data.read_text().replace("0.", "1.", 1))
    monkeypatch.setenv("GMP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GMP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GMP_OFFLINE", "1")
    with pytest.raises(DataCorruptError, match="yacht/data.txt is corrupt"):
        load_uci("yacht")


# ---------------------------------------------------------------- batched forward == modules

@pytest.mark.parametrize("method", METHODS)
def test_batched_forward_equals_module(method):
    torch.manual_seed(0)
    S, N, n, m = 3, 20, 5, 7
    p = init_params(method, n, [11, 12, 13], hidden=m, dtype=F64)
    with torch.no_grad():   # move away from the initialization (λ = 0, γ = 1, ...)
        for v in p.values():
            v.add_(0.3 * torch.randn_like(v))
    x = 2 * torch.randn(S, N, n, dtype=F64) + 1
    out = batched_forward(method, p, x)                      # BN: batch statistics
    for s in range(S):
        model = load_member(p, s, mlp(method, n, m, preset=UCI_PRESET).to(F64)).train()
        torch.testing.assert_close(out[s], model(x[s]).squeeze(-1), rtol=1e-12, atol=1e-12)


def test_batched_bn_eval_conventions_equal_module():
    S, N, n, m = 2, 30, 4, 6
    p = init_params("bn", n, [1, 2], hidden=m, dtype=F64)
    x_fit, x = torch.randn(S, N, n, dtype=F64) + 0.5, torch.randn(S, 9, n, dtype=F64)
    running = (torch.randn(S, m, dtype=F64), torch.rand(S, m, dtype=F64) + 0.5)
    pop = batched_forward("bn", p, x, moments_x=moments(x_fit))
    run = batched_forward("bn", p, x, bn_stats=running)
    for s in range(S):
        model = load_member(p, s, mlp("bn", n, m, preset=UCI_PRESET).to(F64)).eval()
        lin, bn = model.hidden
        with torch.no_grad():       # population statistics = biased batch statistics
            z = lin(x_fit[s])
            bn.running_mean.copy_(z.mean(0))
            bn.running_var.copy_(z.var(0, unbiased=False))
        torch.testing.assert_close(pop[s], model(x[s]).squeeze(-1), rtol=1e-10, atol=1e-12)
        with torch.no_grad():
            bn.running_mean.copy_(running[0][s])
            bn.running_var.copy_(running[1][s])
        torch.testing.assert_close(run[s], model(x[s]).squeeze(-1), rtol=1e-12, atol=1e-12)


def test_batched_forward_rejects_bad_shapes():
    p = init_params("sp", 4, [0, 1], hidden=5, dtype=F64)
    with pytest.raises(ValueError, match=r"expected input of shape \(S=2, N, n=4\)"):
        batched_forward("sp", p, torch.zeros(2, 3, 5, dtype=F64))
    with pytest.raises(ValueError, match="unknown parameterization"):
        batched_forward("ln", p, torch.zeros(2, 3, 4, dtype=F64))


def test_init_matches_module_init():
    p = init_params("gmp", 6, [5], hidden=9, dtype=F64)
    torch.manual_seed(5)
    model = mlp("gmp", 6, 9, preset=UCI_PRESET)
    torch.testing.assert_close(p["theta"][0], model.hidden.theta.to(F64))
    torch.testing.assert_close(p["out_r"][0], model.out.r.to(F64))


# ---------------------------------------------------------------- batched trainer == loop

def _toy(S, sizes, n, seed):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(k, n, generator=g, dtype=F64) for k in sizes]
    ys = [torch.sin(x.sum(-1)) + 0.1 * x[:, 0] ** 2 for x in xs]
    return xs, ys


def _pad(ts):
    n = max(len(t) for t in ts)
    out = torch.zeros((len(ts), n) + tuple(ts[0].shape[1:]), dtype=F64)
    mask = torch.zeros(len(ts), n, dtype=torch.bool)
    for i, t in enumerate(ts):
        out[i, :len(t)], mask[i, :len(t)] = t, True
    return out, mask


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("protocol", ["honest", "official"])
def test_batched_trainer_equals_loop(method, protocol):
    S, n, m = 4, 3, 6
    lrs = [1e-3, 1e-2, 0.1, 0.3]
    if protocol == "honest":     # full batch, members of different sizes (masks)
        cfg = TrainConfig(max_epochs=40, patience=8)
        xf, yf = _toy(S, [30, 29, 31, 30], n, 1)
        xv, yv = _toy(S, [8, 9, 8, 7], n, 2)
    else:                        # mini-batches, MAE, plateau, running BN statistics
        cfg = TrainConfig(max_epochs=25, patience=8, loss="mae", batch_size=8,
                          plateau_patience=3, plateau_min_delta=1e-3, bn_eval="running")
        xf, yf = _toy(S, [30] * S, n, 1)
        xv, yv = _toy(S, [8] * S, n, 2)
    init = init_params(method, n, [3, 4, 5, 6], hidden=m, dtype=F64)
    (xf_p, fm), (yf_p, _), (xv_p, vm), (yv_p, _) = _pad(xf), _pad(yf), _pad(xv), _pad(yv)
    fm = None if bool(fm.all()) else fm
    vm = None if bool(vm.all()) else vm
    seeds = [21, 22, 23, 24]
    a = train_batched(method, init, xf_p, yf_p, xv_p, yv_p, lrs, cfg, fit_mask=fm, val_mask=vm,
                      seeds=seeds)
    b = train_loop(method, init, xf, yf, xv, yv, lrs, cfg, seeds=seeds)
    assert a.best_epoch.tolist() == b.best_epoch.tolist()
    assert a.stopped_epoch.tolist() == b.stopped_epoch.tolist()
    assert (a.best_epoch > 0).all()
    torch.testing.assert_close(a.best_monitor, b.best_monitor, rtol=1e-8, atol=1e-12)
    x_test = torch.randn(S, 5, n, dtype=F64)
    torch.testing.assert_close(predict(a, x_test), predict(b, x_test), rtol=1e-7, atol=1e-9)


def test_train_batched_validates_inputs():
    init = init_params("sp", 3, [0, 1], hidden=4, dtype=F64)
    x, y = torch.zeros(2, 5, 3, dtype=F64), torch.zeros(2, 5, dtype=F64)
    cfg = TrainConfig(max_epochs=2, patience=1)
    with pytest.raises(ValueError, match="y_fit must have shape"):
        train_batched("sp", init, x, y[:, :4], x, y, 0.1, cfg)
    with pytest.raises(ValueError, match="learning rates must be positive"):
        train_batched("sp", init, x, y, x, y, [0.1, -1.0], cfg)
    with pytest.raises(ValueError, match="one permutation seed per member"):
        train_batched("sp", init, x, y, x, y, 0.1, TrainConfig(batch_size=2))
    with pytest.raises(ValueError, match="loss must be"):
        TrainConfig(loss="huber")


# ---------------------------------------------------------------- protocol

def _tiny_data(n_rows=60, n=3, seed=0) -> UCIData:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n)) * [1.0, 10.0, 0.1] + [0.0, 5.0, 1.0]
    y = 3 * np.sin(X[:, 0]) + 0.2 * X[:, 1] + rng.normal(scale=0.1, size=n_rows) + 50
    return UCIData("tiny", X, y, tuple(range(n)), n)


def _tiny_cfg(**kw) -> uci.UCIConfig:
    base = dict(splits=1, hidden=6, folds=2, lr_grid=(1e-2, 1e-1), max_epochs=15, patience=4,
                dtype="float64")
    base.update(kw)
    return uci.UCIConfig(**base)


def test_run_dataset_batched_equals_loop():
    data, cfg = _tiny_data(), _tiny_cfg(splits=2)
    a = uci.run_dataset("tiny", cfg, data=data, trainer="batched")
    b = uci.run_dataset("tiny", cfg, data=data, trainer="loop")
    for m in METHODS:
        for ra, rb in zip(a["methods"][m]["splits"], b["methods"][m]["splits"], strict=True):
            assert (ra["lr"], ra["best_epoch"], ra["stopped_epoch"]) == \
                (rb["lr"], rb["best_epoch"], rb["stopped_epoch"])
            assert ra["test_rmse"] == pytest.approx(rb["test_rmse"], rel=1e-7)
            for lr, v in ra["cv_rmse"].items():
                assert v == pytest.approx(rb["cv_rmse"][lr], rel=1e-7)


def _poisoned(data: UCIData, cfg: uci.UCIConfig) -> UCIData:
    _, test = uci.split_indices(len(data.y), 0, cfg.test_fraction)
    X, y = data.X.copy(), data.y.copy()
    X[test], y[test] = np.nan, np.nan
    return UCIData(data.name, X, y, data.feature_columns, data.target_column)


def test_honest_protocol_never_looks_at_the_test_split():
    data, cfg = _tiny_data(), _tiny_cfg()
    clean = uci.run_dataset("tiny", cfg, data=data)
    poisoned = uci.run_dataset("tiny", cfg, data=_poisoned(data, cfg))
    for m in METHODS:
        c, p = clean["methods"][m]["splits"][0], poisoned["methods"][m]["splits"][0]
        assert math.isfinite(c["test_rmse"]) and math.isnan(p["test_rmse"])
        c.pop("test_rmse"), p.pop("test_rmse")
        assert c == p          # chosen LR, CV scores, epochs: identical


def test_official_protocol_selects_on_the_test_split():
    data, cfg = _tiny_data(), _tiny_cfg(protocol="official", batch_size=16, max_epochs=10)
    clean = uci.run_dataset("tiny", cfg, data=data)
    poisoned = uci.run_dataset("tiny", cfg, data=_poisoned(data, cfg))
    c, p = clean["methods"]["sp"]["splits"][0], poisoned["methods"]["sp"]["splits"][0]
    assert c["best_epoch"] > 0 and p["best_epoch"] == 0   # NaN monitor: nothing ever improves


def test_official_protocol_with_validation_monitor_is_blind_to_test():
    data = _tiny_data()
    cfg = _tiny_cfg(protocol="official", batch_size=16, max_epochs=10, monitor="validation")
    assert cfg.to_dict()["monitor"] == "validation"
    clean = uci.run_dataset("tiny", cfg, data=data)
    poisoned = uci.run_dataset("tiny", cfg, data=_poisoned(data, cfg))
    for m in METHODS:
        c, p = clean["methods"][m]["splits"][0], poisoned["methods"][m]["splits"][0]
        assert math.isnan(p.pop("test_rmse")) and math.isfinite(c.pop("test_rmse"))
        assert c == p


def test_splits_are_disjoint_and_seeded():
    tr, te = uci.split_indices(101, 3)
    assert len(te) == 21 and len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == 101
    tr2, te2 = uci.split_indices(101, 3)
    assert np.array_equal(te, te2)
    assert not np.array_equal(te, uci.split_indices(101, 4)[1])


def test_config_errors():
    with pytest.raises(ValueError, match="unknown protocol 'leaky'"):
        uci.UCIConfig(protocol="leaky")
    with pytest.raises(ValueError, match="unknown parameterization 'ln'"):
        uci.UCIConfig(methods=("sp", "ln"))
    with pytest.raises(ValueError, match="lr_grid"):
        uci.UCIConfig(lr_grid=(0.1, -1.0))
    assert uci.UCIConfig(protocol="official").batch_size == 1024


def test_markdown_table_bolds_best():
    res = {"datasets": {"yacht": {"n_rows": 308, "n_features": 6, "methods": {
        "sp": {"test_rmse_mean": 1.234, "test_rmse_std": 0.1},
        "gmp": {"test_rmse_mean": 0.987, "test_rmse_std": 0.05}}}}}
    table = uci.markdown_table(res)
    assert "**0.987 ± 0.050**" in table and "| 1.23 ± 0.10 |" in table
    assert table.splitlines()[0] == "| data set | N × d | SP | GmP |"


# ---------------------------------------------------------------- CLI

def _argv(out: Path) -> list[str]:
    return ["--datasets", "yacht", "--splits", "1", "--methods", "sp,gmp", "--folds", "2",
            "--lr-grid", "0.01,0.1", "--max-epochs", "4", "--patience", "2", "--hidden", "5",
            "--out", str(out), "--quiet", "--threads", "1"]


@needs_data
def test_cli_writes_json_and_resumes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "res" / "uci.json"
    assert uci.main(_argv(out)) == 0
    res = json.loads(out.read_text())
    assert res["protocol"] == "honest" and set(res["datasets"]) == {"yacht"}
    entry = res["datasets"]["yacht"]
    assert set(entry["methods"]) == {"sp", "gmp"}
    split = entry["methods"]["gmp"]["splits"][0]
    assert split["lr"] in (0.01, 0.1) and math.isfinite(split["test_rmse"])
    for key in provenance.KEYS:
        assert key in res["created"] and key in entry["run"]
    assert "gmp-uci --datasets yacht" in res["created"]["command"]
    assert "cpu" in res["created"]["hardware"] and res["created"]["git_revision"] is not None
    assert "- command: `gmp-uci --datasets yacht" in uci.provenance_markdown(res)
    assert "| yacht | 308 × 6 |" in capsys.readouterr().out

    def boom(*a, **k):
        raise AssertionError("a finished data set was trained again")

    monkeypatch.setattr(uci, "run_dataset", boom)
    assert uci.main(_argv(out)) == 0                       # resumed: nothing to do
    assert json.loads(out.read_text()) == res
    argv = _argv(out)
    argv[argv.index("--max-epochs") + 1] = "5"
    assert uci.main(argv) == 2                             # other config: clear error
    assert "different configuration" in capsys.readouterr().err


def test_cli_rejects_unknown_dataset(tmp_path, capsys):
    assert uci.main(["--datasets", "kin8nm", "--out", str(tmp_path / "x.json"), "--quiet"]) == 2
    assert "unknown UCI data set 'kin8nm'" in capsys.readouterr().err


@needs_data
def test_cli_jobs_gives_the_same_numbers(tmp_path):
    """Data sets in parallel processes: same per-data-set results as one after another."""
    outs = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"jobs{jobs}.json"
        argv = _argv(out)
        argv[argv.index("yacht")] = "yacht,boston"
        assert uci.main(argv + ["--jobs", jobs]) == 0
        outs[jobs] = json.loads(out.read_text())
    for name in ("yacht", "boston"):
        a, b = (outs[j]["datasets"][name] for j in ("1", "2"))
        assert a["methods"] == b["methods"]
        assert b["run"]["jobs"] == 2
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        uci.run(["yacht"], uci.UCIConfig(), jobs=0)
