"""UCI benchmark: loader, Keras' fit on the stacked engine against one module at a time, the
two protocols (official = the authors' script; honest = the same minus the test-split
selection), resume and the CLI."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gmp import provenance
from gmp.baselines import seeded_mlps
from gmp.data import DataCorruptError, DataNotFoundError
from gmp.data.uci import DATASETS, SHAPES, UCIData, load_uci, remote_files
from gmp.experiments import uci, uci_protocol, uci_report, uci_runner
from gmp.experiments.batched import BatchedAdam, BatchedMLP, StackedBatchNorm
from gmp.experiments.fit import FitConfig, Replay, fit, fit_module, predict
from gmp.layers import KerasBatchNorm1d
from gmp.params import PARAMS

F64 = torch.float64
SHARED = Path("/work/shared/data")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


# ---------------------------------------------------------------- Keras' fit: stacked == module

def _toy(S, N, n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(S, N, n, generator=g, dtype=F64)
    return x, 3 * torch.sin(x.sum(-1)) + 0.5 * x[..., 0] ** 2


@pytest.mark.parametrize("param", PARAMS)
def test_stacked_fit_equals_module(param):
    """Mini-batches with a last batch of one row, the plateau schedule, early stopping at
    different epochs (members leave the stack) and one member reaching the epoch limit."""
    S, N, V, n, m = 5, 25, 9, 3, 7
    x, y = _toy(S, N, n, 1)
    xv, yv = _toy(S, V, n, 2)
    lrs = [0.03, 0.01, 0.003, 0.001, 0.0003]
    cfg = FitConfig(max_epochs=60, patience=8, plateau_patience=3, batch_size=8)
    seeds, shuffle = [11, 12, 13, 14, 15], [5, 6, 7, 8, 9]
    a = fit(seeded_mlps(param, n, m, seeds, dtype=F64), x, y, lrs, cfg, shuffle,
            monitor=(xv, yv))
    x_new = torch.randn(S, 6, n, dtype=F64)
    pa = predict(a.net, x_new)
    for s in range(S):
        model = seeded_mlps(param, n, m, [seeds[s]], dtype=F64)[0]
        b = fit_module(model, x[s], y[s], lrs[s], cfg, shuffle[s], monitor=(xv[s], yv[s]))
        assert int(a.best_epoch[s]) == int(b.best_epoch[0]) > 0
        assert int(a.epochs_run[s]) == int(b.epochs_run[0])
        assert bool(a.stopped_early[s]) == bool(b.stopped_early[0])
        torch.testing.assert_close(a.best_monitor[s], b.best_monitor[0], rtol=1e-9, atol=0)
        torch.testing.assert_close(pa[s], predict(b.net, x_new[s:s + 1])[0], rtol=1e-9,
                                   atol=1e-10)
    assert a.stopped_early.any() and not a.stopped_early.all()   # both endings occur
    assert len(set(a.epochs_run.tolist())) > 1                   # members left the stack


def test_fit_keeps_first_epoch_when_nothing_improves():
    x, y = _toy(2, 10, 3, 0)
    xv, yv = _toy(2, 4, 3, 1)
    yv[0] = math.nan                       # member 0: the monitor is NaN every epoch
    cfg = FitConfig(max_epochs=30, patience=5, batch_size=None)
    res = fit(seeded_mlps("sp", 3, 5, [0, 1], dtype=F64), x, y, [0.01] * 2, cfg, [0, 1],
              monitor=(xv, yv))
    assert int(res.best_epoch[0]) == 0 and bool(res.stopped_early[0])
    assert int(res.epochs_run[0]) == 5     # Keras stops after `patience` epochs
    assert math.isinf(float(res.best_monitor[0]))


def test_fit_validates_inputs():
    models = seeded_mlps("sp", 3, 4, [0, 1], dtype=F64)
    x, y = torch.zeros(2, 5, 3, dtype=F64), torch.zeros(2, 5, dtype=F64)
    cfg = FitConfig(max_epochs=2, patience=1)
    with pytest.raises(ValueError, match=r"y must have \(2, 5\) leading dims"):
        fit(models, x, y[:, :4], [0.1, 0.1], cfg, [0, 1], monitor=(x, y))
    with pytest.raises(ValueError, match=r"x_mon must have shape \(S=2"):
        fit(models, x, y, [0.1, 0.1], cfg, [0, 1], monitor=(x[:1], y[:1]))
    with pytest.raises(ValueError, match="2 positive learning rates"):
        fit(models, x, y, [0.1, -1.0], cfg, [0, 1], monitor=(x, y))
    with pytest.raises(ValueError, match="one shuffling seed per member"):
        fit(models, x, y, [0.1, 0.1], cfg, [0], monitor=(x, y))
    with pytest.raises(ValueError, match="unknown loss"):
        FitConfig(loss="huber")
    assert FitConfig(patience=100).plateau_patience == 50   # the script: patience // 2


def test_keras_batch_norm_accepts_a_single_row():
    bn = KerasBatchNorm1d(4, eps=1e-3, momentum=0.01)
    with torch.no_grad():
        bn.bias.copy_(torch.arange(4.0))
    x = torch.randn(1, 4, requires_grad=True)
    out = bn(x)
    torch.testing.assert_close(out, bn.bias.detach().unsqueeze(0))
    out.sum().backward()
    assert torch.count_nonzero(x.grad) == 0                  # x - mean(x) is constant 0
    torch.testing.assert_close(bn.running_mean, 0.01 * x.detach()[0])
    stacked = StackedBatchNorm([KerasBatchNorm1d(4, eps=1e-3, momentum=0.01)])
    torch.testing.assert_close(stacked(x.detach().unsqueeze(0))[0], torch.zeros(1, 4))
    with pytest.raises(ValueError, match="at least 2 samples"):
        StackedBatchNorm([torch.nn.BatchNorm1d(4)])(torch.zeros(1, 1, 4))


def test_subset_and_select_keep_the_chosen_members():
    net = BatchedMLP.from_modules(seeded_mlps("gmp", 3, 5, [0, 1, 2], dtype=F64))
    adam = BatchedAdam(list(net.parameters()), torch.tensor([0.1, 0.2, 0.3], dtype=F64))
    x = torch.randn(3, 4, 3, dtype=F64)
    net(x).sum().backward()
    adam.step()
    idx = torch.tensor([0, 2])
    sub = net.subset(idx)
    adam.select(idx, list(sub.parameters()))
    torch.testing.assert_close(sub(x[idx]), net(x)[idx])
    assert adam.lr.tolist() == [0.1, 0.3] and adam.exp_avg.shape[0] == 2
    with pytest.raises(ValueError, match="do not match"):
        adam.select(idx, list(net.parameters()))


# ---------------------------------------------------------------- splits: the script's tools

def test_splits_follow_train_test_split():
    tr, te = uci_protocol.split_indices(101, 3)
    perm = np.random.RandomState(3).permutation(101)
    assert np.array_equal(te, perm[:21]) and np.array_equal(tr, perm[21:])
    assert not np.array_equal(te, uci_protocol.split_indices(101, 4)[1])


def test_kfold_partitions_in_ascending_order():
    folds = uci_protocol.kfold_indices(11, 3, seed=5)
    held = [h for _, h in folds]
    assert [len(h) for h in held] == [4, 4, 3]
    assert np.array_equal(np.sort(np.concatenate(held)), np.arange(11))
    order = np.arange(11)
    np.random.RandomState(5).shuffle(order)
    assert np.array_equal(held[0], np.sort(order[:4]))
    for rest, h in folds:
        assert np.all(np.diff(rest) > 0) and len(np.intersect1d(rest, h)) == 0
    with pytest.raises(ValueError, match="folds"):
        uci_protocol.kfold_indices(2, 3, 0)


def test_validation_split_is_keras_tail():
    fit, val = uci_protocol.validation_split(np.arange(10, 21), 0.2)     # floor(11 · 0.8) = 8
    assert fit.tolist() == list(range(10, 18)) and val.tolist() == [18, 19, 20]
    with pytest.raises(ValueError, match="validation split"):
        uci_protocol.validation_split(np.arange(1), 0.2)


def test_keras_normalizer_zeroes_constant_columns():
    X = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    mean, scale = uci_protocol.keras_normalizer(X, np.arange(3))
    z = (X - mean) / scale
    np.testing.assert_allclose(z[:, 0], [-1.224744871391589, 0.0, 1.224744871391589])
    assert np.all(z[:, 1] == 0)


# ---------------------------------------------------------------- protocols

def _tiny_data(n_rows=60, n=3, seed=0) -> UCIData:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n)) * [1.0, 10.0, 0.1] + [0.0, 5.0, 1.0]
    y = 3 * np.sin(X[:, 0]) + 0.2 * X[:, 1] + rng.normal(scale=0.1, size=n_rows) + 50
    return UCIData("tiny", X, y, tuple(range(n)), n)


def _tiny_cfg(**kw) -> uci_protocol.UCIConfig:
    base = dict(protocol="honest-no-refit", splits=2, hidden=6, folds=2, lr_grid=(1e-2, 1e-1),
                max_epochs=15, patience=4, batch_size=16, dtype="float64")
    base.update(kw)
    return uci_protocol.UCIConfig(**base)


def test_official_protocol_is_the_authors_script():
    cfg = uci_protocol.UCIConfig(protocol="official")
    fit = cfg.fit_config()
    script = uci_protocol.AUTHORS_SCRIPT
    assert cfg.hidden == script["units"] and cfg.max_epochs == script["n_epochs"]
    assert cfg.batch_size == fit.batch_size == script["batch_size"]
    assert fit.patience == script["early_stop_patience"]
    assert fit.plateau_patience == script["lr_decay_patience"]
    assert fit.plateau_factor == script["lr_decay_factor"]
    assert fit.plateau_min_delta == script["lr_decay_min_delta"]
    assert uci_protocol.OFFICIAL_LR == {"sp": script["lr_others"], "wn": script["lr_others"],
                               "bn": script["lr_others"], "gmp": script["lr_gmp"]}
    assert fit.loss == "mae" and script["loss"] == "mean_absolute_error"
    assert fit.adam_eps == script["adam_epsilon"] and cfg.preset == script["networks"]
    assert cfg.test_fraction == script["test_size"]
    assert cfg.to_dict()["monitor"] == script["validation_data"] == "test"


def test_protocols_differ_from_official_only_in_their_steps():
    off = uci_protocol.UCIConfig(protocol="official")
    a = off.to_dict()

    def changed(protocol):
        cfg = uci_protocol.UCIConfig(protocol=protocol)
        assert cfg.fit_config() == off.fit_config()
        b = cfg.to_dict()
        return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}

    assert changed("official-fewer-rows") == {"protocol", "val_fraction", "final_rows"}
    assert changed("honest-no-refit-paper-lr") == {"protocol", "monitor", "val_fraction",
                                                   "final_rows"}
    assert changed("honest-refit-paper-lr") == {"protocol", "monitor", "val_fraction",
                                                "refit", "final_rows"}
    assert changed("honest-refit") == {"protocol", "monitor", "val_fraction", "refit",
                                       "final_rows", "lr", "lr_grid", "folds"}
    assert changed("honest-no-refit") == {"protocol", "monitor", "val_fraction",
                                          "final_rows", "lr", "lr_grid", "folds"}


def test_protocols_are_one_value_each():
    """Six protocols, each one value with no invalid combination; a name is looked up once."""
    P = uci_protocol.PROTOCOLS
    assert list(P) == ["official", "official-fewer-rows", "honest-no-refit-paper-lr",
                       "honest-refit-paper-lr", "honest-refit", "honest-no-refit"]
    assert all(p.name == name for name, p in P.items())
    assert [n for n, p in P.items() if p.watches_test] == ["official", "official-fewer-rows"]
    assert [n for n, p in P.items() if p.lr_by_cv] == ["honest-refit", "honest-no-refit"]
    assert [n for n, p in P.items() if p.refit] == ["honest-refit-paper-lr", "honest-refit"]
    assert [n for n, p in P.items() if not p.splits_validation] == ["official"]
    assert uci_protocol.get_protocol("honest-refit") is P["honest-refit"]
    with pytest.raises(ValueError, match="unknown protocol 'honest'"):
        uci_protocol.get_protocol("honest")
    with pytest.raises(ValueError, match="can only watch the test split"):
        uci_protocol.Protocol("x", "validation split", "paper", "train")
    with pytest.raises(ValueError, match="'sometimes' is not one of"):
        uci_protocol.Protocol("x", "test", "sometimes", "train")
    cfg = uci_protocol.UCIConfig(protocol="honest-refit")
    assert cfg.protocol is P["honest-refit"]
    assert uci_protocol.UCIConfig(protocol=P["honest-refit"]) == cfg


RESULTS = Path(__file__).resolve().parents[1] / "results"


@pytest.mark.parametrize("path", sorted(RESULTS.glob("uci*.json")), ids=lambda p: p.name)
def test_committed_files_are_in_todays_layout(path):
    """Every committed UCI file reads as it is (no old layout to convert), names one of the
    protocols, and its config is the one today's code writes for that protocol, so that a
    run with the same settings would resume it."""
    doc = uci_report.load_results(path)
    assert doc["format"] == uci_report.FORMAT_VERSION
    c = doc["config"]
    settings = {k: c[k] for k in ("splits", "preset", "hidden", "max_epochs", "patience",
                                  "batch_size", "dtype")}
    cfg = uci_protocol.UCIConfig(protocol=doc["protocol"], params=tuple(c["params"]),
                                 **settings)
    assert cfg.to_dict() == c


def _poisoned(data: UCIData, cfg: uci_protocol.UCIConfig) -> UCIData:
    """Split 0's test rows, features and targets, replaced by NaN (they are training rows of
    the other splits, so only split 0 is compared)."""
    X, y = data.X.copy(), data.y.copy()
    _, test = uci_protocol.split_indices(len(y), 0, cfg.test_fraction)
    X[test], y[test] = np.nan, np.nan
    return UCIData(data.name, X, y, data.feature_columns, data.target_column)


def _one_split(data: UCIData, cfg: uci_protocol.UCIConfig, param: str) -> dict:
    return uci_runner.run_unit(data, param, cfg)["splits"][0]


HONEST = ("honest-no-refit", "honest-no-refit-paper-lr", "honest-refit",
          "honest-refit-paper-lr")


@pytest.mark.parametrize("protocol", HONEST)
@pytest.mark.parametrize("param", PARAMS)
def test_honest_protocol_never_reads_the_test_split(param, protocol):
    """Test features and targets NaN: training and every selection are unchanged (for the
    refit: its epochs and replayed cuts too); only the scores on the test split become
    NaN."""
    data, cfg = _tiny_data(), _tiny_cfg(splits=1, protocol=protocol)
    c = _one_split(data, cfg, param)
    p = _one_split(_poisoned(data, cfg), cfg, param)
    for key in ("test_rmse", "no_refit_test_rmse"):
        if key in c or key in p:
            assert math.isfinite(c.pop(key)) and math.isnan(p.pop(key)), key
    assert c == p          # chosen LR, CV scores, epochs, refit schedule: identical


def _refit_tasks(monkeypatch, cfg, param="sp"):
    """The tasks the refit trains (captured from ``_train_tasks``)."""
    seen = []
    orig = uci_runner._train_tasks

    def spy(data, tasks, *a, **k):
        seen.extend(tasks)
        return orig(data, tasks, *a, **k)

    monkeypatch.setattr(uci_runner, "_train_tasks", spy)
    uci_runner.run_unit(_tiny_data(), param, cfg)
    return [t for t in seen if t.replay is not None]


@pytest.mark.parametrize("protocol", ("honest-refit", "honest-refit-paper-lr"))
def test_refit_trains_on_every_training_row_and_never_the_test_split(monkeypatch,
                                                                     protocol):
    cfg = _tiny_cfg(protocol=protocol)
    refits = _refit_tasks(monkeypatch, cfg)
    assert len(refits) == cfg.splits
    for t in refits:
        train, test = uci_protocol.split_indices(60, t.split, cfg.test_fraction)
        assert sorted(t.fit) == sorted(train) and len(t.val) == 0
        assert sorted(t.seen) == sorted(train)
        assert not set(t.fit) & set(test) and sorted(t.score) == sorted(test)


def test_refit_replays_the_selection_runs_epochs_and_cuts():
    data, cfg = _tiny_data(), _tiny_cfg(protocol="honest-refit-paper-lr", splits=2,
                                        max_epochs=200, patience=20)
    out = uci_runner.run_unit(data, "gmp", cfg)["splits"]
    assert any(r["lr_drops"] for r in out)        # the schedule cut the rate somewhere
    for r in out:
        sel = r["selection"]
        want = sel["best_epoch"] if sel["stopped_early"] else sel["epochs"]
        assert r["epochs"] == max(1, want)
        assert all(e < r["epochs"] for e in r["lr_drops"])
    # the selection run is the honest-no-refit-paper-lr final model
    no = uci_runner.run_unit(data, "gmp", _tiny_cfg(protocol="honest-no-refit-paper-lr", splits=2,
                                             max_epochs=200, patience=20))["splits"]
    assert [r["no_refit_test_rmse"] for r in out] == [r["test_rmse"] for r in no]


@pytest.mark.parametrize("param", PARAMS)
def test_replayed_schedule_equals_the_selected_run(param):
    """On the same rows and seeds, replaying a monitored run's selected epochs and
    learning-rate cuts gives its kept weights exactly (float64)."""

    g = torch.Generator().manual_seed(3)
    S, N, n = 4, 40, 3
    x = torch.randn(S, N, n, generator=g, dtype=torch.float64)
    y = 3 * torch.sin(x[..., 0]) + x[..., 1]
    xv = torch.randn(S, 12, n, generator=g, dtype=torch.float64)
    yv = 3 * torch.sin(xv[..., 0]) + xv[..., 1]
    cfg = FitConfig(max_epochs=300, patience=20, batch_size=16)
    lr, seeds = [0.1, 0.05, 0.1, 0.3], [5, 6, 7, 8]

    def members():
        return seeded_mlps(param, n, 6, [1, 2, 3, 4], dtype=torch.float64)

    r = fit(members(), x, y, lr, cfg, seeds, monitor=(xv, yv))
    assert any(r.drops_before(s) for s in range(S))
    kept = tuple(r.selected_epochs.tolist())
    q = fit(members(), x, y, lr, cfg, seeds,
            replay=Replay(kept, tuple(tuple(r.drops_before(s)) for s in range(S))))
    assert torch.equal(q.epochs_run, r.selected_epochs)
    assert torch.equal(r.net.flat_state(), q.net.flat_state())
    # a cut not replayed changes the weights
    skip = [r.drops_before(s)[1:] for s in range(S)]
    q2 = fit(members(), x, y, lr, cfg, seeds, replay=Replay(kept, tuple(map(tuple, skip))))
    assert not torch.equal(r.net.flat_state(), q2.net.flat_state())
    # the module reference records the same cuts
    m = fit_module(members()[0], x[0], y[0], lr[0], cfg, seeds[0], monitor=(xv[0], yv[0]))
    assert m.lr_drops[0] == r.lr_drops[0]


def test_official_protocol_selects_on_the_test_split():
    data, cfg = _tiny_data(), _tiny_cfg(protocol="official", splits=1)
    assert _one_split(data, cfg, "sp")["best_epoch"] > 0
    # the monitor is the test split's MSE: NaN, so no epoch ever improves
    assert _one_split(_poisoned(data, cfg), cfg, "sp")["best_epoch"] == 0


@pytest.mark.parametrize("protocol", ["honest-no-refit", "honest-refit"])
def test_batched_and_module_engines_agree_on_the_protocol(protocol):
    """The module reference trains every model of the protocol alone, the refit too."""
    data, cfg = _tiny_data(), _tiny_cfg(protocol=protocol, max_epochs=60, patience=12)
    drops = 0
    same = ("lr", "epochs", "cv_stopped_early") + (
        ("lr_drops", "selection") if cfg.protocol.refit else ("best_epoch", "stopped_early"))
    for m in PARAMS:
        a = uci_runner.run_unit(data, m, cfg, engine="batched")["splits"]
        b = uci_runner.run_unit(data, m, cfg, engine="module")["splits"]
        for ra, rb in zip(a, b, strict=True):
            for key in same:
                assert ra[key] == rb[key], (m, key)
            assert ra["test_rmse"] == pytest.approx(rb["test_rmse"], rel=1e-7)
            for lr, v in ra["cv_rmse"].items():
                assert v == pytest.approx(rb["cv_rmse"][lr], rel=1e-7)
        if cfg.protocol.refit:
            drops += sum(len(r["lr_drops"]) for r in a)
    assert drops or not cfg.protocol.refit        # cuts are replayed, not only epochs
    with pytest.raises(ValueError, match="unknown engine"):
        uci_runner.run_unit(data, "sp", cfg, engine="keras")


def test_honest_with_the_papers_rates_skips_cross_validation():
    data, cfg = _tiny_data(), _tiny_cfg(protocol="honest-no-refit-paper-lr")
    assert uci_runner.n_models(cfg) == cfg.splits
    for m in ("sp", "gmp"):
        for split in uci_runner.run_unit(data, m, cfg)["splits"]:
            assert split["lr"] == uci_protocol.OFFICIAL_LR[m] and "cv_rmse" not in split
    res = {"config": cfg.to_dict()}
    assert uci_report.lr_choice_table(res).startswith("(fixed learning rates: SP 0.01")


def test_config_errors():
    with pytest.raises(ValueError, match="unknown protocol 'leaky'"):
        uci_protocol.UCIConfig(protocol="leaky")
    with pytest.raises(ValueError, match="unknown parameterization 'ln'"):
        uci_protocol.UCIConfig(params=("sp", "ln"))
    with pytest.raises(ValueError, match="lr_grid"):
        uci_protocol.UCIConfig(lr_grid=(0.1, -1.0))
    with pytest.raises(TypeError):
        uci_protocol.UCIConfig(protocol="honest-refit", lr_choice="paper")  # one value
    with pytest.raises(ValueError, match="unknown preset"):
        uci_protocol.UCIConfig(preset="keras")
    assert uci_protocol.UCIConfig().protocol.name == "official"      # the authors' script
    assert uci_protocol.UCIConfig(protocol="official").batch_size == 1024


def test_markdown_table_bolds_best():
    res = {"datasets": {"yacht": {"n_rows": 308, "n_features": 6, "params": {
        "sp": {"test_rmse_mean": 1.234, "test_rmse_std": 0.1},
        "gmp": {"test_rmse_mean": 0.987, "test_rmse_std": 0.05}}}}}
    table = uci_report.markdown_table(res)
    assert "**0.987 ± 0.050**" in table and "| 1.23 ± 0.10 |" in table
    assert table.splitlines()[0] == "| data set | N × d | SP | GmP |"


# ---------------------------------------------------------------- CLI, resume

def _argv(out: Path) -> list[str]:
    return ["--protocol", "honest-refit", "--datasets", "yacht", "--splits", "1",
            "--params", "sp,gmp", "--folds", "2",
            "--lr-grid", "0.01,0.1", "--max-epochs", "4", "--patience", "2", "--hidden", "5",
            "--out", str(out), "--quiet", "--threads", "1"]


def _numbers(res: dict) -> dict:
    """The results without provenance and timings."""
    return {n: {m: [{k: v for k, v in s.items()} for s in e["params"][m]["splits"]]
                for m in e["params"]} for n, e in res["datasets"].items()}


@needs_data
def test_cli_writes_json_and_resumes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "res" / "uci.json"
    assert uci.main(_argv(out)) == 0
    res = json.loads(out.read_text())
    assert res["protocol"] == "honest-refit" and set(res["datasets"]) == {"yacht"}
    entry = res["datasets"]["yacht"]
    assert list(entry["params"]) == ["sp", "gmp"]
    split = entry["params"]["gmp"]["splits"][0]
    assert split["lr"] in (0.01, 0.1) and math.isfinite(split["test_rmse"])
    for key in provenance.KEYS:
        assert key in res["provenance"] and key in entry["params"]["gmp"]["run"]
    assert "gmp-uci --protocol honest-refit --datasets yacht" in res["provenance"]["command"]
    assert "cpu" in res["provenance"]["hardware"] and res["provenance"]["git_revision"] is not None
    assert "- command: `gmp-uci --protocol honest-refit --datasets yacht" in \
        uci_report.provenance_markdown(res)
    assert "| yacht | 308 × 6 |" in capsys.readouterr().out

    def boom(*a, **k):
        raise AssertionError("a finished unit was trained again")

    monkeypatch.setattr(uci_runner, "run_unit", boom)
    assert uci.main(_argv(out)) == 2                       # exists: never written unasked
    assert "pass --resume to continue it, --replace" in capsys.readouterr().err
    assert uci.main(_argv(out) + ["--resume"]) == 0        # resumed: nothing to do
    assert json.loads(out.read_text()) == res
    # a file of layout 2 ("methods", "created") or of an unknown protocol is not one
    old = copy.deepcopy(res)
    old["format"], old["created"] = 2, old.pop("provenance")
    legacy = tmp_path / "legacy.json"
    legacy.write_text(json.dumps(old))
    with pytest.raises(ValueError, match="not a gmp-uci results file"):
        uci_report.load_results(legacy)
    old = copy.deepcopy(res)
    old["protocol"] = old["config"]["protocol"] = "honest"
    legacy.write_text(json.dumps(old))
    with pytest.raises(ValueError, match="protocol 'honest'"):
        uci_report.load_results(legacy)
    argv = _argv(out) + ["--resume"]
    argv[argv.index("--max-epochs") + 1] = "5"
    assert uci.main(argv) == 2                             # other config: clear error
    assert "different configuration" in capsys.readouterr().err


@needs_data
def test_resume_after_a_kill_gives_identical_numbers(tmp_path, monkeypatch):
    whole = tmp_path / "whole.json"
    assert uci.main(_argv(whole)) == 0
    cut = tmp_path / "cut.json"
    real, calls = uci_runner.run_unit, []

    def killed_after_one(*a, **k):
        if calls:
            raise KeyboardInterrupt       # the process dies during the second unit
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(uci_runner, "run_unit", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        uci.main(_argv(cut))
    assert list(json.loads(cut.read_text())["datasets"]["yacht"]["params"]) == ["sp"]
    monkeypatch.setattr(uci_runner, "run_unit", real)
    assert uci.main(_argv(cut) + ["--resume"]) == 0
    assert _numbers(json.loads(cut.read_text())) == _numbers(json.loads(whole.read_text()))


def test_cli_runs_the_old_honest_commands(tmp_path, monkeypatch, capsys):
    """Recorded commands of earlier files (``--protocol honest [--lr-choice paper]``) run as
    the protocols they were; ``--lr-choice`` with a new protocol is an error."""
    got = []
    monkeypatch.setattr(uci, "run", lambda d, cfg, *a, **k: got.append(cfg.protocol.name)
                        or {"datasets": {}})
    monkeypatch.setattr(uci, "markdown_table", lambda r: "")
    base = ["--datasets", "yacht", "--splits", "1", "--quiet"]
    assert uci.main([*base, "--protocol", "honest", "--out", str(tmp_path / "a.json")]) == 0
    assert uci.main([*base, "--protocol", "honest", "--lr-choice", "paper",
                     "--out", str(tmp_path / "b.json")]) == 0
    assert got == ["honest-no-refit", "honest-no-refit-paper-lr"]
    for protocol, choice in (("honest-refit", "paper"), ("official", "cv"),
                             ("official", "paper")):
        assert uci.main([*base, "--protocol", protocol, "--lr-choice", choice,
                         "--out", str(tmp_path / "c.json")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("gmp-uci: error: --lr-choice belongs to the old protocol "
                              f"'honest' only, not to '{protocol}'") and err.count("\n") == 1
    assert got == ["honest-no-refit", "honest-no-refit-paper-lr"]
    with pytest.raises(SystemExit):                       # the hidden --methods is gone
        uci._parser().parse_args(["--methods", "sp"])


def test_cli_rejects_unknown_dataset(tmp_path, capsys):
    assert uci.main(["--datasets", "kin8nm", "--out", str(tmp_path / "x.json"), "--quiet"]) == 2
    assert "unknown UCI data set 'kin8nm'" in capsys.readouterr().err


@needs_data
def test_cli_jobs_gives_the_same_numbers(tmp_path):
    """Units in parallel processes: the same numbers as one after another."""
    outs = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"jobs{jobs}.json"
        argv = _argv(out)
        argv[argv.index("yacht")] = "yacht,boston"
        assert uci.main(argv + ["--jobs", jobs]) == 0
        outs[jobs] = json.loads(out.read_text())
    assert _numbers(outs["1"]) == _numbers(outs["2"])
    assert outs["2"]["datasets"]["boston"]["params"]["gmp"]["run"]["jobs"] == 2
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        uci_runner.run(["yacht"], uci_protocol.UCIConfig(), jobs=0)


# ---------------------------------------------------------------- reading results

def _results(rmse: dict[str, dict[str, list[float]]], config: dict | None = None,
             **extra) -> dict:
    """A results file with the given per-split test RMSEs ``{data set: {param: [...]}}``."""
    ds = {}
    for name, per in rmse.items():
        params = {}
        for m, values in per.items():
            splits = [{"split": k, "lr": 0.01, "test_rmse": v, "best_epoch": 5, "epochs": 105,
                       "stopped_early": k % 2 == 0, **extra} for k, v in enumerate(values)]
            params[m] = {"test_rmse_mean": float(np.mean(values)),
                          "test_rmse_std": float(np.std(values, ddof=1)), "splits": splits}
        ds[name] = {"n_rows": 100, "n_features": 3, "params": params}
    return {"config": config or {"lr": {"sp": 0.01}}, "datasets": ds}


def test_paired_tests_adjust_over_every_pair_and_verdict_needs_every_data_set():
    ten = list(np.linspace(1.0, 2.0, 10))
    better = [v - 0.1 for v in ten]
    res = _results({"yacht": {"sp": ten, "wn": ten, "gmp": better},
                    "boston": {"sp": ten, "wn": better, "gmp": ten}})
    comps = uci_report.comparisons(res)
    c = comps["yacht"]["sp"]
    assert (c.wins, c.losses) == (10, 0) and c.median > 0      # positive = GmP better
    # raw two-sided sign-test p of 10-0 is 2/1024; three pairs tie at it and one (all ties)
    # has p = 1, so Holm multiplies the smallest by 4 and the running maximum keeps it
    assert c.p_raw == pytest.approx(2 / 1024) and c.p == pytest.approx(4 * 2 / 1024)
    assert comps["boston"]["wn"].losses == 10 and comps["boston"]["sp"].ties == 10
    v = uci_report.claim_verdict(res)
    assert v["lowest_mean"] == ["yacht"] and v["significantly_better"] == ["yacht"]
    assert v["significantly_worse"] == ["boston"]
    assert v["word"] == "contradicted"          # significantly worse than WN on boston
    assert v["summary"].startswith("lowest mean on 1 of 2; significantly best on yacht")
    everywhere = _results({"yacht": {"sp": ten, "gmp": better}, "boston": {"sp": ten,
                                                                           "gmp": better}})
    assert uci_report.claim_verdict(everywhere)["word"] == "supported"
    row = [r for r in uci_report.paired_table(everywhere).splitlines() if r.startswith("| yacht")]
    assert "| 10–0–0 |" in row[0] and "| 0.0039 | **supported** |" in row[0]  # 2 pairs
    nowhere = _results({"yacht": {"sp": ten, "gmp": ten[::-1]}})
    assert uci_report.claim_verdict(nowhere)["word"] == "not shown"


def test_budget_table():
    ten = [1.0] * 10
    res = _results({"yacht": {"sp": ten, "gmp": ten}}, {"lr_grid": [0.01, 0.1]}, cv_models=9,
                   cv_stopped_early=8)
    table = uci_report.budget_table(res)
    assert "| yacht | 10/20 | 160/180 | 105 |" in table
    fixed = uci_report.budget_table(_results({"yacht": {"sp": ten}}))
    assert "CV models" not in fixed and "| yacht | 5/10 | 105 |" in fixed


def test_decomposition_counts_a_diverged_split_as_table_1_does():
    """A stage with a diverged split has a NaN mean (Table 1's), not the mean of the others;
    its paired comparison counts the split as a loss of the diverged stage."""
    ten = list(np.linspace(1.0, 2.0, 10))
    extra = {"no_refit_test_rmse": 1.0}
    diverged = [math.nan, *ten[1:]]
    files = {"official": _results({"yacht": {"sp": ten}}),
             "official-fewer-rows": _results({"yacht": {"sp": diverged}}),
             "honest-refit-paper-lr": _results({"yacht": {"sp": ten}}, **extra)}
    row, = uci_report.decomposition(files)
    assert math.isnan(row["means"]["fewer rows, test monitor"])
    assert math.isnan(row["steps"]["fewer rows"]["delta"])
    cmp = row["steps"]["fewer rows"]["cmp"]    # a "win": the step raised the RMSE there
    assert (cmp.wins, cmp.losses, cmp.ties) == (1, 0, 9) and cmp.diffs[0] == math.inf
    assert uci_report.summarize(files["official-fewer-rows"])[0]["sp"][0] != \
        uci_report.summarize(files["official-fewer-rows"])[0]["sp"][0]      # NaN there too


def test_rerun_agreement_with_diverged_splits():
    ten = list(np.linspace(1.0, 2.0, 10))
    rec = _results({"yacht": {"sp": ten, "gmp": ten}})["datasets"]["yacht"]
    same = uci_report.rerun_agreement(copy.deepcopy(rec), rec)
    assert same["identical"] and same["holds"] and same["max_split_diff"] == 0
    rerun = _results({"yacht": {"sp": [math.nan, *ten[1:]], "gmp": ten}})["datasets"]["yacht"]
    a = uci_report.rerun_agreement(rerun, rec)
    assert a["max_split_diff"] == math.inf and not a["identical"]
    assert not a["within"] and not a["holds"]        # a NaN mean is never within tolerance
    assert uci_report.rerun_markdown(a)
    both = uci_report.rerun_agreement(rerun, copy.deepcopy(rerun))
    assert both["identical"] and both["max_split_diff"] == 0
    with pytest.raises(ValueError, match="share no param"):
        uci_report.rerun_agreement(rerun, {"params": {}})


@pytest.mark.parametrize("name", ("uci_official.json", "uci_official_fewer_rows.json",
                                  "uci_honest_refit_paper_lr.json",
                                  "uci_honest_refit.json"))
def test_committed_decomposition_files_are_complete_and_recorded(name):
    """Each file of the decomposition: written by a committed command naming it, from a
    clean checkout, every param with 10 splits on every data set it holds."""
    path = Path(__file__).resolve().parents[1] / "results" / name
    if not path.exists():
        pytest.skip(f"{name} not committed")
    res = uci_report.load_results(path)
    prov = res["provenance"]
    assert prov["git_dirty"] is False and f"--out results/{name}" in prov["command"]
    assert f"--protocol {res['protocol']}" in prov["command"]
    for entry in res["datasets"].values():
        assert list(entry["params"]) == list(PARAMS)
        for r in entry["params"].values():
            assert [s["split"] for s in r["splits"]] == list(range(10))
            if res["config"].get("refit"):
                assert all("no_refit_test_rmse" in s for s in r["splits"])
