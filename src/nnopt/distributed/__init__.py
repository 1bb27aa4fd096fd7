"""Scaling out: what must happen before a run is built when it runs as one of several processes.

- `checks`: impossible device/launcher requests fail with one line; the launcher's global rank;
- `hydra_ddp`: DDP children of a multirun job re-run that job only, and jobs do not inherit each other's ranks.
Resuming (`resume=true`, SLURM requeue) is :func:`nnopt.checkpoint.resolve_resume`.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from pytorch_lightning.utilities import rank_zero_only

from nnopt.distributed import hydra_ddp
from nnopt.distributed.checks import check, device_count, env_global_rank

__all__ = ["check", "device_count", "env_global_rank", "prepare", "under_slurm"]


def prepare(cfg: DictConfig, multirun: bool) -> None:
    """Before building: reset the previous multirun job's process group, check devices, set the rank-zero flag."""
    if multirun:
        hydra_ddp.reset_between_jobs()
        hydra_ddp.install_job_command()
    check(cfg)
    pin_process_counts(cfg)
    rank = env_global_rank(device_count(OmegaConf.to_container(cfg.trainer, resolve=True)))
    if rank is not None:
        rank_zero_only.rank = rank


def pin_process_counts(cfg: DictConfig) -> None:
    """Replace interpolated `trainer.devices` / `trainer.num_nodes` by their values.

    trainer=multinode reads them from SLURM's variables (`${oc.decode:${oc.env:SLURM_NNODES,1}}`); the config a
    checkpoint stores must hold the numbers, as a stored config may not use oc.decode (a requeued job could not
    resume otherwise)."""
    trainer = cfg.get("trainer")
    if trainer is None:
        return
    for key in ("devices", "num_nodes"):
        if key in trainer and OmegaConf.is_interpolation(trainer, key):
            value = trainer[key]
            with read_write(trainer), open_dict(trainer):
                trainer[key] = value


def under_slurm() -> bool:
    """Whether Lightning sees a SLURM-managed job (then it resumes requeued runs from `hpc_ckpt_N.ckpt`)."""
    from lightning_fabric.plugins.environments import SLURMEnvironment

    try:
        return SLURMEnvironment.detect()
    except Exception:  # noqa: BLE001 - a misconfigured srun is reported by Lightning itself later
        return False
