"""DDP inside a Hydra multirun: each child rank runs *its job only*, and jobs do not inherit each other's ranks.

Lightning re-runs `sys.argv` for child ranks, which in a multirun is the whole sweep (every rank would walk through
all jobs; under joblib/submitit workers `sys.argv` is not even ours). This module is the only user of Lightning's
private `_hydra_subprocess_cmd` (through :mod:`nnopt._compat`), and only in multiruns.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

import torch
from pytorch_lightning.utilities import rank_zero_only

from nnopt import _compat, hydra_env

#: environment Lightning's launcher sets in the parent process of a DDP job (removed between multirun jobs)
_LAUNCH_ENV = ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_PORT", "MASTER_ADDR")
_env_before_jobs: dict[str, str | None] | None = None


_KEEP_FLAGS = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd")


def _config_flags(argv: Sequence[str]) -> list[str]:
    """`-cn NAME`-style flags of the parent command line (the child must compose the same config)."""
    out: list[str] = []
    it = iter(argv)
    for arg in it:
        flag = arg.split("=", 1)[0]
        if flag in _KEEP_FLAGS:
            out += [arg] if "=" in arg else [arg, next(it, "")]
    return out


def job_command(local_rank: int) -> tuple[list[str], str]:
    """Command line of a DDP child for the current multirun job: a *single run* of that job's overrides.

    Lightning re-runs `sys.argv`, which in a multirun is the whole sweep (every rank would walk through all
    jobs); under joblib/submitit workers `sys.argv` is not even ours. The job's own overrides are exact.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    import __main__

    hc = HydraConfig.get()
    spec = getattr(__main__, "__spec__", None)
    module = spec.name if spec is not None and spec.name.startswith("nnopt.") else "nnopt.train"
    command = [sys.executable, "-m", module, *_config_flags(sys.argv[1:]), *hydra_env.task_overrides(hc)]
    command += [
        f'hydra.run.dir="{hc.runtime.output_dir}"',
        f"hydra.job.name={hc.job.name}_ddp_rank{local_rank}",
        "hydra.output_subdir=null",
    ]
    return command, get_original_cwd()


def install_job_command() -> None:
    """Child ranks of a multirun job get :func:`job_command`; single runs keep Lightning's own command."""

    def make(original: Callable[[int], tuple[Sequence[str], str]]) -> Callable[[int], tuple[Sequence[str], str]]:
        def command(local_rank: int) -> tuple[Sequence[str], str]:
            return job_command(local_rank) if hydra_env.is_multirun() else original(local_rank)

        return command

    _compat.replace_hydra_subprocess_command(make)


def reset_between_jobs() -> None:
    """A multirun runs its jobs in one process: drop the previous job's process group and launch variables,
    or the next job would think it was started by a launcher and wait for ranks that never come."""
    global _env_before_jobs
    if _env_before_jobs is None:
        _env_before_jobs = {k: os.environ.get(k) for k in _LAUNCH_ENV}
        return
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    for key, value in _env_before_jobs.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    rank_zero_only.rank = 0
