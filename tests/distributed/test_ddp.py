"""DDP on CPU (gloo) as subprocesses: 1 vs 2 processes, simulated nodes, DDP inside a multirun, kill/resume.

Every DDP run is a subprocess (an in-process `ddp` Trainer would re-launch pytest) with the loopback
environment of `cli_env()` and a private TMPDIR.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nnopt import train
from nnopt.metrics import summary as S
from tests.helpers import CLI_TIMEOUT, ROOT, cli_env, make_cfg

#: same run on every path: 6 full global batches per epoch (digits' last batch is odd-sized: a 1-process run
#: trains on its odd sample, a 2-rank run drops it to split evenly)
RUN = [
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=6",
    "callbacks.early_stopping=null",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
    "efficiency.latency_repeats=2",
    "efficiency.latency_warmup=1",
]


def train_cmd(run_dir: Path, *args: str, launcher: list[str] | None = None) -> list[str]:
    head = launcher or [sys.executable, "-m"]
    return [*head, "nnopt.train", *RUN, *args, f"hydra.run.dir={run_dir}", f"paths.log_dir={run_dir.parent / 'logs'}"]


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return cli_env(TMPDIR=str(tmp_path / "tmp"), **extra)


def free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)


def finish(procs: list[subprocess.Popen], logs: list[Path], timeout: int = CLI_TIMEOUT) -> None:
    for proc, log in zip(procs, logs, strict=True):
        assert proc.wait(timeout=timeout) == 0, log.read_text()[-3000:]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    return {k: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / S.FILENAME).read_text())


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    """The single-process reference run (in-process: no launcher involved)."""
    out = tmp_path_factory.mktemp("one") / "run"
    assert train.run(make_cfg(out, *RUN, fast=False))[S.STATUS] == S.COMPLETED
    return out


def test_two_processes_match_one_process(tmp_path, one_process):
    run_dir = tmp_path / "ddp"
    log = tmp_path / "ddp.out"
    finish([start(train_cmd(run_dir, "trainer=ddp_cpu", "logger=wandb"), env_for(tmp_path), log)], [log])
    one, two = summary(one_process), summary(run_dir)
    assert two[S.STATUS] == S.COMPLETED and two[S.TRAIN_WORLD_SIZE] == 2 and one[S.TRAIN_WORLD_SIZE] == 1
    assert two[S.VAL_ACC_BEST] == pytest.approx(one[S.VAL_ACC_BEST], abs=1e-6)
    assert two[S.TEST_ACC] == pytest.approx(one[S.TEST_ACC], abs=1e-6)
    assert max_diff(weights(one_process), weights(run_dir)) < 1e-5
    # each rank trained on half of every global batch: 2 epochs x 6 batches x 64 samples on rank 0
    assert one[S.TRAIN_SAMPLES_RANK0] == 2 * 6 * 128 and two[S.TRAIN_SAMPLES_RANK0] == 2 * 6 * 64
    # rank 0 alone writes the summary and owns the one W&B run; rank 1 logged to its own file, wrote nothing
    rank1_log = (run_dir / "train_ddp_process_1.log").read_text()
    assert "summary:" in (run_dir / "train.log").read_text() and "summary:" not in rank1_log
    assert "rank 1 of 2: config" in rank1_log
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and runs[0].name.endswith((run_dir / "wandb_run_id.txt").read_text().strip())


@pytest.mark.slow
def test_two_simulated_slurm_nodes_match_one_process(tmp_path, one_process):
    """trainer=multinode takes devices/num_nodes from SLURM's variables; 2 nodes x 1 task on 127.0.0.1."""
    run_dir, port = tmp_path / "nodes", free_port()
    procs, logs = [], []
    for rank in (0, 1):
        slurm = dict(
            SLURM_NTASKS="2",
            SLURM_PROCID=str(rank),
            SLURM_LOCALID="0",
            SLURM_NODEID=str(rank),
            SLURM_NNODES="2",
            SLURM_NTASKS_PER_NODE="1",
            SLURM_JOB_ID="4242",
            SLURM_NODELIST="127.0.0.1",
            SLURM_JOB_NAME="nnopt",
            MASTER_PORT=port,
        )
        logs.append(tmp_path / f"node{rank}.out")
        cmd = train_cmd(run_dir, "trainer=multinode", f"hydra.job.name=train_node{rank}")
        procs.append(start(cmd, env_for(tmp_path, **slurm), logs[-1]))
    finish(procs, logs)
    got = summary(run_dir)
    assert got[S.STATUS] == S.COMPLETED and got[S.TRAIN_WORLD_SIZE] == 2
    assert got[S.TEST_ACC] == pytest.approx(summary(one_process)[S.TEST_ACC], abs=1e-6)
    assert max_diff(weights(one_process), weights(run_dir)) < 1e-5


