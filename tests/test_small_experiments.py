"""The small-experiment runner: batched engine vs modules, optimizer, schedules, CLI."""

from __future__ import annotations

import json
import math
import sys
import types

import numpy as np
import pytest
import torch

from gmp import cab
from gmp.baselines import mlp
from gmp.data.banana import BananaSplits
from gmp.experiments import figures, small, tasks
from gmp.experiments.__main__ import main
from gmp.experiments.batched import (
    BatchedAdam,
    BatchedEarlyStopping,
    BatchedMLP,
    BatchedPlateau,
    nanmax,
)
from gmp.experiments.small import BananaConfig, LevyConfig, SmallRunResult, run
from gmp.params import PARAMS, PRESETS

F64 = torch.float64

TINY_LEVY = LevyConfig(hidden=6, max_epochs=40, plateau_patience=3, patience=8)
TINY_BANANA = BananaConfig(hidden=4, max_epochs=12, batch_size=16, plateau_patience=1,
                           patience=4)


def _synthetic_banana(seed: int, n_train: int = 40, n_val: int = 16, n_test: int = 16
                      ) -> BananaSplits:
    g = torch.Generator().manual_seed(seed)

    def split(n):
        x = torch.randn(n, 2, generator=g)
        y = ((x[:, 0] * x[:, 1] + 0.3 * torch.randn(n, generator=g)) > 0).float()
        return x, y

    return BananaSplits(*split(n_train), *split(n_val), *split(n_test), np.zeros(2),
                        np.ones(2), seed)


BANANA_DATA = {s: _synthetic_banana(s) for s in (0, 1)}


def _models(param: str, seeds, n_in: int = 1, hidden: int = 5, dtype=torch.float32):
    out = []
    for s in seeds:
        torch.manual_seed(s)
        out.append(mlp(param, n_in, hidden, 1).to(dtype))
    return out


# ---------------------------------------------------------------------------------------
# stacked forward == module forward
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("param", PARAMS)
def test_batched_forward_matches_modules(param):
    models = _models(param, [0, 1, 2], n_in=3, hidden=7)
    net = BatchedMLP.from_modules(models)
    x = torch.randn(3, 11, 3)
    # training mode (BN: batch statistics, running statistics updated)
    out = net.train()(x)
    for s, m in enumerate(models):
        torch.testing.assert_close(out[s], m.train()(x[s]), rtol=1e-5, atol=1e-6)
    if param == "bn":
        for s, m in enumerate(models):
            torch.testing.assert_close(net.bn.running_mean[s], m.hidden[1].running_mean)
            torch.testing.assert_close(net.bn.running_var[s], m.hidden[1].running_var)
    # evaluation mode
    out = net.eval()(x)
    for s, m in enumerate(models):
        torch.testing.assert_close(out[s], m.eval()(x[s]), rtol=1e-5, atol=1e-6)


def _stack_name(module_name: str) -> str:
    """Name in BatchedMLP of a parameter of OneHiddenLayerMLP."""
    return (module_name.replace("parametrizations.weight.original0", "g")
            .replace("parametrizations.weight.original1", "v")
            .replace("hidden.0.", "hidden.").replace("hidden.1.", "bn."))


