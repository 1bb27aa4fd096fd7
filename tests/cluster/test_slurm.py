"""Sweeps and DDP on a real SLURM cluster (tests/cluster/conftest.py starts it): the launcher's sweep to its report,
scancel of one job, scontrol requeue -> resume with the same weights, the pre-timeout signal -> checkpoint -> requeue
-> completion, a 2-node DDP job from scripts/slurm_multinode.sbatch (vs one process, and requeued), a study run
by a SLURM array of workers (scripts/sbatch_study.sh), and sbatch's refusal of an unknown partition in one line.

SLURM holds a requeued job back for 2 minutes (BeginTime); the tests release it at once (`scontrol update
StartTime=now`), which changes when it runs, not what it does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch

from nnopt.metrics import summary as S
from tests.distributed.test_ddp import RUN, max_diff, weights
from tests.helpers import CLI_TIMEOUT, QUIET, ROOT, cli_env

pytestmark = pytest.mark.cluster

PYTHON = sys.executable
#: every sweep job: one CPU of one node, no GPU
LAUNCHER = [
    "hydra/launcher=slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=10",
]
#: a step that lasts `seconds` and reports itself in <job dir>/steps.txt
SLOW = ["+callbacks.slow._target_=tests.cluster.slow.SlowSteps"]
#: a fixed training run (20 steps over 2 epochs, no early stop) whose final weights can be compared
FIXED = [
    "trainer=cpu",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=10",
    "callbacks.early_stopping=null",
    *QUIET,
]


def slurm_env(cluster, **extra: str) -> dict[str, str]:
    env = cli_env(SLURM_CONF=cluster.state["slurm_conf"], GLOO_SOCKET_IFNAME="eth0", **extra)
    env.pop("MASTER_ADDR")  # the nodes find the head node by its name (SLURM_NODELIST), not 127.0.0.1
    return env


def slurm(cluster, *cmd: str, check: bool = True) -> str:
    res = subprocess.run(list(cmd), env=slurm_env(cluster), capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert not check or res.returncode == 0, res.stderr
    return res.stdout


def jobs(cluster) -> dict[str, tuple[str, str]]:
    """squeue: {job id: (state, reason)} of every job on the test cluster."""
    out = slurm(cluster, "squeue", "-h", "-o", "%i|%T|%r")
    return {i: (s, r) for i, s, r in (line.split("|") for line in out.splitlines() if line.strip())}


def wait_until(what: str, check, timeout: float = 240, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def steps(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def release_requeued(cluster, job: str, timeout: float = 120) -> None:
    """A requeued job waits 2 minutes (BeginTime) before it may start again: let it start now."""

    def pending() -> bool:
        state = jobs(cluster).get(job)
        return state is not None and state[0] == "PENDING"

    wait_until(f"job {job} back in the queue", pending, timeout)
    slurm(cluster, "scontrol", "update", f"jobid={job}", "StartTime=now")


def node_of(cluster, job: str) -> str:
    out = slurm(cluster, "scontrol", "-o", "show", "job", job)
    return re.search(r"\bNodeList=(\S+)", out).group(1)


def start_sweep(cluster, tmp_path: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "sweep.out"
    cmd = [PYTHON, "-m", "nnopt.train", "-m", *LAUNCHER, *args, f"paths.log_dir={tmp_path / 'logs'}"]
    proc = subprocess.Popen(cmd, env=slurm_env(cluster), cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
    return proc, log


def finish(proc: subprocess.Popen, timeout: float = 600) -> int:
    try:
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def sweep_dir(tmp_path: Path) -> Path:
    (found,) = list((tmp_path / "logs").glob("*/multiruns/*"))
    return found


def job_logs(sweep: Path, job: int) -> str:
    """Everything job `job` logged: its train.log and submitit's stdout/stderr of each of its SLURM runs."""
    files = [sweep / str(job) / "train.log", *sorted((sweep / ".submitit").glob(f"*_{job}/*_log.*"))]
    return "".join(f.read_text(errors="replace") for f in files if f.is_file())