def test_multirun_with_ddp_runs_each_job_once_with_agreeing_ranks(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "nnopt.train",
        "-m",
        *RUN,
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=3",
        "trainer=ddp_cpu",
        "optimizer.lr=0.001,0.003",
        f"hydra.sweep.dir={sweep}",
        f"paths.log_dir={tmp_path}",
    ]
    proc = subprocess.run(cmd, env=env_for(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1"]
    digests = []
    for job, lr in zip(jobs, (0.001, 0.003), strict=True):
        assert summary(job)[S.STATUS] == S.COMPLETED and summary(job)[S.TRAIN_WORLD_SIZE] == 2
        assert f"optimizer.lr={lr}" in summary(job)["overrides"]
        found = {}
        for log in job.glob("*.log"):  # rank 0: train.log, rank 1: train_ddp_rank1.log
            for rank, digest in re.findall(r"rank (\d) of 2: config (\w+) \(fit\)", log.read_text()):
                found[int(rank)] = digest
        assert found.keys() == {0, 1} and found[0] == found[1], found
        digests.append(found[0])
    assert digests[0] != digests[1]  # the two jobs trained different configs, each on both ranks


def test_crash_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    """In-process version of the kill -9 test below: the mid-epoch checkpoint resumes at the next batch."""
    args = ["trainer.max_epochs=2", "callbacks.early_stopping=null", "callbacks.step_checkpoint.every_n_train_steps=3"]
    clean = train.run(make_cfg(tmp_path / "clean", *args))
    crash = ["+callbacks.crash._target_=tests.distributed.killer.CrashAtStep", "+callbacks.crash.step=14"]
    with pytest.raises(RuntimeError, match="crash at step 14"):
        train.run(make_cfg(tmp_path / "crashed", *args, *crash))
    loops = torch.load(tmp_path / "crashed" / "checkpoints" / "last.ckpt", weights_only=True)["loops"]
    assert loops["fit_loop"]["state_dict"]["combined_loader"] == [{"epoch": 1, "batches": 2}]  # step 12
    chosen = [crash[0], "+callbacks.crash.enabled=false"]  # resume trusts only targets this run's config names
    resumed = train.run(make_cfg(tmp_path / "crashed", *args, *chosen, "resume=true"))
    assert resumed[S.STATUS] == S.COMPLETED
    assert max_diff(weights(tmp_path / "clean"), weights(tmp_path / "crashed")) < 1e-6
    assert resumed[S.TEST_ACC] == pytest.approx(clean[S.TEST_ACC], abs=1e-6)


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    args = [
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=null",
        "callbacks.step_checkpoint.every_n_train_steps=3",
        "logger=wandb",
    ]
    env = env_for(tmp_path)
    clean, crashed = tmp_path / "clean", tmp_path / "crashed"
    logs = [tmp_path / "clean.out", tmp_path / "crash.out"]
    # 10 steps per epoch: checkpoints at steps 3, 6, 9, 10 (epoch end), 12; killed at 14 (inside epoch 2)
    killer = ["+callbacks.killer._target_=tests.distributed.killer.KillAtStep", "+callbacks.killer.step=14"]
    procs = [start(train_cmd(clean, *args), env, logs[0]), start(train_cmd(crashed, *args, *killer), env, logs[1])]
    assert procs[1].wait(timeout=CLI_TIMEOUT) == -9
    ckpt = torch.load(crashed / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 12 and ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 1, "batches": 2}
    ]
    resumed = subprocess.run(
        train_cmd(crashed, *args, "resume=true"), env=env, cwd=ROOT, capture_output=True, text=True, timeout=CLI_TIMEOUT
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    finish(procs[:1], logs[:1])
    assert "continuing from" in (crashed / "train.log").read_text()
    assert torch.load(crashed / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 30
    assert max_diff(weights(clean), weights(crashed)) < 1e-6
    assert summary(crashed)[S.TEST_ACC] == pytest.approx(summary(clean)[S.TEST_ACC], abs=1e-6)
    # the W&B run continues under the same id (offline: one folder per process, same run id)
    run_id = (crashed / "wandb_run_id.txt").read_text().strip()
    assert sorted(p.name[-8:] for p in (crashed / "wandb").glob("offline-run-*")) == [run_id, run_id]


@pytest.mark.slow
def test_two_torchrun_nodes_match_one_process(tmp_path, one_process):
    run_dir, port = tmp_path / "torchrun", free_port()
    procs, logs = [], []
    for rank in (0, 1):
        launcher = [
            str(Path(sys.executable).parent / "torchrun"),
            "--nnodes=2",
            f"--node-rank={rank}",
            "--nproc-per-node=1",
            "--master-addr=127.0.0.1",
            f"--master-port={port}",
            "-m",
        ]
        logs.append(tmp_path / f"torchrun{rank}.out")
        cmd = train_cmd(
            run_dir,
            "trainer=multinode",
            "trainer.accelerator=cpu",
            "trainer.num_nodes=2",
            f"hydra.job.name=train_node{rank}",
            launcher=launcher,
        )
        procs.append(start(cmd, env_for(tmp_path), logs[-1]))
    finish(procs, logs)
    assert summary(run_dir)[S.TRAIN_WORLD_SIZE] == 2
    assert max_diff(weights(one_process), weights(run_dir)) < 1e-5
