"""`trainer.threads`: how many CPU threads torch uses for one run.

More threads than free cores hurts small models badly: on a shared 2-core machine under load, 2 torch threads
made a small MLP's step 10-40x slower than 1 thread (OpenMP threads spin-waiting on each other). `auto` therefore
takes, in this order: `OMP_NUM_THREADS` when set (an explicit choice, e.g. the test suite's 1); a parallel
launcher's per-job share (joblib: cores // n_jobs, submitit: cpus_per_task); the physical cores this process may
run on, divided among the local DDP ranks on a CPU.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from nnopt import hydra_env
from nnopt.errors import require

AUTO = "auto"
KEY = "threads"


def physical_cores() -> int:
    """Physical cores among the CPUs this process may use (hyper-threads counted once); os.cpu_count() where the
    topology cannot be read."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(
                (topo.joinpath("physical_package_id").read_text().strip(), topo.joinpath("core_id").read_text().strip())
            )
        except OSError:
            return len(cpus) or os.cpu_count() or 1
    return max(1, len(cores))


def job_threads(config: DictConfig) -> int | None:
    """CPU threads for one job of a parallel local launcher: its share of the cores (None: leave as is)."""
    launcher = config.hydra.launcher
    target = str(launcher.get("_target_", ""))
    if target.endswith("LocalLauncher"):  # submitit_local: each job gets cpus_per_task
        return int(launcher.get("cpus_per_task") or 0) or None
    if "joblib" not in target:
        return None
    cores = os.cpu_count() or 1
    n_jobs = int(launcher.get("n_jobs") or 1)
    parallel = cores + 1 + n_jobs if n_jobs < 0 else n_jobs  # joblib: -1 = all cores
    return max(1, cores // max(parallel, 1))


def _launcher_share() -> int | None:
    hydra = hydra_env.current()
    if hydra is None:
        return None
    try:
        return job_threads(hydra)
    except Exception:  # noqa: BLE001 - a single run has no launcher node worth reading
        return None


def _local_ranks(trainer: dict[str, Any]) -> int:
    strategy, devices = str(trainer.get("strategy") or ""), trainer.get("devices")
    if trainer.get("accelerator") == "cpu" and strategy.startswith("ddp") and isinstance(devices, int):
        return max(1, devices)
    return 1


def resolve(value: Any, trainer: dict[str, Any] | None = None) -> int:
    """The thread count `trainer.threads=value` stands for (see the module docstring for `auto`)."""
    if value is None or value == AUTO:
        env = os.environ.get("OMP_NUM_THREADS", "")
        if env.isdigit() and int(env) > 0:
            return int(env)
        share = _launcher_share()
        if share:
            return share
        return max(1, physical_cores() // _local_ranks(trainer or {}))
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    require(ok, f"trainer.{KEY}", value, f"a positive integer or {AUTO}")
    return int(value)


def set_torch_threads(trainer: dict[str, Any]) -> int:
    """Pop `threads` from a trainer node (it is not a Trainer argument) and set torch's intra-op threads."""
    import torch  # here: the sweep callback reads this module before any run, and must not pay for torch

    threads = resolve(trainer.pop(KEY, None), trainer)
    torch.set_num_threads(threads)
    return threads
