"""`scripts/bench.py` runs end to end and writes a well-formed results file (timings themselves are not tested)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import CLI_TIMEOUT, ROOT, cli_env, make_cfg

SCRIPTS = ROOT / "scripts"
BENCH = SCRIPTS / "bench.py"
COMMITTED = ROOT / "bench"


@pytest.fixture(autouse=True)
def bench_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bench's package lives in scripts/ (outside nnopt): on the path as when scripts/bench.py runs."""
    monkeypatch.syspath_prepend(str(SCRIPTS))


def run_bench(out: Path, *args: str, timeout: int) -> dict:
    proc = subprocess.run(
        [sys.executable, str(BENCH), *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=cli_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


def check_results(results: dict, out: Path, mode: str, sweep: bool = True) -> None:
    meta = results["meta"]
    assert meta["mode"] == mode and meta["machine"]["cpu_count"] >= 1 and meta["machine"]["torch"]
    assert meta["command"].startswith("python scripts/bench.py") and f"--{mode}" in meta["command"]
    assert meta["machine"]["torch_threads"] == 1  # the default: stable ratios on a shared machine
    md = (out / "RESULTS.md").read_text()
    for model, limit in (("mlp", 1.10), ("lenet5", 1.05), ("mlp_bn", 1.10)):
        r = results[model]
        assert "error" not in r, r
        assert r["bare_train_s"]["min"] <= r["bare_train_s"]["median"] <= r["bare_train_s"]["max"]
        assert r["overhead_ratio"] == pytest.approx(r["nnopt_train_s"]["median"] / r["bare_train_s"]["median"])
        cpu = r["nnopt_train_cpu_s"]["median"] / r["bare_train_cpu_s"]["median"]
        assert r["cpu_overhead_ratio"] == pytest.approx(cpu)
        for prefix, which in (("", "nnopt"), ("fused_", "fused")):
            paired, bracketed = r[f"{prefix}paired_cpu_ratio"], r[f"{prefix}bracketed_cpu_ratio"]
            for ratios in (paired, bracketed):
                assert ratios["min"] <= ratios["median"] <= ratios["max"]
                assert ratios["n"] == r[f"{which}_train_cpu_s"]["n"]  # bare epochs beside each nnopt epoch
            # 1 thread: judged on CPU time, each epoch against the bare epochs before and after it
            assert r["judged_on"] == "cpu" and r[f"{prefix}judged_ratio"] == bracketed["median"]
            assert r[f"{prefix}meets_target"] == (r[f"{prefix}judged_ratio"] <= limit)
            cell = f"{bracketed['median']:.3f}× CPU ({bracketed['min']:.2f}–{bracketed['max']:.2f}, n={bracketed['n']}"
            assert cell in md
        assert r["bare_train_cpu_s"]["n"] == r["nnopt_train_cpu_s"]["n"] + r["fused_train_cpu_s"]["n"]
        assert r["bare_after_over_before_cpu"]["n"] == r["bare_train_cpu_s"]["n"]
        assert r["target_max"] == limit and r["steps_per_epoch"] > 0 and r["nnopt_threads"] == [1]
    layers = results["breakdown"]["layers"]
    assert set(layers) == {"lightning_minimal", "nnopt_no_callbacks", "nnopt_no_progress_bar", "nnopt_default"}
    assert all(isinstance(layer["ms_per_step"], float) for layer in layers.values())
    assert results["breakdown"]["profile"]["groups_ms_per_step"]
    d = results["data_path"]
    assert d["speedup_in_memory_vs_per_sample"] == pytest.approx(
        d["bare_per_sample_train_s"]["median"] / d["bare_in_memory_train_s"]["median"]
    )
    assert d["template_measured"] is False and not any("template" in k and "speedup" in k for k in d)
    su = results["startup"]
    assert "error" not in su, su
    for job in ("default_job", "debug_fast"):
        assert 0 < su[job]["to_first_step_s"]["median"] <= su[job]["wall_s"]["median"]
    assert su["import_torch"]["wall_s"]["median"] > 0
    t = results["time_to_accuracy"]
    assert t["curve"] and all(0.0 <= c["test_acc"] <= 1.0 for c in t["curve"])
    assert t["reached"] == (t["seconds_to_target"] is not None)
    c = results["compression"]
    assert {"lenet300_100", "lenet5"} <= set(c["han_2015"])  # each measured model has its published reference
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
    for heading in (
        "## Headline",
        "## 1. Framework overhead",
        "## 2. Data path",
        "## 3. Start-up",
        "## 4. Time to accuracy",
        "## 5. Compression",
        "## 6. Sweep throughput",
        "## 7. GPU",
    ):
        assert heading in md
    assert meta["command"] in md and results["gpu_scaling"]["note"] in md


def test_epoch_timer_brackets_every_epoch_with_bare_epochs(tmp_path: Path) -> None:
    """Each nnopt epoch's record has the bare epoch run right before it and the one right after it (the next
    epoch's, or one run after the last epoch)."""
    from nnopt_bench import bare

    from nnopt import train

    epochs, calls = 3, []
    original = bare.BareLoop.epoch

    def counted(self, *args, **kwargs):
        record = original(self, *args, **kwargs)
        calls.append(record)
        return record

    times = tmp_path / "times.json"
    cfg = make_cfg(
        tmp_path,
        f"trainer.max_epochs={epochs}",
        "trainer.limit_train_batches=3",
        "callbacks.early_stopping=null",
        "+callbacks.bench_timer._target_=nnopt_bench.timers.EpochTimer",
        f"+callbacks.bench_timer.path={times}",
        "+callbacks.bench_timer.bare_beside=true",
        "+callbacks.bench_timer.max_batches=3",
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bare.BareLoop, "epoch", counted)
        train.run(cfg)
    records = json.loads(times.read_text())
    assert len(records) == epochs and len(calls) == epochs + 1
    for i, record in enumerate(records):
        assert record["bare"] == calls[i] and record["bare_after"] == calls[i + 1]


@pytest.mark.slow
def test_bench_smoke_writes_wellformed_results(tmp_path: Path) -> None:
    """In-process sections on digits; the launcher sweep (two cold subprocesses) is in the slow test below."""
    results = run_bench(
        tmp_path,
        "--smoke",
        "--only",
        "overhead",
        "data_path",
        "startup",
        "time_to_accuracy",
        "compression",
        timeout=CLI_TIMEOUT,
    )
    check_results(results, tmp_path, "smoke", sweep=False)


@pytest.mark.slow
def test_bench_smoke_sweep_section(tmp_path: Path) -> None:
    results = run_bench(tmp_path, "--smoke", "--only", "sweep", timeout=CLI_TIMEOUT)
    s = results["sweep"]
    assert "error" not in s, s
    assert s["jobs"] == 2 and s["basic"]["threads_per_job"] >= s["joblib"]["threads_per_job"]
    assert s["joblib_speedup"] == pytest.approx(s["basic"]["wall_s"] / s["joblib"]["wall_s"])
    assert "## 6. Sweep throughput" in (tmp_path / "RESULTS.md").read_text()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="needs Fashion-MNIST")
def test_bench_quick_writes_wellformed_results(tmp_path: Path) -> None:
    results = run_bench(tmp_path, "--quick", timeout=CLI_TIMEOUT)
    check_results(results, tmp_path, "quick")


FAKE_TEMPLATE = '''
"""Stands in for lightning-hydra-template's src/train.py: takes its overrides, runs the injected timer."""
import importlib, sys
from pathlib import Path

args = dict(a.lstrip("+").split("=", 1) for a in sys.argv[1:])
raw = Path(args["data.data_dir"]) / "MNIST" / "raw"
assert (raw / "train-images-idx3-ubyte").stat().st_size > 1000, "the bench must lay out the images as MNIST raw"
module, name = args["callbacks.nnopt_timer._target_"].rsplit(".", 1)
timer = getattr(importlib.import_module(module), name)(args["callbacks.nnopt_timer.path"])

class Trainer:
    sanity_checking = False

for _ in range(int(args["trainer.max_epochs"])):
    timer.on_train_epoch_start(Trainer, None)
    timer.on_validation_start(Trainer, None)
    timer.on_train_epoch_end(Trainer, None)
'''


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="needs Fashion-MNIST")
def test_template_is_compared_only_when_measured_live(tmp_path: Path) -> None:
    """--template-dir: the template's figures come from its own run here, and only then become a ratio."""
    checkout = tmp_path / "template"
    (checkout / "src").mkdir(parents=True)
    (checkout / "src" / "train.py").write_text(FAKE_TEMPLATE)
    results = run_bench(
        tmp_path / "out", "--smoke", "--only", "data_path", "--template-dir", str(checkout), timeout=CLI_TIMEOUT
    )
    d = results["data_path"]
    assert "error" not in d, d
    assert d["template_measured"] is True and d["template_train_s"]["n"] >= 1
    assert d["speedup_vs_template"] == pytest.approx(d["template_train_s"]["median"] / d["nnopt_train_s"]["median"])
    assert "lightning-hydra-template, live" in (tmp_path / "out" / "RESULTS.md").read_text()


