"""The CPU benchmarks' results files: one layout, ``{"provenance": record, ..., "rows"}``."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from gmp import provenance

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod          # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_layer_overhead_writes_provenance_and_rows(tmp_path):
    out = tmp_path / "overhead.json"
    bench = _script("layer_overhead")
    assert bench.main(["--quick", "--suites", "linear", "--params", "sp", "gmp", "--threads",
                       "1", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(provenance.KEYS) <= set(doc["provenance"]) and doc["provenance"]["threads"] == 1
    assert {r["param"] for r in doc["rows"]} == {"sp", "gmp"}
    assert all(r["ratio"] == 1.0 for r in doc["rows"] if r["param"] == "sp")


@pytest.mark.slow
def test_train_throughput_writes_provenance_and_rows(tmp_path):
    out = tmp_path / "throughput_eager.json"
    bench = _script("train_throughput")
    assert bench.main(["--device", "cpu", "--archs", "vgg6", "--params", "bn,gmp_imn",
                       "--width", "0.0625", "--batch-size", "2", "--image-size", "32",
                       "--rounds", "1", "--steps", "1", "--warmup", "0", "--threads", "1",
                       "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(provenance.KEYS) <= set(doc["provenance"]) and doc["provenance"]["compile"] is False
    assert {"bn", "gmp_imn"} <= {r["param"] for r in doc["rows"]}
    (goal,) = _script("gpu_check").gpu_goal(tmp_path)    # what make gpu-check reads back
    assert goal["arch"] == "vgg6" and goal["compile"] is False