def reference_run(tmp_path: Path, *args: str) -> Path:
    """The same training as one plain local process (no SLURM), for the weights to compare with."""
    run_dir = tmp_path / "reference"
    cmd = [PYTHON, "-m", "nnopt.train", *args, f"hydra.run.dir={run_dir}", f"paths.log_dir={tmp_path / 'ref'}"]
    res = subprocess.run(cmd, env=cli_env(), cwd=ROOT, capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert res.returncode == 0, res.stderr[-3000:]
    return run_dir


def test_sweep_runs_as_slurm_jobs_and_scancel_of_one_is_recorded(cluster, tmp_path: Path) -> None:
    """4 jobs on the 2 nodes; job 3 (slow) is cancelled mid-training: exit status 1, report: 3 completed + 1."""
    proc, log = start_sweep(cluster, tmp_path, *FIXED, *SLOW, "+callbacks.slow.seconds=0,0.01,0.02,1")
    try:
        steps_file = lambda: next((tmp_path / "logs").glob("*/multiruns/*/3/steps.txt"), None)  # noqa: E731
        wait_until("job 3 training", lambda: steps_file() is not None and steps(steps_file()) >= 3, timeout=CLI_TIMEOUT)
        out = slurm(cluster, "squeue", "-h", "-o", "%i")
        job3 = [j for j in out.split() if j.endswith("_3")]
        assert len(job3) == 1, out
        slurm(cluster, "scancel", job3[0])
        code = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert code == 1, text[-3000:]
    sweep = sweep_dir(tmp_path)
    status = {n: json.loads((sweep / str(n) / S.FILENAME).read_text())[S.STATUS] for n in range(4)}
    assert status == {0: S.COMPLETED, 1: S.COMPLETED, 2: S.COMPLETED, 3: S.INTERRUPTED}, status
    report = (sweep / "report.md").read_text()
    assert "4 jobs: 3 completed, 0 failed, 1 interrupted" in report
    assert "nnopt: 1 of 4 jobs failed" in text
    # they were SLURM jobs (one array task each), on both nodes
    ids = sorted(p.name for p in (sweep / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", p.name))
    assert len(ids) == 4
    assert {node_of(cluster, i) for i in ids} == {"node1", "node2"}


def test_scontrol_requeue_continues_from_the_checkpoint_with_the_same_weights(cluster, tmp_path: Path) -> None:
    proc, log = start_sweep(cluster, tmp_path, *FIXED, *SLOW, "+callbacks.slow.seconds=0.5", "seed=1")
    try:
        steps_file = lambda: next((tmp_path / "logs").glob("*/multiruns/*/0/steps.txt"), None)  # noqa: E731
        wait_until("training", lambda: steps_file() is not None and steps(steps_file()) >= 6, timeout=CLI_TIMEOUT)
        (job,) = jobs(cluster)
        slurm(cluster, "scontrol", "requeue", job)
        release_requeued(cluster, job)
        code = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0, log.read_text()[-3000:]
    run = sweep_dir(tmp_path) / "0"
    assert json.loads((run / S.FILENAME).read_text())[S.STATUS] == S.COMPLETED
    assert job_logs(run.parent, 0).count("resume: continuing from") == 1
    assert "Restarts=1 " in slurm(cluster, "scontrol", "-o", "show", "job", job)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 20
    reference = reference_run(tmp_path, *FIXED, "seed=1")
    assert max_diff(weights(reference), weights(run)) < 1e-6


def test_time_limit_signal_checkpoints_requeues_and_completes(cluster, tmp_path: Path) -> None:
    """2-minute jobs, SIGUSR2 30 s before the limit: the job saves, requeues itself and finishes in a later run.

    SLURM sends the signal up to 60 s earlier than asked (its event resolution): here between 30 and 90 s after
    the start, always during the 90 s of training (60 slow steps) and never before Python has its handlers."""
    proc, log = start_sweep(
        cluster,
        tmp_path,
        *FIXED,
        *SLOW,
        "+callbacks.slow.seconds=1.5",
        "trainer.max_epochs=6",
        "hydra.launcher.timeout_min=2",
        "hydra.launcher.signal_delay_s=30",
        "seed=1",
    )
    try:
        released = 0
        while proc.poll() is None and released < 3:
            queued = jobs(cluster)
            pending = [j for j, (state, reason) in queued.items() if state == "PENDING" and reason == "BeginTime"]
            for job in pending:
                slurm(cluster, "scontrol", "update", f"jobid={job}", "StartTime=now")
                released += 1
            time.sleep(1)
        code = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0, log.read_text()[-3000:]
    run = sweep_dir(tmp_path) / "0"
    said = job_logs(run.parent, 0)
    assert json.loads((run / S.FILENAME).read_text())[S.STATUS] == S.COMPLETED
    assert "SIGUSR2 before the time limit: requeue 1 of 3" in said
    assert "resume: continuing from" in said
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 60


def test_two_node_ddp_job_matches_one_process_and_resumes_after_requeue(cluster, tmp_path: Path) -> None:
    """scripts/slurm_multinode.sbatch as shipped (hardware by sbatch flags): 2 nodes x 1 rank over gloo."""
    run_dir = tmp_path / "ddp"
    args = [*RUN, "data.batch_size=64", *SLOW, "+callbacks.slow.seconds=1"]
    flags = ["--nodes=2", "--ntasks-per-node=1", "--partition=debug", "--gpus-per-node=0", "--cpus-per-task=1"]
    flags += ["--mem=1G", "--time=10", f"--output={tmp_path}/ddp-%j.out", "--parsable"]
    # nnopt-train (a console script) does not put the working dir on sys.path: the test's callback needs it
    env = slurm_env(cluster, NNOPT_RUN_DIR=str(run_dir), PYTHONPATH=str(ROOT))
    res = subprocess.run(
        ["sbatch", *flags, "scripts/slurm_multinode.sbatch", *args, f"paths.log_dir={tmp_path / 'logs'}"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    assert res.returncode == 0, res.stderr
    job = res.stdout.strip().split(";")[0]

    def training() -> bool:
        assert job in jobs(cluster), "".join(p.read_text() for p in tmp_path.glob("ddp-*.out"))[-3000:]
        return steps(run_dir / "steps.txt") >= 4

    wait_until("DDP training", training, timeout=CLI_TIMEOUT)
    slurm(cluster, "scontrol", "requeue", job)
    release_requeued(cluster, job)
    wait_until("the DDP job to end", lambda: job not in jobs(cluster), timeout=CLI_TIMEOUT, every=1)
    out = "".join(p.read_text() for p in tmp_path.glob("ddp-*.out"))
    summary = json.loads((run_dir / S.FILENAME).read_text())
    assert summary[S.STATUS] == S.COMPLETED, out[-3000:]
    assert summary[S.TRAIN_WORLD_SIZE] == 2
    rank0 = (run_dir / "train_rank0.log").read_text()
    assert "resume: continuing from" in rank0
    assert "rank 1 of 2: config" in (run_dir / "train_rank1.log").read_text()
    reference = reference_run(tmp_path, *RUN, "data.batch_size=64")
    assert max_diff(weights(reference), weights(run_dir)) < 1e-5


def test_unknown_partition_is_sbatchs_refusal_in_one_line(cluster, tmp_path: Path) -> None:
    launcher = [
        a if not a.startswith("hydra.launcher.partition=") else "hydra.launcher.partition=nope" for a in LAUNCHER
    ]
    cmd = [PYTHON, "-m", "nnopt.train", "-m", *launcher, *FIXED, "seed=1,2", f"paths.log_dir={tmp_path / 'logs'}"]
    res = subprocess.run(cmd, env=slurm_env(cluster), cwd=ROOT, capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert res.returncode == 2, res.stderr[-3000:]
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert lines[-1] == (
        "nnopt: error: sbatch refused the jobs (hydra.launcher.partition=nope): Invalid partition name specified"
    ), res.stderr[-3000:]
    assert len(lines) == 1, res.stderr[-3000:]
    assert jobs(cluster) == {}


def test_study_with_4_workers_as_a_slurm_array(cluster, tmp_path: Path, pg_url: str) -> None:
    """scripts/sbatch_study.sh --array=0-3: one study in PostgreSQL, 8 trials in total, no duplicates."""
    node_url = pg_url.replace("127.0.0.1", cluster.state["bridge_ip"])  # 127.0.0.1 on a node is the node itself
    flags = ["--array=0-3", "--partition=debug", "--cpus-per-task=1", "--mem=1G", "--time=10", "--parsable"]
    flags += [f"--output={tmp_path}/study-%A_%a.out"]
    args = [
        "hparams_search=digits_tpe",
        "debug=fast",
        *QUIET,
        f"hydra.sweeper.storage={node_url}",
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.heartbeat_interval=2",
        f"paths.log_dir={tmp_path / 'logs'}",
    ]
    env = slurm_env(cluster, NNOPT_RUN_STAMP="study_test")
    res = subprocess.run(
        ["sbatch", *flags, "scripts/sbatch_study.sh", *args], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    array = res.stdout.strip().split(";")[0]
    wait_until("the study's workers to end", lambda: not any(j.startswith(array) for j in jobs(cluster)), 500, 1)
    outs = {p.name: p.read_text() for p in tmp_path.glob("study-*.out")}
    assert len(outs) == 4
    study = optuna.load_study(study_name="digits_tpe", storage=pg_url)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 8, "\n".join(o[-1500:] for o in outs.values())
    assert len({tuple(sorted(t.params.items())) for t in complete}) == 8
    assert len({t.user_attrs["nnopt_worker"] for t in complete}) >= 2
    (sweep,) = list((tmp_path / "logs").glob("*/multiruns/study_test"))
    assert "n_trials: 8\n" in (sweep / "optimization_results.yaml").read_text()
    assert "8 jobs: 8 completed" in (sweep / "report.md").read_text()
    assert os.environ.get("SLURM_CONF") is None  # nothing leaked into the test process