def test_bad_template_dir_is_one_line_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--template-dir", str(tmp_path), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        cwd=ROOT,
        env=cli_env(),
    )
    assert proc.returncode == 2 and not (tmp_path / "out").exists()
    assert proc.stderr.strip().splitlines()[-1].startswith("bench: error: --template-dir=")


def test_committed_results_md_is_the_render_of_committed_results_json() -> None:
    """bench/RESULTS.md is what the renderer makes of bench/results.json, byte for byte (a run renders from the
    file it wrote, so the two never disagree)."""
    from nnopt_bench.render import markdown

    results = json.loads((COMMITTED / "results.json").read_text())
    rendered, committed = markdown(results), (COMMITTED / "RESULTS.md").read_text()
    for heading in ("## Headline", "## 1. Framework overhead", "### Where the per-step time goes", "## 7. GPU"):
        assert heading in rendered
    assert rendered.splitlines() == committed.splitlines()
    assert rendered == committed


def test_render_only_rewrites_results_md_and_measures_nothing(tmp_path: Path) -> None:
    shutil.copy(COMMITTED / "results.json", tmp_path / "results.json")
    cmd = [sys.executable, str(BENCH), "--render-only", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT, cwd=tmp_path, env=cli_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "RESULTS.md").read_text() == (COMMITTED / "RESULTS.md").read_text()
    assert proc.stderr.splitlines() == [f"bench: wrote {tmp_path / 'RESULTS.md'}"]  # and no section ran
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--render-only", "--out", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        env=cli_env(),
    )
    assert proc.returncode == 2 and proc.stderr.strip().startswith("bench: error: --render-only:")


def test_bench_subprocesses_can_import_the_bench_callbacks(tmp_path: Path) -> None:
    """Cold runs name `nnopt_bench.timers...` by `_target_`: their environment puts scripts/ on PYTHONPATH."""
    from nnopt_bench import SCRIPTS_DIR
    from nnopt_bench.runner import FIRST_STEP, subprocess_env

    env = subprocess_env(threads=1)
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(SCRIPTS_DIR) and env["OMP_NUM_THREADS"] == "1"
    module = FIRST_STEP.rsplit(".", 2)[0]
    code = f"import {module}, sys; print({module}.SCRIPTS_DIR)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == str(SCRIPTS_DIR), proc.stderr
    assert not (ROOT / "src" / "nnopt" / "bench").exists()  # the bench is no part of what runs import
