#!/usr/bin/env python3
"""Measurements on the local test cluster (scripts/local_cluster.py; root): a 16-trial Optuna study in PostgreSQL
run by 1 worker vs 4 workers (a SLURM array of scripts/sbatch_study.sh), and one 2-node DDP epoch
(scripts/slurm_multinode.sbatch) vs one process. Prints a markdown table; the cluster is stopped at the end.

    sudo .venv/bin/python scripts/local_cluster_bench.py --cpus 2 [--trials 16] [--out bench/cluster.md]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("local_cluster", ROOT / "scripts" / "local_cluster.py")
local_cluster = importlib.util.module_from_spec(spec)
spec.loader.exec_module(local_cluster)


def env_for(cluster, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "NNOPT_", "MASTER_"))}
    env.update(SLURM_CONF=cluster.state["slurm_conf"], WANDB_MODE="offline", GLOO_SOCKET_IFNAME="eth0")
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), **extra)
    return env


def queue(cluster) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], env=env_for(cluster), capture_output=True, text=True).stdout
    return out.split()


def wait_gone(cluster, job: str, timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(j == job or j.startswith(job + "_") for j in queue(cluster)):
            return
        time.sleep(1)
    raise RuntimeError(f"job {job} still queued after {timeout} s")


def study(cluster, tmp: Path, workers: int, trials: int, trial_args: list[str]) -> dict:
    import optuna
    import psycopg

    port = cluster.state["pg_port"]
    db = f"bench_{workers}"
    with psycopg.connect(host="127.0.0.1", port=port, user="nnopt", dbname="optuna", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}"')
        conn.execute(f'CREATE DATABASE "{db}"')
    node_url = f"postgresql+psycopg://nnopt@{cluster.state['bridge_ip']}:{port}/{db}"
    args = [
        "hparams_search=digits_tpe",
        *trial_args,
        "callbacks.progress_bar=null",
        "callbacks.model_summary=null",
        f"hydra.sweeper.storage={node_url}",
        f"hydra.sweeper.n_trials={trials}",
        f"paths.log_dir={tmp / f'logs{workers}'}",
    ]
    flags = [f"--array=0-{workers - 1}", "--partition=debug", "--cpus-per-task=1", "--mem=1G", "--parsable"]
    flags += [f"--output={tmp}/study{workers}-%A_%a.out"]
    t0 = time.monotonic()
    res = subprocess.run(
        ["sbatch", *flags, "scripts/sbatch_study.sh", *args],
        env=env_for(cluster, NNOPT_RUN_STAMP=f"bench{workers}"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    wait_gone(cluster, res.stdout.strip().split(";")[0])
    wall = time.monotonic() - t0
    s = optuna.load_study(study_name="digits_tpe", storage=node_url.replace(cluster.state["bridge_ip"], "127.0.0.1"))
    done = [t for t in s.trials if t.state == optuna.trial.TrialState.COMPLETE]
    params = [tuple(sorted(t.params.items())) for t in done]
    return {
        "workers": workers,
        "wall_s": round(wall, 1),
        "complete": len(done),
        "trials_per_min": round(len(done) / wall * 60, 2),
        "duplicates": len(params) - len(set(params)),
        "failed": sum(t.state == optuna.trial.TrialState.FAIL for t in s.trials),
    }


EPOCH = ["trainer.max_epochs=1", "callbacks.early_stopping=null", "callbacks.progress_bar=null"]
EPOCH += ["callbacks.model_summary=null", "data.batch_size=128"]


def ddp_epoch(cluster, tmp: Path, data: list[str]) -> dict:
    run_dir = tmp / "ddp"
    flags = ["--nodes=2", "--ntasks-per-node=1", "--partition=debug", "--gpus-per-node=0", "--cpus-per-task=1"]
    flags += ["--mem=1G", f"--output={tmp}/ddp-%j.out", "--parsable"]
    t0 = time.monotonic()
    res = subprocess.run(
        ["sbatch", *flags, "scripts/slurm_multinode.sbatch", *EPOCH, *data, f"paths.log_dir={tmp / 'ddplogs'}"],
        env=env_for(cluster, NNOPT_RUN_DIR=str(run_dir)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    wait_gone(cluster, res.stdout.strip().split(";")[0])
    wall = time.monotonic() - t0
    summary = json.loads((run_dir / "summary.json").read_text())
    one = tmp / "one"
    t1 = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "nnopt.train",
            "trainer=cpu",
            *EPOCH,
            *data,
            f"hydra.run.dir={one}",
            f"paths.log_dir={tmp}",
        ],
        env={**env_for(cluster), "MASTER_ADDR": "127.0.0.1"},
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    wall1 = time.monotonic() - t1
    single = json.loads((one / "summary.json").read_text())
    return {
        "ddp_world_size": summary.get("train/world_size"),
        "ddp_train_s": summary.get("train/time_s"),
        "ddp_job_wall_s": round(wall, 1),
        "one_train_s": single.get("train/time_s"),
        "one_wall_s": round(wall1, 1),
        "ddp_val_acc": summary.get("val/acc_best"),
        "one_val_acc": single.get("val/acc_best"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpus", type=int, default=2, help="CPUs per node (4 workers at once need 2)")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--trial", default="debug=fast", help="overrides of each study trial (space-separated)")
    parser.add_argument("--ddp-data", default="data=digits", help="overrides of the DDP epoch run")
    parser.add_argument("--no-study", action="store_true")
    parser.add_argument("--no-ddp", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nnopt-bench-"))
    tmp.chmod(0o755)  # munged (user munge) and PostgreSQL (user postgres) work below it
    cluster = local_cluster.Cluster(tmp / "cluster")
    t0 = time.monotonic()
    cluster.start(cpus=args.cpus)
    started = time.monotonic() - t0
    try:
        rows = [] if args.no_study else [study(cluster, tmp, w, args.trials, args.trial.split()) for w in (1, 4)]
        ddp = None if args.no_ddp else ddp_epoch(cluster, tmp, args.ddp_data.split())
    finally:
        t1 = time.monotonic()
        cluster.stop()
        stopped = time.monotonic() - t1
    lines = [
        f"Local cluster: 2 nodes x {args.cpus} CPUs (network namespaces on one {os.cpu_count()}-core machine); "
        f"start {started:.1f} s, stop {stopped:.1f} s. Trials: `{args.trial}`; DDP epoch: `{args.ddp_data}`.",
        "",
        "| workers | wall s | trials complete | trials/min | duplicates | failed |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r['workers']} | {r['wall_s']} | {r['complete']} | {r['trials_per_min']} | {r['duplicates']} | "
            f"{r['failed']} |"
            for r in rows
        ],
    ]
    if ddp:
        lines += [
            "",
            "| one epoch (batch 128) | train s | job wall s | val/acc_best |",
            "|---|---|---|---|",
            f"| 2-node DDP (world size {ddp['ddp_world_size']}) | {ddp['ddp_train_s']:.2f} | {ddp['ddp_job_wall_s']} | "
            f"{ddp['ddp_val_acc']:.4f} |",
            f"| one process | {ddp['one_train_s']:.2f} | {ddp['one_wall_s']} | {ddp['one_val_acc']:.4f} |",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
