"""Shared test helpers: compose configs in-process, run the CLIs as subprocesses, write data files.

One list of fast overrides (`FAST`) for every in-process or CLI run on digits; tests add what they need.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from omegaconf import DictConfig

from nnopt.config.compose import compose_run_config

ROOT = Path(__file__).resolve().parents[2]
#: quiet and short: no progress bar or model table, two latency repeats (add trainer.max_epochs=... as needed)
QUIET = [
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
    "efficiency.latency_repeats=2",
    "efficiency.latency_warmup=1",
]
#: the default for in-process runs: two epochs of the default job
FAST = ["trainer.max_epochs=2", *QUIET]
#: a few batches of everything (CLI smoke runs, sweeps)
TINY = ["debug=fast", *QUIET]
#: one epoch of two batches (bad-input and safety runs: the check under test happens before or around them)
ONE_EPOCH = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", *QUIET]
#: CLI subprocesses start Python, torch and Lightning: generous limits, never a short wall-clock budget
CLI_TIMEOUT = 900


def make_cfg(out_dir: Path, *overrides: str, config_name: str = "train", fast: bool = True) -> DictConfig:
    """Compose a run config the way `nnopt-train` does, with its output in `out_dir`."""
    fast_args = FAST if fast and config_name == "train" else []
    return compose_run_config(out_dir, [*fast_args, *overrides], config_name)


#: inherited variables a subprocess run must not see: cluster/rank settings, and HYDRA_FULL_ERROR (it switches off
#: nnopt's pre-check and one-line errors, which many tests check)
_NOT_INHERITED = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_PORT", "MASTER_ADDR", "HYDRA_FULL_ERROR")


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for subprocess runs: offline W&B, loopback, no inherited cluster/rank variables, no
    HYDRA_FULL_ERROR (pass it in `extra` to test it)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "WANDB_", "NNOPT_RUN_STAMP", "PL_", "TORCHELASTIC")) and k not in _NOT_INHERITED
    }
    env.update(WANDB_MODE="offline", MASTER_ADDR="127.0.0.1", GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    env.update(extra)
    return env


def listed_options(line: str) -> set[str]:
    """The options an "unknown <group> option ...; choose one of: a, b, c" error line lists."""
    assert "; choose one of: " in line, line
    return set(line.split("; choose one of: ", 1)[1].strip().split(", "))


def run_cli(module: str, *args: str, log_dir: Path, timeout: int = CLI_TIMEOUT, env: dict | None = None):
    """Run `python -m nnopt.<module> args` with all output under `log_dir`; returns CompletedProcess."""
    cmd = [sys.executable, "-m", f"nnopt.{module}", *args, f"paths.log_dir={log_dir}"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or cli_env(), cwd=ROOT)
