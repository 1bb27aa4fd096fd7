"""The minimal path (`callbacks=none`, `debug=bench`), `trainer.threads`, and the periodic divergence check."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from pytorch_lightning.callbacks import Checkpoint, ModelSummary, ProgressBar

from nnopt import build, threads, train
from nnopt.callbacks.divergence import StopOnNonFiniteLoss, TrainingDiverged
from nnopt.callbacks.on_signal import SaveOnSignal
from nnopt.callbacks.rank_agreement import RankAgreement
from nnopt.callbacks.throughput import TrainThroughput
from nnopt.errors import ConfigError
from nnopt.metrics import summary as S
from tests.helpers import make_cfg

#: nnopt's own measurement callbacks, the only ones the minimal path keeps
#: nnopt's always-on callbacks: timing, DDP config agreement, checkpoint-at-signal (acts only when a signal came)
MEASUREMENT = {TrainThroughput, RankAgreement, SaveOnSignal}


@pytest.mark.parametrize("preset", [["callbacks=none"], ["debug=bench"]])
def test_minimal_path_has_only_measurement_callbacks_and_writes_no_checkpoint(tmp_path, preset):
    cfg = make_cfg(tmp_path, *preset, fast=False)
    trainer = build.build_trainer(cfg, build.build_callbacks(cfg), [])
    kinds = {type(cb) for cb in trainer.callbacks}
    assert kinds == MEASUREMENT, kinds
    assert not any(isinstance(cb, (ProgressBar, Checkpoint, ModelSummary)) for cb in trainer.callbacks)
    assert trainer.checkpoint_callback is None and trainer.progress_bar_callback is None

    run_cfg = make_cfg(tmp_path, *preset, "trainer.max_epochs=1", "efficiency.latency_repeats=2", fast=False)
    summary = train.run(run_cfg)
    assert summary[S.STATUS] == S.COMPLETED
    assert not list(tmp_path.rglob("*.ckpt")) and "ckpt/best" not in summary


def test_default_callbacks_keep_checkpoints_and_a_progress_bar(tmp_path):
    """The counterpart: the default config does have what callbacks=none removes."""
    cfg = make_cfg(tmp_path, fast=False)
    trainer = build.build_trainer(cfg, build.build_callbacks(cfg), [])
    assert trainer.checkpoint_callback is not None and trainer.progress_bar_callback is not None


@pytest.mark.parametrize("value", [1, 2])
def test_threads_are_applied_and_recorded(tmp_path, value):
    before = torch.get_num_threads()
    try:
        cfg = make_cfg(tmp_path, "callbacks=none", "trainer.max_epochs=1", f"trainer.threads={value}", fast=False)
        summary = train.run(cfg)
        assert torch.get_num_threads() == value
    finally:
        torch.set_num_threads(before)
    assert summary[S.TRAIN_THREADS] == value
    assert json.loads((tmp_path / S.FILENAME).read_text())[S.TRAIN_THREADS] == value


def cpuinfo_cores(cpus: set[int]) -> int:
    """Physical cores among `cpus`, from /proc/cpuinfo (nnopt reads sysfs): distinct (physical id, core id)."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cores, cpu, package = set(), None, None
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "processor":
            cpu, package = int(value), None
        elif key == "physical id":
            package = value
        elif key == "core id" and cpu in cpus:
            cores.add((package, value))
    if not cores:
        pytest.skip("/proc/cpuinfo names no cores here")
    return len(cores)


def test_threads_auto(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.resolve("auto") == 3  # an explicit environment choice wins
    monkeypatch.delenv("OMP_NUM_THREADS")
    cores = cpuinfo_cores(os.sched_getaffinity(0))
    assert threads.physical_cores() == cores
    assert threads.resolve("auto") == cores
    assert threads.resolve(None) == cores
    ddp = {"accelerator": "cpu", "strategy": "ddp", "devices": 2}
    assert threads.resolve("auto", ddp) == max(1, cores // 2)


def test_physical_cores_counts_hyperthreads_once(monkeypatch, tmp_path):
    # four CPUs: 0/1 and 2/3 are the hyper-thread pairs of two cores of one package; CPU 3 is not ours
    for cpu, core in [(0, 0), (1, 0), (2, 1), (3, 1)]:
        topo = tmp_path / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "physical_package_id").write_text("0\n")
        (topo / "core_id").write_text(f"{core}\n")
    monkeypatch.setattr(threads, "Path", lambda p: tmp_path / Path(p).relative_to("/sys/devices/system/cpu"))
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda _pid: {0, 1, 3})
    assert threads.physical_cores() == 2
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda _pid: {0, 1})
    assert threads.physical_cores() == 1


@pytest.mark.parametrize("bad", [0, -1, "many", 1.5, True])
def test_bad_threads_is_one_line_config_error(bad):
    with pytest.raises(ConfigError, match=r"^trainer\.threads=.* allowed: a positive integer or auto$"):
        threads.resolve(bad)


def test_periodic_divergence_check_still_stops_and_names_the_step(tmp_path):
    """Checking every 50 steps: a short epoch (fewer steps than that) is still checked at its last batch."""
    cfg = make_cfg(
        tmp_path,
        "optimizer=sgd",
        "optimizer.lr=1e8",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=5",
        "callbacks.divergence.check_every_n_steps=50",
    )
    with pytest.raises(TrainingDiverged, match=r"at step 5$"):
        train.run(cfg)
    summary = json.loads((tmp_path / S.FILENAME).read_text())
    assert summary[S.STATUS] == S.FAILED and summary["failed_at_step"] == 5


def test_divergence_check_skips_unchecked_steps():
    """Between checks a NaN loss is not looked at (that is the saving); on a checked step it raises."""

    class Trainer:
        global_step, num_training_batches = 7, 100

    cb = StopOnNonFiniteLoss(check_every_n_steps=50)
    nan = torch.tensor(float("nan"))
    cb.on_train_batch_end(Trainer, None, {"loss": nan}, None, batch_idx=7)
    with pytest.raises(TrainingDiverged, match="at step 7"):
        cb.on_train_batch_end(Trainer, None, {"loss": nan}, None, batch_idx=50)
    with pytest.raises(TrainingDiverged):
        cb.on_train_batch_end(Trainer, None, {"loss": nan}, None, batch_idx=99)  # the epoch's last batch
