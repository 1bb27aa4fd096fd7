"""`scripts/gpu_check.sh --cpu` (the GPU check at tiny sizes on the CPU) runs every section and reports real figures.

No GPU is needed: this checks the wiring that a lent GPU would run (issue 27), through the same wrapper and the same
nnopt CLI runs; the timings themselves are not tested, only that they were measured and reported consistently.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import CLI_TIMEOUT, ROOT, cli_env

WRAPPER = ROOT / "scripts" / "gpu_check.sh"
SECTIONS = ("throughput", "packing", "qat", "fsdp", "compile")


@pytest.fixture(scope="module")
def check(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("gpu_check")
    proc = subprocess.run(
        ["bash", str(WRAPPER), "--cpu", "--out", str(out / "out"), "--work", str(out / "work")],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        cwd=ROOT,
        env=cli_env(PYTHON=sys.executable),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((out / "out" / "gpu_check.json").read_text())
    assert (out / "out" / "gpu_check.log").stat().st_size > 0  # every nnopt run's output, for the record
    return results, (out / "out" / "gpu_check.md").read_text(), proc


def test_every_section_ran_on_cpu(check) -> None:
    results, md, _ = check
    assert results["meta"]["mode"] == "cpu" and results["meta"]["device_name"] == "cpu"
    expected = {"throughput": "ok", "packing": "ok", "qat": "ok", "fsdp": "refused"}
    for name in SECTIONS:
        section = results["sections"][name]
        assert section["status"] == expected.get(name, section["status"]), (name, section)
        assert section["section_s"] > 0
        assert f"| {name} | {section['status']} |" in md
    assert results["sections"]["compile"]["status"] in ("ok", "fallback")


def test_throughput_rows_pair_nnopt_with_bare(check) -> None:
    results, md, _ = check
    rows = results["sections"]["throughput"]["rows"]
    combos = {(r["model"], r["precision"], r["fused_steps"]) for r in rows}
    assert combos == set(itertools.product(("mlp", "lenet5"), ("32-true", "bf16-mixed"), (1, 16)))
    for r in rows:
        assert r["status"] == "completed", r
        # --cpu: 2 epochs of 3 batches of 128 (trainer.limit_train_batches=3), read back from the run's summary
        assert (r["epochs"], r["steps_per_epoch"], r["samples_per_epoch"]) == (2, 3, 384), r
        assert r["nnopt_samples_per_s"] > 0 and r["nnopt_summary_samples_per_s"] > 0 and r["bare_samples_per_s"] > 0
        assert r["ratio"] == pytest.approx(r["nnopt_samples_per_s"] / r["bare_samples_per_s"])
        assert r["goal_met"] == (r["ratio"] >= 0.80 if r["fused_steps"] > 1 else None)
        assert f"| {r['model']} | {r['precision']} | {r['fused_steps']} | {r['nnopt_samples_per_s']:,.0f} |" in md
    met = sum(bool(r["goal_met"]) for r in rows)
    assert results["sections"]["throughput"]["note"].endswith(f": {met} of 4")


def test_packing_trains_the_same_models_faster_or_not(check) -> None:
    results, md, _ = check
    packing = results["sections"]["packing"]
    rows = {(r["n"], r["method"]): r for r in packing["rows"]}
    assert set(rows) == set(itertools.product((1, 4), ("sequential", "vmap", "bmm")))
    for (n, method), r in rows.items():
        assert r["status"] == "ok" and r["samples_per_s"] > 0, r
        assert r["samples_per_s_per_model"] == pytest.approx(r["samples_per_s"] / n)
        assert r["samples_per_s"] == pytest.approx(n * packing["steps"] * packing["batch"] / r["seconds"])
        if method != "sequential":  # same start, same batches: lock-step training is the same training
            assert r["max_abs_diff_vs_sequential"] < 1e-4, r
            assert r["speedup_vs_sequential"] == pytest.approx(rows[(n, "sequential")]["seconds"] / r["seconds"])
    assert "## Packing" in md and "| 4 | vmap |" in md


def test_qat_ends_in_an_int8_model(check) -> None:
    results, md, _ = check
    qat = results["sections"]["qat"]
    assert qat["int8"] is True and qat["trained_on"] == "cpu"
    assert qat["int8_weight_tensors"] == 3  # the MLP's three Linear layers, qint8 in model_int8.pt
    assert 0 < qat["int8_file_bytes"] < 4 * 266_610  # smaller than its float32 weights
    assert 0.1 < qat["test_acc_int8"] <= 1 and qat["samples_per_s"] > 0
    assert "| cpu | yes | 3 |" in md


def test_fsdp_on_one_device_is_refused_in_one_line(check) -> None:
    fsdp = check[0]["sections"]["fsdp"]
    assert fsdp["rc"] == 2 and fsdp["message"].startswith("nnopt: error:") and "fsdp" in fsdp["message"]


def test_compile_reports_its_speed(check) -> None:
    compile_ = check[0]["sections"]["compile"]
    assert compile_["backend"].startswith("aot_eager")  # --cpu: no C++ build of inductor kernels
    (row,) = compile_["rows"]
    assert row["status"] in ("ok", "fallback") and row["samples_per_s"] > 0
    assert (row["warning"] is not None) == (row["status"] == "fallback")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer on a machine without a GPU")
def test_gpu_mode_without_a_gpu_says_so(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        cwd=ROOT,
        env=cli_env(),
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    sections = json.loads((tmp_path / "gpu_check.json").read_text())["sections"]
    assert {name: s["status"] for name, s in sections.items()} == dict.fromkeys(SECTIONS, "skipped")
    assert all("no CUDA device" in s["error"] for s in sections.values())
