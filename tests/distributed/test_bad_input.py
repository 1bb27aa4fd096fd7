"""Impossible device/launcher requests and stale checkpoints: one line, non-zero exit, before training."""

from __future__ import annotations

import pytest
import torch

from nnopt import checkpoint, distributed, train
from nnopt.errors import CheckpointError, ConfigError
from nnopt.metrics import summary as S
from tests.helpers import cli_env, make_cfg, run_cli

SLURM_2x2 = {"SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "2", "SLURM_JOB_NAME": "nnopt"}


@pytest.mark.parametrize(
    ("overrides", "environ", "match"),
    [
        (["trainer=ddp_cpu", "trainer.devices=1"], {}, r"strategy=ddp with trainer.devices=1 x trainer.num_nodes=1"),
        (["trainer=ddp_cpu", "trainer.devices=4096"], {}, r"trainer.devices=4096 but only \d+ CPU cores"),
        (["trainer=gpu"], {}, r"no CUDA GPUs are visible"),
        (["trainer=ddp_cpu", "trainer.sync_batchnorm=true"], {}, r"sync_batchnorm=true needs GPUs"),
        (["trainer=ddp_cpu"], SLURM_2x2, r"trainer.num_nodes=1"),
        (
            ["trainer=ddp_cpu", "trainer.num_nodes=2", "trainer.devices=1"],
            SLURM_2x2,
            r"2 tasks per node .*trainer.devices=1",
        ),
        (["trainer=ddp_cpu"], {"TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": "3"}, r"torchrun started WORLD_SIZE=3"),
        (["trainer=multinode", "trainer.accelerator=cpu", "trainer.num_nodes=0"], {}, r"num_nodes=0 must be"),
    ],
)
def test_impossible_device_requests_are_refused(tmp_path, overrides, environ, match):
    if "no CUDA" in match and torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(ConfigError, match=match):
        distributed.check(make_cfg(tmp_path, *overrides), environ)


def test_matching_slurm_and_torchrun_counts_pass(tmp_path):
    cfg = make_cfg(tmp_path, "trainer=ddp_cpu", "trainer.num_nodes=2")
    distributed.check(cfg, SLURM_2x2)
    distributed.check(cfg, {"TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": "4"})
    assert distributed.env_global_rank(2, {"NODE_RANK": "1", "LOCAL_RANK": "1"}) == 3
    assert distributed.env_global_rank(2, {"SLURM_PROCID": "3", "SLURM_NTASKS": "4"}) == 3
    assert distributed.env_global_rank(2, {}) is None


def test_cli_reports_one_line_and_exit_2(tmp_path):
    env = cli_env(
        TMPDIR=str(tmp_path),
        SLURM_NTASKS="2",
        SLURM_NTASKS_PER_NODE="2",
        SLURM_NNODES="1",
        SLURM_JOB_NAME="nnopt",
        SLURM_PROCID="0",
        SLURM_LOCALID="0",
        SLURM_NODEID="0",
    )
    proc = run_cli("train", "trainer=cpu", "trainer.max_epochs=1", log_dir=tmp_path / "logs", env=env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("nnopt: error: SLURM started 2 tasks per node") and "Traceback" not in proc.stderr


def test_resume_refuses_a_stale_checkpoint_of_another_config(tmp_path):
    run_dir = tmp_path / "run"
    assert train.run(make_cfg(run_dir, "trainer.max_epochs=1"))[S.STATUS] == S.COMPLETED
    # the same run dir, resumed with another learning rate: not the same run any more
    with pytest.raises(CheckpointError, match=r"optimizer.lr=0.001, this run has optimizer.lr=0.05"):
        train.run(make_cfg(run_dir, "trainer.max_epochs=2", "resume=true", "optimizer.lr=0.05"))
    with pytest.raises(CheckpointError, match=r"seed=42, this run has seed=7"):
        train.run(make_cfg(run_dir, "trainer.max_epochs=2", "resume=true", "seed=7"))
    # a longer schedule of the same config continues from the dir's last checkpoint
    summary = train.run(make_cfg(run_dir, "trainer.max_epochs=2", "resume=true", "callbacks.early_stopping=null"))
    assert summary[S.STATUS] == S.COMPLETED and summary[S.TRAIN_EPOCHS] == 2


def test_resume_without_a_checkpoint_starts_fresh(tmp_path):
    cfg = make_cfg(tmp_path / "new", "resume=true")
    assert checkpoint.resolve_resume(cfg) is None
    assert cfg.get("ckpt_path") is None