@pytest.mark.parametrize("param", PARAMS)
def test_batched_gradients_match_modules(param):
    models = _models(param, [0, 1], n_in=2, hidden=5, dtype=F64)
    net = BatchedMLP.from_modules(models).train()
    x, y = torch.randn(2, 9, 2, dtype=F64), torch.randn(2, 9, 1, dtype=F64)
    ((net(x) - y) ** 2).mean(dim=(1, 2)).sum().backward()
    stacked = dict(net.named_parameters())
    for s, m in enumerate(models):
        m.train()
        ((m(x[s]) - y[s]) ** 2).mean().backward()
        names = [n for n, p in m.named_parameters() if p.numel() > 0]
        assert sorted(map(_stack_name, names)) == sorted(
            n for n, p in stacked.items() if p.numel() > 0)
        for n in names:
            torch.testing.assert_close(stacked[_stack_name(n)].grad[s],
                                       m.get_parameter(n).grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("n_in", [1, 2])
def test_cab_state_matches_gmp_cab(param, n_in):
    models = _models(param, [0, 1], n_in=n_in, hidden=5, dtype=F64)
    x = torch.randn(2, 13, n_in, dtype=F64)
    net = BatchedMLP.from_modules(models).train()
    loc, direc = net.cab_state(x if param == "bn" else None)
    for s, m in enumerate(models):
        inputs = x[s] if param == "bn" else None
        torch.testing.assert_close(loc[s], cab.spatial_locations(m.hidden.train(), inputs))
        torch.testing.assert_close(direc[s], cab.directions(m.hidden, inputs))
    before = (loc, direc)
    after = (loc + 0.1, torch.roll(direc, 1, dims=1))
    dl, da = BatchedMLP.cab_change(before, after)
    ref = cab.angular_change(before[1], after[1], degrees=True).amax(-1)
    torch.testing.assert_close(da, ref)
    torch.testing.assert_close(dl, torch.full_like(dl, 0.1 * math.sqrt(n_in)))


@pytest.mark.parametrize("preset", ["authors", "authors-weight-form"])
def test_cab_state_orients_gmp_by_form(preset):
    """Weight form: a sign change of r swaps the active side, and the stacked engine
    measures it as gmp.cab does (sign(r)·u, a 180° turn); unit form: u whatever r."""
    models = []
    for s in (0, 1):
        torch.manual_seed(s)
        models.append(mlp("gmp", 2, 5, 1, preset=preset).double())
    with torch.no_grad():
        models[0].hidden.r[:2] *= -1                       # two units with r < 0
    net = BatchedMLP.from_modules(models)
    _, before = net.cab_state()
    for s, m in enumerate(models):
        torch.testing.assert_close(before[s], cab.directions(m.hidden))
    with torch.no_grad():
        net.hidden.r[1, 0] *= -1                           # one sign change of r
    _, after = net.cab_state()
    _, turn = BatchedMLP.cab_change((before, before), (after, after))
    expected = 180.0 if preset == "authors-weight-form" else 0.0
    assert turn[1].item() == pytest.approx(expected) and turn[0].item() == 0.0


@pytest.mark.parametrize("param", PARAMS)
def test_load_into_roundtrip(param):
    models = _models(param, [0, 1], n_in=2, hidden=4)
    net = BatchedMLP.from_modules(models)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    fresh = _models(param, [5], n_in=2, hidden=4)[0]
    net.load_into(fresh, 1)
    x = torch.randn(1, 6, 2)
    net.eval()
    torch.testing.assert_close(fresh.eval()(x[0]), net(x.expand(2, -1, -1))[1])


def test_stack_rejects_mixed_params_and_bad_input():
    with pytest.raises(ValueError, match="one parameterization"):
        BatchedMLP([mlp("sp", 1, 3), mlp("gmp", 1, 3)])
    net = BatchedMLP([mlp("sp", 2, 3)])
    with pytest.raises(ValueError, match="expected input"):
        net(torch.randn(2, 4, 2))


def test_nanmax():
    x = torch.tensor([[1.0, math.nan, 3.0], [math.nan, math.nan, math.nan]])
    out = nanmax(x, dim=-1)
    assert out[0] == 3.0 and math.isnan(out[1])


# ---------------------------------------------------------------------------------------
# optimizer and schedules == torch's
# ---------------------------------------------------------------------------------------
def test_batched_adam_matches_torch_adam():
    torch.manual_seed(0)
    S, lrs = 3, [1e-3, 1e-2, 0.3]
    a0, b0 = torch.randn(S, 4, 2, dtype=F64), torch.randn(S, 5, dtype=F64)
    a, b = a0.clone().requires_grad_(), b0.clone().requires_grad_()
    opt = BatchedAdam([a, b], torch.tensor(lrs, dtype=F64))
    refs = [(a0[s].clone().requires_grad_(), b0[s].clone().requires_grad_()) for s in range(S)]
    topts = [torch.optim.Adam(list(r), lr=lr) for r, lr in zip(refs, lrs, strict=True)]
    for step in range(25):
        ga, gb = torch.randn(S, 4, 2, dtype=F64), torch.randn(S, 5, dtype=F64)
        a.grad, b.grad = ga.clone(), gb.clone()
        active = torch.tensor([True, True, step < 10])  # member 2 leaves after 10 steps
        opt.step(active)
        for s in range(S):
            if bool(active[s]):
                refs[s][0].grad, refs[s][1].grad = ga[s].clone(), gb[s].clone()
                topts[s].step()
        if step == 12:  # the learning rate can change between steps
            opt.lr[0] = 5e-4
            topts[0].param_groups[0]["lr"] = 5e-4
    for s in range(S):
        torch.testing.assert_close(a[s], refs[s][0], rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(b[s], refs[s][1], rtol=1e-12, atol=1e-14)


def test_batched_adam_errors():
    p = torch.zeros(2, 3, requires_grad=True)
    with pytest.raises(ValueError, match="positive"):
        BatchedAdam([p], torch.tensor([0.1, 0.0]))
    with pytest.raises(ValueError, match="shape"):
        BatchedAdam([p], torch.tensor([0.1, 0.1, 0.1]))
    with pytest.raises(RuntimeError, match="no gradient"):
        BatchedAdam([p], torch.tensor([0.1, 0.1])).step()


@pytest.mark.parametrize("mode", ["min", "max"])
def test_batched_plateau_matches_torch(mode):
    rng = np.random.default_rng(1)
    T, S = 60, 4
    # noisy staircases with long flat stretches, so that reductions happen; one NaN stretch
    # (positive values: torch's relative threshold treats negative ones differently)
    vals = 1 + np.cumsum(rng.integers(0, 2, size=(T, S)) * rng.random((T, S)), axis=0)
    vals = 100 - vals if mode == "min" else vals
    vals[T // 2:, :] = vals[T // 2, :]
    vals[20:23, 3] = np.nan
    lr = torch.tensor([0.1, 0.01, 1.0, 0.1], dtype=F64)
    sched = BatchedPlateau(lr, mode=mode, factor=0.1, patience=3)
    refs = []
    for s in range(S):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=float(lr[s]))
        refs.append((opt, torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=mode,
                                                                     factor=0.1, patience=3)))
    reductions = 0
    for t in range(T):
        before = lr.clone()
        sched.step(torch.from_numpy(vals[t]))
        reductions += int((lr < before).sum())
        for s, (opt, ref) in enumerate(refs):
            ref.step(float(vals[t, s]))
            assert float(lr[s]) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
    assert reductions >= 4


def test_batched_plateau_respects_active():
    lr = torch.tensor([1.0, 1.0], dtype=F64)
    sched = BatchedPlateau(lr, patience=1)
    for _ in range(5):
        sched.step(torch.tensor([1.0, 1.0]), active=torch.tensor([True, False]))
    assert float(lr[0]) < 1.0 and float(lr[1]) == 1.0


def test_batched_early_stopping():
    es = BatchedEarlyStopping(2, mode="min", patience=3)
    seq = [[5.0, 5.0], [4.0, 6.0], [4.5, 6.0], [3.9, 6.0], [4.0, 6.0], [4.0, 6.0],
           [4.0, 6.0], [1.0, 0.0]]
    stops = []
    for t, v in enumerate(seq):
        improved, stop = es.update(torch.tensor(v, dtype=F64))
        if t == 0:
            assert improved.all()
        stops.append(stop.tolist())
    # member 1: best at epoch 0, stops after 3 epochs without improvement (epoch 3)
    # member 0: improves at 1 and 3, then 3 bad epochs -> stops at epoch 6
    assert stops[3] == [False, True] and stops[6] == [True, False]
    assert es.best_epoch.tolist() == [3, 0] and es.stopped.all()
    assert es.best.tolist() == [3.9, 5.0]  # nothing changes once stopped
    nan = BatchedEarlyStopping(1, mode="max", patience=2)
    assert not nan.update(torch.tensor([math.nan]))[0].any()


# ---------------------------------------------------------------------------------------
# the batched engine == the module engine (float64)
# ---------------------------------------------------------------------------------------
def _assert_same_run(a: SmallRunResult, b: SmallRunResult) -> None:
    assert (a.param, a.seed, a.lr) == (b.param, b.seed, b.lr)
    assert a.epochs_run == b.epochs_run and a.best_epoch == b.best_epoch
    assert a.kept_step == b.kept_step
    assert a.stopped_early == b.stopped_early
    assert a.history.keys() == b.history.keys()
    for k in a.history:
        np.testing.assert_allclose(a.history[k], b.history[k], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(a.steps, b.steps)
    # x* = -b/w divides by w: a unit with a small |w| amplifies rounding (BN's batch
    # statistics are summed in another order in the two engines)
    np.testing.assert_allclose(a.locations, b.locations, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(a.max_location_change, b.max_location_change, rtol=1e-7,
                               atol=1e-9)
    np.testing.assert_allclose(a.max_angular_change, b.max_angular_change, rtol=1e-7,
                               atol=1e-7)
    for k in a.metrics:   # the largest move of an x* divides by a small |w| too
        rel = 1e-6 if k == "max_step_change" else 1e-8
        assert a.metrics[k] == pytest.approx(b.metrics[k], rel=rel, abs=1e-10), k


@pytest.mark.parametrize("param", PARAMS)
def test_levy_batched_equals_module(param):
    kw = dict(config=TINY_LEVY, lr=[0.01, 0.5], dtype=F64, progress=False, track_every=3)
    a = run("levy", param, [0, 1], engine="batched", **kw)
    b = run("levy", param, [0, 1], engine="module", **kw)
    assert len(a) == len(b) == 4
    for ra, rb in zip(a, b, strict=True):
        _assert_same_run(ra, rb)
    # the runs differ in length, so the masking of finished members is exercised
    assert len({r.epochs_run for r in a}) > 1 or param == "bn"


@pytest.mark.parametrize("param", PARAMS)
def test_banana_batched_equals_module(param):
    kw = dict(config=TINY_BANANA, lr=[0.01, 0.3], dtype=F64, progress=False,
              data=BANANA_DATA)
    a = run("banana", param, [0, 1], engine="batched", **kw)
    b = run("banana", param, [0, 1], engine="module", **kw)
    for ra, rb in zip(a, b, strict=True):
        _assert_same_run(ra, rb)
        assert len(ra.max_angular_change) == ra.epochs_run * 3  # 40 points, batches of 16


def test_members_are_independent():
    kw = dict(config=TINY_LEVY, dtype=F64, progress=False)
    together = run("levy", "sp", [0, 1, 2], lr=0.05, **kw)
    alone = run("levy", "sp", [1], lr=0.05, **kw)[0]
    _assert_same_run(together[1], alone)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_gmp_presets_run(preset):
    cfg = LevyConfig(hidden=5, max_epochs=5)
    r = run("levy", "gmp", [0], config=cfg, preset=preset, progress=False)[0]
    p = PRESETS[preset]
    assert r.preset == preset and r.config["preset"] == preset
    assert isinstance(r.model.out, torch.nn.Linear) == (p.gmp_readout == "dense")
    assert r.model.hidden.init == p.gmp_init
    assert (r.model.hidden.activation is not None) == (p.gmp_unit == "paper")


# ---------------------------------------------------------------------------------------
# early stopping keeps the best weights
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("param, lr", [("sp", 0.5), ("gmp", 1.0)])
def test_levy_restores_best_weights_when_stopped(param, lr):
    # a large learning rate makes the loss bounce, so the best epoch is not the last one
    cfg = LevyConfig(hidden=8, max_epochs=60, plateau_patience=100, patience=10)
    r = run("levy", param, [0], lr=lr, config=cfg, dtype=F64, progress=False)[0]
    hist = r.history["train_loss"]
    assert r.stopped_early and r.best_epoch == int(np.argmin(hist))
    assert r.epochs_run == r.best_epoch + 1 + cfg.patience
    # Keras keeps the weights at the end of the best epoch: after its step
    assert r.kept_step == r.best_epoch + 1
    again = run("levy", param, [0], lr=lr, dtype=F64, progress=False,
                config=LevyConfig(hidden=8, max_epochs=r.best_epoch + 1, plateau_patience=100,
                                  patience=10))[0]
    assert not again.stopped_early and again.kept_step == r.best_epoch + 1
    assert r.metrics["train_mae"] == pytest.approx(again.metrics["train_mae"], rel=1e-12)
    assert r.metrics["test_rmse"] == pytest.approx(again.metrics["test_rmse"], rel=1e-12)


def test_levy_keeps_last_weights_at_the_epoch_limit():
    probe = run("levy", "sp", [0], lr=0.5, dtype=F64, progress=False,
                config=LevyConfig(hidden=8, max_epochs=60, plateau_patience=100, patience=10))
    b = probe[0].best_epoch
    cfg = LevyConfig(hidden=8, max_epochs=b + 5, plateau_patience=100, patience=1000)
    r = run("levy", "sp", [0], lr=0.5, config=cfg, dtype=F64, progress=False)[0]
    assert not r.stopped_early and r.epochs_run == b + 5 and r.kept_step == b + 5
    assert r.best_epoch == b < b + 4  # the best epoch is not the last ...
    d = small.make_data("levy", 0)
    with torch.no_grad():  # ... but the last weights are kept, as Keras does
        mae = float((r.model(d.x_train) - d.y_train).abs().mean())
    assert r.metrics["train_mae"] == pytest.approx(mae, rel=1e-12)
    assert r.metrics["test_rmse"] != pytest.approx(probe[0].metrics["test_rmse"], rel=1e-6)


def test_banana_restores_best_weights():
    cfg = BananaConfig(hidden=4, max_epochs=30, batch_size=8, plateau_patience=50,
                       patience=6)
    r = run("banana", "sp", [0], lr=0.5, config=cfg, dtype=F64, progress=False,
            data=BANANA_DATA, protocol="honest")[0]
    acc = r.history["monitor_acc"]
    assert r.best_epoch == int(np.argmax(acc))  # first maximum: later ties do not improve
    assert r.metrics["monitor_acc"] == pytest.approx(acc.max())
    assert r.stopped_early and r.epochs_run == r.best_epoch + 1 + cfg.patience
    assert r.kept_step == (r.best_epoch + 1) * 5  # 40 points in batches of 8


# ---------------------------------------------------------------------------------------
# results, summaries, errors
# ---------------------------------------------------------------------------------------
def test_result_fields_and_roundtrip(tmp_path):
    res = run("levy", ["sp", "gmp"], [0, 1], config=TINY_LEVY, progress=False, track_every=4)
    r = res[0]
    T = len(r.steps)
    assert r.steps[0] == 0 and np.all(r.steps % 4 == 0)
    assert r.locations.shape == (T, 6, 1) and r.characteristic_points.shape == (T, 6)
    assert r.max_change.shape == (r.epochs_run,)  # one step per epoch (full batch)
    rows = small.summarize(res)
    assert [(row["param"], row["n"]) for row in rows] == [("sp", 2), ("gmp", 2)]
    assert rows[0]["mean"] == pytest.approx(np.mean([x.score for x in res[:2]]))
    r.metrics["train_rmse"] = math.nan  # NaN must survive as null
    path = tmp_path / "runs.json"
    small.save_results(str(path), res, {"command": "test"})
    json.loads(path.read_text())  # strict JSON
    prov, back = small.load_results(str(path))
    assert prov == {"command": "test"} and len(back) == 4
    assert math.isnan(back[0].metrics["train_rmse"])
    np.testing.assert_allclose(back[1].locations, res[1].locations)
    np.testing.assert_allclose(back[1].history["lr"], res[1].history["lr"])
    assert back[1].model is None
    small.save_results(str(path), res, {"command": "test"}, tracks=False)
    doc = json.loads(path.read_text())
    assert not {"history", "locations", "max_angular_change"} & doc["runs"][0].keys()
    _, slim = small.load_results(str(path))
    assert slim[1].history == {} and slim[1].metrics == pytest.approx(res[1].metrics,
                                                                      nan_ok=True)
    assert [r_.param for r_ in slim] == [r_.param for r_ in res] == ["sp", "sp", "gmp", "gmp"]


def test_banana_characteristic_points_are_1d_only():
    r = run("banana", "sp", [0], config=TINY_BANANA, progress=False, data=BANANA_DATA)[0]
    assert r.locations.shape[-1] == 2
    with pytest.raises(ValueError, match="1-D"):
        _ = r.characteristic_points


def test_default_learning_rates():
    assert small.default_lr("GmP") == 0.1
    assert {small.default_lr(m) for m in ("sp", "wn", "bn")} == {0.01}


@pytest.mark.parametrize("kw, err, match", [
    ({"task": "mnist"}, ValueError, "unknown task"),
    ({"params": "xx"}, ValueError, "unknown parameterization"),
    ({"engine": "gpu"}, ValueError, "unknown engine"),
    ({"lr": -1.0}, ValueError, "positive"),
    ({"lr": []}, ValueError, "positive"),
    ({"seeds": []}, ValueError, "no seeds"),
    ({"track_every": 0}, ValueError, "track_every"),
    ({"config": BananaConfig()}, TypeError, "LevyConfig"),
    ({"dtype": torch.float16}, ValueError, "dtype"),
])
def test_run_errors(kw, err, match):
    args = {"task": "levy", "params": "sp", "seeds": [0], "config": TINY_LEVY} | kw
    with pytest.raises(err, match=match):
        run(args.pop("task"), args.pop("params"), args.pop("seeds"), **args, progress=False)


@pytest.mark.parametrize("kw, match", [
    ({"max_epochs": 0}, "max_epochs"), ({"plateau_factor": 1.0}, "plateau_factor"),
    ({"hidden": 0}, "hidden"),
])
def test_config_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        LevyConfig(**kw)
    with pytest.raises(ValueError, match="val_fraction"):
        BananaConfig(val_fraction=0.0)


# ---------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------
def test_cli_levy(tmp_path, capsys):
    out = tmp_path / "levy.json"
    rc = main(["levy", "--param", "gmp", "sp", "--seeds", "0", "1", "--max-epochs", "5",
               "--hidden", "4", "--no-progress", "--output", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "GmP" in text and "SP" in text and "test_rmse" in text and "median" in text
    assert len([ln for ln in text.splitlines() if ln.startswith(("GmP ", "SP "))]) == 6
    doc = json.loads(out.read_text())
    prov = doc["provenance"]
    assert prov["command"].startswith("python -m gmp.experiments levy --param gmp sp")
    assert {"git_revision", "git_dirty", "date_utc", "hardware", "software"} <= prov.keys()
    assert len(doc["runs"]) == 4 and doc["runs"][0]["epochs_run"] == 5
    assert doc["runs"][0]["lr"] == 0.1 and doc["runs"][2]["lr"] == 0.01  # paper's defaults
    assert doc["runs"][0]["config"]["hidden"] == 4


def test_cli_banana_lr_grid(monkeypatch, capsys):
    monkeypatch.setattr(tasks, "banana_splits_authors", lambda seed, *a, **k: BANANA_DATA[seed])
    rc = main(["banana", "--param", "wn", "--seed", "1", "--lr", "0.01", "0.1",
               "--max-epochs", "2", "--hidden", "3", "--no-progress", "--no-tracks"])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert "test_acc" in lines[0] and len([ln for ln in lines if ln.startswith("WN ")]) == 4
    assert any("TEST split" in ln for ln in lines)  # the official protocol is flagged


def test_cli_errors(capsys):
    with pytest.raises(SystemExit):
        main(["levy", "--param", "nope", "--max-epochs", "1"])
    assert "unknown parameterization" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["levy", "--seed", "0", "--seeds", "1"])


def test_cli_dispatches_uci(monkeypatch):
    seen = {}
    fake = types.ModuleType("gmp.experiments.uci")
    fake.main = lambda argv: seen.setdefault("argv", argv) and 7
    monkeypatch.setitem(sys.modules, "gmp.experiments.uci", fake)
    assert main(["uci", "--dataset", "yacht"]) == 7
    assert seen["argv"] == ["--dataset", "yacht"]


def test_cli_subprocess(tmp_path):
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "gmp.experiments", "levy", "--param", "sp",
                           "--max-epochs", "3", "--hidden", "3", "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "SP " in proc.stdout


# ---------------------------------------------------------------------------------------
# figures, tables and sentences
# ---------------------------------------------------------------------------------------
def _fake(task: str, param: str, seed: int, score: float, lr: float = 0.1) -> SmallRunResult:
    key = "test_rmse" if task == "levy" else "test_acc"
    return SmallRunResult(task, param, "authors", "official", seed, seed, lr, 1, 0, 0, False,
                          {"lr": np.array([lr])}, {key: score}, np.array([0]),
                          np.zeros((1, 2, 1)), np.zeros(0), np.zeros(0), {})


def test_reference_comparison_sentences():
    scores = {"sp": [0.80, 0.82, 0.79], "gmp": [0.90, 0.85, 0.95]}
    runs = [_fake("banana", m, s, v) for m, vs in scores.items() for s, v in enumerate(vs)]
    text = figures.reference_comparison(runs, {"sp": 0.85, "gmp": 0.88})
    assert "ours GmP, SP" in text and "Both put GmP first" in text
    assert "within the range of our seeds for GmP" in text
    assert "For SP the authors' value (0.850) lies above all 3 of our seeds" in text
    assert "GmP has the best test accuracy of all parameterizations on 3 of 3 seeds" in text
    levy = [_fake("levy", "sp", 0, 1.0), _fake("levy", "gmp", 0, 2.0)]
    text = figures.reference_comparison(levy, {"sp": 1.5, "gmp": 0.5})
    assert "best parameterization differs: SP in our runs, GmP in the authors' run" in text


def test_results_and_runs_tables():
    runs = [_fake("levy", "gmp", s, v) for s, v in enumerate([1.0, 2.0, 3.0])]
    table = figures.results_table(runs, {"gmp": 0.496})
    assert "| GmP | 0.1 | 3 | 2.000 ± 1.000 | 1.000 – 3.000 | 0.496 |" in table
    assert "authors' reported value (single seed)" in table
    assert figures.runs_table(runs).count("\n") == 4
    assert figures.select(runs, seed=1)[0].score == 2.0


def test_units_through_data():
    r = run("levy", "sp", [0], config=TINY_LEVY, progress=False)[0]
    with torch.no_grad():
        r.model.hidden.weight.copy_(torch.ones(6, 1))
        r.model.hidden.bias.copy_(torch.tensor([-0.5, 0.5, -5.0, 5.0, 0.0, -0.99]))
    x = torch.linspace(-1, 1, 11)[:, None]
    # x* = 0.5, -0.5, 5, -5, 0, 0.99: units 2 and 3 do not cut [-1, 1]
    assert figures.units_through_data(r, x) == 4
    np.testing.assert_allclose(figures.kept_characteristic_points(r),
                               [0.5, -0.5, 5.0, -5.0, 0.0, 0.99], rtol=1e-6)


def test_figures_draw():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levy = run("levy", "all", [0, 1], lr=[0.01, 0.1], config=TINY_LEVY, progress=False,
               track_every=2)
    banana = run("banana", "all", [0], config=TINY_BANANA, progress=False, data=BANANA_DATA)
    one = figures.select(levy, lr=0.1)
    figs = [figures.characteristic_points_figure(one, seed=0),
            figures.max_change_figure(one, seed=1),
            figures.levy_fits_figure(one, small.make_data("levy", 0), seed=0),
            figures.cab_trajectories_figure(banana, BANANA_DATA[0]),
            figures.decision_boundary_figure(banana, BANANA_DATA[0]),
            figures.max_change_figure(banana),
            figures.lr_sensitivity_figure({"levy": levy, "banana": banana})]
    assert len(figs[0].axes) == 4 and len(figs[-1].axes) == 4
    with pytest.raises(ValueError, match="one learning rate"):
        figures.characteristic_points_figure(levy, seed=0)
    stats = figures.change_stats(one)
    assert [s["param"] for s in stats] == list(PARAMS)
    assert all(0 <= s["share_above"] <= 1 for s in stats)
    plt.close("all")


# ---------------------------------------------------------------------------------------
# a new small experiment is one Task
# ---------------------------------------------------------------------------------------
class _Wave(tasks.Task):
    """A toy task: 1-D regression of sin(x) on 30 points, the Levy settings."""

    name, figure, config_class = "wave", "none", LevyConfig
    headline, headline_label, higher_is_better = "test_rmse", "test RMSE", False
    error_label, change, change_label = "test RMSE", "location", "largest |Δx*|"
    location_label, metrics = "max |Δx*|", ("test_rmse",)

    def make_data(self, seed, protocol, cfg):
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(30, 1, generator=g, dtype=F64) * 6 - 3
        grid = torch.linspace(-3, 3, 61, dtype=F64)[:, None]
        return types.SimpleNamespace(x_train=x, y_train=torch.sin(x), x_test=grid,
                                     y_test=torch.sin(grid))

    def problem(self, datas, protocol, dtype):
        return tasks.LEVY.problem(datas, protocol, dtype)    # no monitoring rows

    def fit_config(self, cfg):
        return tasks.LEVY.fit_config(cfg)                    # full batch, training loss

    def final_metrics(self, predict, p):
        rmse = torch.sqrt(((predict(p.x_test) - p.y_test) ** 2).mean(dim=(1, 2)))
        return [{"test_rmse": float(v)} for v in rmse]


def test_a_new_task_runs_end_to_end(monkeypatch, tmp_path):
    monkeypatch.setitem(tasks.TASKS, "wave", _Wave())
    cfg = LevyConfig(hidden=6, max_epochs=30, plateau_patience=5, patience=10)
    res = run("wave", ["sp", "gmp"], [0, 1], config=cfg, progress=False)
    assert [r.task for r in res] == ["wave"] * 4 and all(np.isfinite(r.score) for r in res)
    assert res[0].max_change is res[0].max_location_change
    small.save_results(str(tmp_path / "w.json"), res, {"command": "test"})
    _, back = small.load_results(str(tmp_path / "w.json"))
    assert [r.score for r in back] == [r.score for r in res]
    assert figures.results_table(back).splitlines()[0].startswith("| param | lr | seeds | "
                                                                  "test RMSE")
    figures.max_change_figure(res, seed=0)
    with pytest.raises(TypeError, match="needs a LevyConfig"):
        run("wave", "sp", [0], config=TINY_BANANA, progress=False)
