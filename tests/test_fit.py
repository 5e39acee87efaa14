"""The one Keras ``fit`` loop (gmp.experiments.fit): what its options may and may not
change."""

from __future__ import annotations

import pytest
import torch

from gmp.baselines import seeded_mlps
from gmp.experiments.fit import FitConfig, Replay, fit

F32 = torch.float32


def _rows(S: int, N: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(S, N, n, generator=g)
    return x, torch.sin(2 * x[..., 0]) + x[..., -1]


@pytest.mark.parametrize("param", ["sp", "bn", "gmp"])
def test_dropping_finished_members_changes_no_bit(param):
    """Members that stop are masked, and with ``compact_below`` also dropped from the
    working stack: float32, staggered stops, identical final states either way."""
    S, n = 6, 3
    x, y = _rows(S, 40, n, 0)
    xv, yv = _rows(S, 12, n, 1)
    lrs = [0.3, 0.1, 0.03, 0.01, 0.003, 0.001]
    states = []
    for compact in (0.0, 0.75, 1.0):
        cfg = FitConfig(max_epochs=80, patience=6, plateau_patience=3, batch_size=16,
                        compact_below=compact)
        res = fit(seeded_mlps(param, n, 5, range(S), dtype=F32), x, y, lrs, cfg,
                  range(10, 10 + S), monitor=(xv, yv))
        states.append((res.net.state_dict(), res.epochs_run, res.lr_drops))
    assert len(set(states[0][1].tolist())) > 2          # members stopped at different epochs
    for state, epochs, drops in states[1:]:
        assert torch.equal(epochs, states[0][1]) and drops == states[0][2]
        for k, v in states[0][0].items():
            assert torch.equal(state[k], v), k


def test_batch_norm_counts_survive_the_stack():
    """BN's ``num_batches_tracked`` (an integer buffer, outside the float state that is
    snapshotted and restored) ends at the member's number of training steps, also for
    members that left the working stack early."""
    S = 4
    x, y = _rows(S, 20, 3, 0)
    xv, yv = _rows(S, 8, 3, 1)
    cfg = FitConfig(max_epochs=40, patience=3, batch_size=8, compact_below=1.0)
    res = fit(seeded_mlps("bn", 3, 4, range(S), dtype=F32), x, y, [0.3, 0.1, 0.01, 0.001],
              cfg, range(S), monitor=(xv, yv))
    assert len(set(res.epochs_run.tolist())) > 1
    assert torch.equal(res.net.bn.num_batches_tracked, res.steps_run)
    assert torch.equal(res.steps_run, res.epochs_run * 3)          # 20 rows, batches of 8


def test_fit_refuses_what_it_would_ignore():
    x, y = _rows(2, 10, 3, 0)
    cfg = FitConfig(max_epochs=3, patience=2, batch_size=None)
    models = seeded_mlps("sp", 3, 4, [0, 1])
    with pytest.raises(ValueError, match="a replay monitors nothing"):
        fit(models, x, y, [0.1, 0.1], cfg, [0, 1], monitor=(x, y),
            replay=Replay((1, 2), ((), ())))
    with pytest.raises(ValueError, match="needs monitoring rows"):
        fit(models, x, y, [0.1, 0.1], cfg, [0, 1])
    with pytest.raises(ValueError, match="scores no monitoring rows"):
        fit(models, x, y, [0.1, 0.1], FitConfig(monitor="train-loss"), [0, 1], monitor=(x, y))
    with pytest.raises(ValueError, match="compact_below=0"):
        fit(models, x, y, [0.1, 0.1], cfg, [0, 1], monitor=(x, y),
            on_step=lambda net, active: None)
    with pytest.raises(ValueError, match="unknown monitor"):
        FitConfig(monitor="auc")
