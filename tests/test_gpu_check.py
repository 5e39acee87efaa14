"""benchmarks/gpu_check.py (``make gpu-check``): its plan, budget and CPU mode; and the CUDA
tests it runs on a GPU (``-k cuda``; skipped without one)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpu_check", mod)  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


gpu_check = _load()


def _names(parts):
    return [p.name for p in parts]


def test_plan_cpu_mode(tmp_path):
    parts = gpu_check.plan(False, tmp_path / "out", tmp_path / "scratch")
    assert _names(parts) == ["tests", "throughput-eager", "imagenet32", "imagenet32-resume",
                             "torchrun-1", "torchrun-2-gloo"]
    by = {p.name: p.argv for p in parts}
    assert all("--compile" not in argv for argv in by.values())
    first, resumed = by["imagenet32"], by["imagenet32-resume"]
    assert first[first.index("--epochs") + 1] == "1" and "--resume" not in first
    assert resumed[resumed.index("--epochs") + 1] == "2" and resumed[-1] == "--resume"
    assert first[first.index("--out") + 1] == resumed[resumed.index("--out") + 1]
    assert "--nproc_per_node=1" in by["torchrun-1"] and "--nproc_per_node=2" in by[
        "torchrun-2-gloo"]
    assert all(a in ("cpu",) for i, a in enumerate(by["torchrun-2-gloo"])
               if by["torchrun-2-gloo"][i - 1] == "--device")


def test_plan_gpu_mode_has_cuda_tests_and_compiled_throughput(tmp_path):
    parts = gpu_check.plan(True, tmp_path / "out", tmp_path / "scratch")
    names = _names(parts)
    assert names[0] == "tests" and "cuda" in parts[0].argv
    compiled = [p for p in parts if p.name.startswith("throughput-compiled")]
    assert compiled and names[-len(compiled):] == [p.name for p in compiled]  # last: optional
    params = set()
    for p in compiled:
        assert "--compile" in p.argv
        params |= set(p.argv[p.argv.index("--params") + 1].split(","))
    from gmp.params import ALL_PARAMS as PARAMS

    assert params == set(PARAMS)
    assert all("cuda" in p.argv for p in parts if p.name == "throughput-eager")


def test_gpu_goal_reads_throughput_files(tmp_path):
    rows = [{"arch": "vgg6", "param": "bn", "batch": 256, "step_images_per_s": 1000.0},
            {"arch": "vgg6", "param": "gmp_imn", "batch": 256, "step_images_per_s": 940.0}]
    (tmp_path / "throughput_eager.json").write_text(json.dumps(
        {"provenance": {"compile": False}, "rows": rows}))
    (goal,) = gpu_check.gpu_goal(tmp_path)
    assert goal["arch"] == "vgg6" and goal["gmp_imn_over_bn"] == pytest.approx(0.94)
    assert goal["met"] is False


def test_spent_budget_skips_and_fails(tmp_path, capsys):
    rc = gpu_check.main(["--cpu", "--only", "imagenet32", "--budget", "1e-9",
                         "--out", str(tmp_path / "out"), "--scratch", str(tmp_path / "s")])
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert rc == 1 and manifest["parts"][0]["status"] == "skipped"
    assert "no CUDA device" in capsys.readouterr().out or torch.cuda.is_available()


def test_unknown_part_is_an_error(tmp_path):
    with pytest.raises(SystemExit):
        gpu_check.main(["--cpu", "--only", "nonsense", "--dry-run"])


@pytest.mark.slow
def test_cpu_mode_trains_and_resumes(tmp_path):
    """The CPU mode's gmp-train parts on synthetic ImageNet32 files, with provenance."""
    rc = gpu_check.main(["--cpu", "--only", "imagenet32,imagenet32-resume",
                         "--out", str(tmp_path / "out"), "--scratch", str(tmp_path / "s")])
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert rc == 0, manifest["parts"]
    assert [p["status"] for p in manifest["parts"][:2]] == ["ok", "ok"]
    for key in ("command", "git_revision", "date_utc", "hardware"):
        assert key in manifest["provenance"]
    assert manifest["mode"] == "cpu"
    log = Path(manifest["parts"][1]["log"]).read_text()
    assert "resuming" in log and "epoch 2/2" in log
    assert list((tmp_path / "out" / "imagenet32").glob("*.json"))
    synthetic = tmp_path / "s" / "imagenet32-synthetic"
    assert (synthetic / "train_data_batch_1").exists() and (synthetic / "val_data").exists()


# ----- CUDA tests (make gpu-check runs them with -k cuda) ---------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_cuda_gmp_layers_match_cpu():
    from gmp.nn import GmPConv2d, GmPLinear

    torch.manual_seed(0)
    for layer, shape in ((GmPLinear(300, 64), (8, 300)), (GmPConv2d(16, 32, 3, padding=1),
                                                          (4, 16, 8, 8))):
        x = torch.randn(shape)
        out_cpu = layer(x)
        out_cpu.square().sum().backward()
        grads_cpu = [p.grad.clone() for p in layer.parameters()]
        layer.zero_grad(set_to_none=True)
        layer.cuda()
        out = layer(x.cuda())
        out.square().sum().backward()
        torch.testing.assert_close(out.cpu(), out_cpu, rtol=1e-3, atol=1e-4)
        for p, g in zip(layer.parameters(), grads_cpu, strict=True):
            torch.testing.assert_close(p.grad.cpu(), g, rtol=1e-3, atol=1e-3)


@cuda
def test_cuda_models_bf16_channels_last_step():
    from gmp.models import build_model

    for arch, size in (("vgg6", 32), ("resnet18", 64)):
        model = build_model(arch, "gmp_imn", 10, 0.25).cuda().to(
            memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = torch.randn(8, 3, size, size, device="cuda").contiguous(
            memory_format=torch.channels_last)
        y = torch.randint(0, 10, (8,), device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
        assert all(torch.isfinite(p).all() for p in model.parameters())


@cuda
def test_cuda_compiled_weight_kernel_matches_eager(monkeypatch):
    """The Triton-generated weight kernel against eager, fallback rows included."""
    import gmp.geometry as geo

    torch.manual_seed(0)
    theta = geo.angles(torch.randn(256, 300, device="cuda"))[0]
    theta[3, 100:] = 0
    r = torch.rand(256, device="cuda") + 0.5
    g = torch.randn(256, 300, device="cuda")
    res = {}
    for name in ("compile", "eager"):
        monkeypatch.setitem(geo._kernel, "name", name)
        t, rr = theta.clone().requires_grad_(), r.clone().requires_grad_()
        w = geo.scaled_unit_vector(t, rr)
        w.backward(g)
        res[name] = (w.detach(), t.grad, rr.grad)
    assert geo.weight_kernel() == "eager" or geo._kernel["compiled"] is not None
    for a, b in zip(res["compile"], res["eager"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
