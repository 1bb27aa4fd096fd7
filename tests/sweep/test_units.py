"""Sweep helpers in-process: W&B grouping, matching a re-run with its sweep dir, per-job threads."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from nnopt.sweep import find_previous_sweep
from nnopt.threads import job_threads
from nnopt.tracking import wandb_sweep_args
from tests.helpers import make_cfg


def test_wandb_group_is_the_sweep_and_tags_are_overrides(tmp_path: Path) -> None:
    make_cfg(tmp_path, "hydra.mode=MULTIRUN", "optimizer=adam", "seed=3", f"paths.log_dir={tmp_path}")
    args = wandb_sweep_args(["digits"])
    assert args["group"].startswith("train/") and len(args["group"].split("/")[1]) > 10
    assert args["tags"][0] == "digits" and "optimizer=adam" in args["tags"] and "seed=3" in args["tags"]
    assert not any(t.startswith(("paths.", "callbacks.progress_bar")) for t in args["tags"])
    make_cfg(tmp_path, "optimizer=adam")  # a single run keeps its configured group and tags
    assert wandb_sweep_args(["digits"]) == {}


def test_find_previous_sweep_ignores_resume_flag(tmp_path: Path) -> None:
    for name, overrides in (("a", ["optimizer=sgd,adam"]), ("b", ["optimizer=sgd,adam", "seed=1,2"])):
        (tmp_path / name).mkdir()
        config = OmegaConf.create({"hydra": {"overrides": {"task": overrides}}})
        OmegaConf.save(config, tmp_path / name / "multirun.yaml")
    assert find_previous_sweep(tmp_path, ["optimizer=sgd,adam", "resume=true"]) == tmp_path / "a"
    assert find_previous_sweep(tmp_path, ["optimizer=sgd"]) is None


def test_job_threads_share_the_cores(monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    cfg = lambda launcher: OmegaConf.create({"hydra": {"launcher": launcher}})  # noqa: E731
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert job_threads(cfg({"_target_": joblib, "n_jobs": 2})) == 4
    assert job_threads(cfg({"_target_": joblib, "n_jobs": -1})) == 1
    local = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
    assert job_threads(cfg({"_target_": local, "cpus_per_task": 3})) == 3
    assert job_threads(cfg({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"})) is None
