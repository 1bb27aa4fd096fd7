"""`scripts/bench.py` runs end to end and writes a well-formed results file (timings themselves are not tested)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import ROOT, cli_env

BENCH = ROOT / "scripts" / "bench.py"


def run_bench(out: Path, *args: str, timeout: int) -> dict:
    proc = subprocess.run(
        [sys.executable, str(BENCH), *args, "--out", str(out)],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=cli_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


def check_results(results: dict, out: Path, mode: str, sweep: bool = True) -> None:
    meta = results["meta"]
    assert meta["mode"] == mode and meta["machine"]["cpu_count"] >= 1 and meta["machine"]["torch"]
    assert meta["command"].startswith("python scripts/bench.py") and f"--{mode}" in meta["command"]
    for model in ("mlp", "lenet5"):
        r = results[model]
        assert "error" not in r, r
        assert r["bare_train_s"]["min"] <= r["bare_train_s"]["median"] <= r["bare_train_s"]["max"]
        assert r["overhead_ratio"] == pytest.approx(r["nnopt_train_s"]["median"] / r["bare_train_s"]["median"])
        assert isinstance(r["meets_target"], bool) and r["steps_per_epoch"] > 0
    layers = results["breakdown"]["layers"]
    assert set(layers) == {"lightning_minimal", "nnopt_no_callbacks", "nnopt_no_progress_bar", "nnopt_default"}
    assert all(isinstance(layer["ms_per_step"], float) for layer in layers.values())
    assert results["breakdown"]["profile"]["groups_ms_per_step"]
    d = results["data_path"]
    assert d["speedup_in_memory_vs_per_sample"] == pytest.approx(
        d["bare_per_sample_train_s"]["median"] / d["bare_in_memory_train_s"]["median"]
    )
    assert d["speedup_vs_template_scaled"] > 0
    t = results["time_to_accuracy"]
    assert t["curve"] and all(0.0 <= c["test_acc"] <= 1.0 for c in t["curve"])
    assert t["reached"] == (t["seconds_to_target"] is not None)
    c = results["compression"]
    assert c["han_2015"]["lenet5"]["error_dense_pct"] == 0.80
    if c["available"]:
        for model in c:
            if model in ("lenet300_100", "lenet5"):
                assert set(c[model]) == {"dense", "prune", "qat", "prune_qat"}
                assert all("error" not in row for row in c[model].values()), c[model]
    else:
        assert c["note"].startswith("not available")
    if sweep:
        s = results["sweep"]
        assert "error" not in s, s
        assert s["basic"]["wall_s"] > 0 and s["joblib"]["wall_s"] > 0
        assert s["joblib_speedup"] == pytest.approx(s["basic"]["wall_s"] / s["joblib"]["wall_s"])
    else:
        assert "sweep" not in results
    if not torch.cuda.is_available():
        assert results["gpu_scaling"]["measured"] is False and "no GPU" in results["gpu_scaling"]["note"]
    md = (out / "RESULTS.md").read_text()
    for heading in ("## 1. Framework overhead", "## 2. Data path", "## 3. Time to accuracy", "## 4. Compression",
                    "## 5. Sweep throughput", "## 6. GPU scaling"):  # fmt: skip
        assert heading in md
    assert meta["command"] in md and results["gpu_scaling"]["note"] in md


def test_bench_smoke_writes_wellformed_results(tmp_path: Path) -> None:
    """In-process sections on digits; the launcher sweep (two cold subprocesses) is in the slow test below."""
    results = run_bench(tmp_path, "--smoke", "--only", "overhead", "data_path", "time_to_accuracy", "compression",
                        timeout=300)  # fmt: skip
    check_results(results, tmp_path, "smoke", sweep=False)


@pytest.mark.slow
def test_bench_smoke_sweep_section(tmp_path: Path) -> None:
    results = run_bench(tmp_path, "--smoke", "--only", "sweep", timeout=300)
    s = results["sweep"]
    assert "error" not in s, s
    assert s["jobs"] == 2 and s["basic"]["threads_per_job"] >= s["joblib"]["threads_per_job"]
    assert s["joblib_speedup"] == pytest.approx(s["basic"]["wall_s"] / s["joblib"]["wall_s"])
    assert "## 5. Sweep throughput" in (tmp_path / "RESULTS.md").read_text()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="needs Fashion-MNIST")
def test_bench_quick_writes_wellformed_results(tmp_path: Path) -> None:
    results = run_bench(tmp_path, "--quick", timeout=900)
    check_results(results, tmp_path, "quick")
