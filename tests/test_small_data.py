"""Data of the illustrative experiments: the Levy function and sample, the Banana loader."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from gmp.data import DataCorruptError, DataNotFoundError
from gmp.data.banana import BANANA, BananaFormatError, banana_splits, load_banana
from gmp.data.levy import levy, levy_data
from gmp.data.store import RemoteFile, fetch


# ---------------------------------------------------------------------------------------
# Levy
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("x, expected", [
    (1.0, 0.0),     # w = 1: the global minimum
    (-3.0, 1.0),    # w = 0: sin²(0) + (0 - 1)²·(1 + sin²(0))
    (3.0, 1.25),    # w = 1.5: sin²(1.5π) + 0.5²·(1 + sin²(3π))
    (5.0, 1.0),     # w = 2: sin²(2π) + 1²·(1 + sin²(4π))
])
def test_levy_hand_values(x, expected):
    assert levy(np.array([x]))[0] == pytest.approx(expected, abs=1e-12)
    assert float(levy(torch.tensor([x], dtype=torch.float64))[0]) == pytest.approx(expected,
                                                                                  abs=1e-12)


def test_levy_numpy_and_torch_agree():
    x = np.linspace(-10, 10, 101)
    np.testing.assert_allclose(levy(torch.from_numpy(x)).numpy(), levy(x), rtol=1e-12)
    assert (levy(x) >= 0).all()


def test_levy_data_protocol():
    d = levy_data(0)
    assert d.x_train.shape == d.y_train.shape == (50, 1)
    assert d.x_test.shape == d.y_test.shape == (201, 1)
    for t in (d.x_train, d.y_train, d.x_test, d.y_test):
        assert t.dtype == torch.float32
    assert float(d.x_train.min()) >= -10 and float(d.x_train.max()) < 10
    np.testing.assert_allclose(d.x_test[:, 0].numpy(), np.round(np.arange(201) * 0.1 - 10, 10),
                               atol=1e-6)
    # the test targets are noise free, the training targets are not
    np.testing.assert_allclose(d.y_test.numpy(), levy(d.x_test.double()).float().numpy(),
                               rtol=1e-6)
    resid = (d.y_train.double() - levy(d.x_train.double())).abs()
    assert float(resid.max()) > 1e-3
    assert set(d.numpy()) == {"x_train", "y_train", "x_test", "y_test"}


def test_levy_data_seeded_and_noise_level():
    a, b, c = levy_data(3), levy_data(3), levy_data(4)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.x_train, c.x_train)
    big = levy_data(0, n_train=20_000, noise_std=0.1)
    noise = (big.y_train.double() - levy(big.x_train.double())).numpy()
    assert abs(noise.mean()) < 0.005 and noise.std() == pytest.approx(0.1, rel=0.03)
    x = big.x_train.numpy()
    assert abs(x.mean()) < 0.2 and x.std() == pytest.approx(20 / np.sqrt(12), rel=0.03)


@pytest.mark.parametrize("kw, match", [
    ({"n_train": 0}, "n_train"), ({"low": 1.0, "high": 1.0}, "low < high"),
    ({"test_step": 0.0}, "test_step"), ({"noise_std": -1.0}, "noise_std"),
])
def test_levy_data_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        levy_data(0, **kw)


# ---------------------------------------------------------------------------------------
# Banana: the real file (skipped when the mirror is not available)
# ---------------------------------------------------------------------------------------
def _mirror_has_banana() -> bool:
    root = os.environ.get("GMP_DATA_DIR")
    return bool(root) and (Path(root) / BANANA.relpath).is_file()


needs_banana = pytest.mark.skipif(not _mirror_has_banana(),
                                  reason="Banana file not in GMP_DATA_DIR")


@needs_banana
def test_load_real_banana():
    x, y = load_banana()
    assert x.shape == (5300, 2) and x.dtype == np.float32
    assert y.shape == (5300,) and y.dtype == np.int64 and set(np.unique(y)) == {0, 1}
    # first data row of the file: 1.14,-0.114,-1
    np.testing.assert_allclose(x[0], [1.14, -0.114], rtol=1e-6)
    assert y[0] == 0 and y[1] == 1


@needs_banana
def test_real_banana_protocol():
    s = banana_splits(0)
    assert (len(s.x_train), len(s.x_val), len(s.x_test)) == (640, 160, 200)
    assert s.x_train.dtype == torch.float32 and s.y_train.dtype == torch.float32
    np.testing.assert_allclose(s.x_train.double().mean(0).numpy(), 0, atol=1e-6)
    np.testing.assert_allclose(s.x_train.double().std(0, unbiased=False).numpy(), 1, atol=1e-5)


# ---------------------------------------------------------------------------------------
# Banana: protocol on synthetic data whose features encode the row index
# ---------------------------------------------------------------------------------------
def _indexed(n: int = 5300) -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(n, dtype=np.float32)
    return np.stack([i, -2 * i], axis=1), (np.arange(n) % 2).astype(np.int64)


def _rows(split_x: torch.Tensor, s) -> np.ndarray:
    raw = split_x.double().numpy() * s.std + s.mean
    return np.round(raw[:, 0]).astype(int)


def test_banana_splits_disjoint_and_standardized():
    data = _indexed()
    s = banana_splits(7, data=data)
    tr, va, te = _rows(s.x_train, s), _rows(s.x_val, s), _rows(s.x_test, s)
    assert (len(tr), len(va), len(te)) == (640, 160, 200)
    assert len(set(tr) | set(va) | set(te)) == 1000          # disjoint, no repeats
    np.testing.assert_array_equal(s.y_test.numpy(), (te % 2).astype(np.float32))
    # standardized with the statistics of the training split only
    np.testing.assert_allclose(s.mean, data[0][tr].astype(np.float64).mean(0))
    np.testing.assert_allclose(s.x_train.double().mean(0).numpy(), 0, atol=1e-5)
    assert abs(float(s.x_val[:, 0].mean())) > 1e-4 or abs(float(s.x_test[:, 0].mean())) > 1e-4


def test_banana_splits_seeded():
    data = _indexed()
    a, b, c = banana_splits(1, data=data), banana_splits(1, data=data), banana_splits(2, data=data)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val)
    assert not torch.equal(a.x_train, c.x_train)


@pytest.mark.parametrize("kw, match", [
    ({"n_subsample": 0}, "n_subsample"), ({"n_subsample": 6000}, "n_subsample"),
    ({"test_fraction": 1.0}, "test_fraction"), ({"val_fraction": -0.1}, "val_fraction"),
    ({"n_subsample": 2}, "too small"),
])
def test_banana_splits_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        banana_splits(0, data=_indexed(), **kw)


# ---------------------------------------------------------------------------------------
# Banana: missing, corrupt and malformed files
# ---------------------------------------------------------------------------------------
def test_banana_missing_offline(tmp_path, monkeypatch):
    (tmp_path / "mirror").mkdir()
    monkeypatch.setenv("GMP_DATA_DIR", str(tmp_path / "mirror"))
    monkeypatch.setenv("GMP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GMP_OFFLINE", "1")
    with pytest.raises(DataNotFoundError) as e:
        load_banana()
    msg = str(e.value)
    assert "banana/banana.csv" in msg and "GMP_OFFLINE" in msg and BANANA.url in msg
    with pytest.raises(DataNotFoundError):
        banana_splits(0)


def test_banana_corrupt(tmp_path, monkeypatch):
    f = tmp_path / "mirror" / BANANA.relpath
    f.parent.mkdir(parents=True)
    f.write_text("At1,At2,Class\n1.0,2.0,1\n")
    monkeypatch.setenv("GMP_DATA_DIR", str(tmp_path / "mirror"))
    monkeypatch.setenv("GMP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GMP_OFFLINE", "1")
    with pytest.raises(DataCorruptError, match="corrupt"):
        load_banana()


def test_download_is_checked_before_it_lands_in_the_cache(tmp_path, monkeypatch):
    src = tmp_path / "upstream.csv"
    src.write_bytes(b"At1,At2,Class\n1.0,2.0,1\n")
    good = RemoteFile("x/upstream.csv", src.as_uri(), hashlib.sha256(src.read_bytes()).hexdigest())
    monkeypatch.delenv("GMP_DATA_DIR", raising=False)
    monkeypatch.setenv("GMP_CACHE_DIR", str(tmp_path / "cache"))
    path = fetch(good, download=True)
    assert path == tmp_path / "cache" / "x" / "upstream.csv"
    assert path.read_bytes() == src.read_bytes()
    bad = RemoteFile("y/upstream.csv", src.as_uri(), "0" * 64)
    with pytest.raises(DataCorruptError, match="download of .* is corrupt"):
        fetch(bad, download=True)
    assert not (tmp_path / "cache" / "y").exists() or not any((tmp_path / "cache" / "y").iterdir())


@pytest.mark.parametrize("text, match", [
    ("", "header"),
    ("x,y,label\n1,2,1\n", "header"),
    ("At1,At2,Class\n1.0,oops,1\n", "line 2"),
    ("At1,At2,Class\n1.0,2.0\n", "line 2"),
    ("At1,At2,Class\n1.0,2.0,1\n1.0,2.0,0\n", "-1 or \\+1"),
    ("At1,At2,Class\n", "no data"),
    ("At1,At2,Class\nnan,2.0,1\n", "non-finite"),
])
def test_banana_malformed(tmp_path, text, match):
    f = tmp_path / "b.csv"
    f.write_text(text)
    with pytest.raises(BananaFormatError, match=match):
        load_banana(f)


def test_banana_parse_small_file(tmp_path):
    f = tmp_path / "b.csv"
    f.write_text("At1,At2,Class\n0.5,-1.5,1\n\n2.0,3.0,-1\n")
    x, y = load_banana(f)
    np.testing.assert_array_equal(x, np.array([[0.5, -1.5], [2.0, 3.0]], dtype=np.float32))
    np.testing.assert_array_equal(y, [1, 0])
