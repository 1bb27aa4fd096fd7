"""Section 6 (the same grid with Hydra's basic and joblib launchers) and section 7 (GPU, not measured yet)."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import torch

from nnopt.metrics import summary as S
from nnopt_bench import ROOT
from nnopt_bench.runner import Bench, subprocess_env


def sweep(b: Bench) -> dict[str, Any]:
    """The same grid with Hydra's basic launcher (one process, all cores) and joblib (2 workers, 1 thread each)."""
    grid = b.mode.sweep_grid
    jobs = 1
    for axis in grid:
        jobs *= len(axis.split("=", 1)[1].split(","))
    common = [*b.mode.sweep_data, *grid, "callbacks.progress_bar=null", "callbacks.model_summary=null"]
    launchers = {
        "basic": ([], b.threads),
        "joblib": (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], max(1, b.threads // 2)),
    }
    out: dict[str, Any] = {"jobs": jobs, "grid": " ".join(common)}
    for name, (extra, threads) in launchers.items():
        log_dir = b.work / f"sweep_{name}"
        env = subprocess_env(threads)
        cmd = [sys.executable, "-m", "nnopt.train", "-m", *common, *extra, f"paths.log_dir={log_dir}"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
        wall = time.perf_counter() - start
        done = sum(1 for p in log_dir.rglob(S.FILENAME) if S.read_summary(p).get(S.STATUS) == S.COMPLETED)
        if proc.returncode != 0 or done != jobs:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"{name} sweep: exit {proc.returncode}, {done}/{jobs} jobs completed: {tail}")
        out[name] = {
            "wall_s": wall,
            "jobs_per_min": jobs / wall * 60,
            "threads_per_job": threads,
            "command": " ".join(["nnopt-train", "-m", *common, *extra]),
        }
    out["joblib_speedup"] = out["basic"]["wall_s"] / out["joblib"]["wall_s"]
    return out


def gpu_scaling() -> dict[str, Any]:
    """Section 7's placeholder: says why nothing was measured."""
    if not torch.cuda.is_available():
        return {"measured": False, "note": "not measured: no GPU"}
    return {"measured": False, "note": "not measured: GPU scaling runs are not implemented in this script yet"}
