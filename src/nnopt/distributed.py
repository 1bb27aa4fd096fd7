"""Scaling out: device/task-count checks, DDP inside Hydra multiruns, auto-resume, W&B run ids.

`prepare(cfg)` runs before anything is built (train.run):
- rejects impossible device requests with one line (more GPUs than visible, `ddp` on one device,
  SLURM/torchrun task counts that disagree with `trainer.devices` x `trainer.num_nodes`);
- sets the rank-zero flag from the launcher's environment, so only the global rank 0 creates W&B runs;
- in a multirun, makes Lightning's DDP children re-run *their job only* (not the whole sweep);
- with `resume=true`, points `ckpt_path` at the newest checkpoint of this run dir (`checkpoints/last.ckpt`
  or a SLURM requeue `hpc_ckpt_N.ckpt`); `pipeline.check_resume` then refuses one from another config.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.utilities import rank_zero_only

from nnopt.errors import ConfigError

log = logging.getLogger("nnopt")
# Epoch metrics are torchmetrics results, already reduced over all ranks before `self.log`: Lightning's hint
# to add sync_dist=True would only average identical numbers again.
warnings.filterwarnings("ignore", message=r"It is recommended to use `self.log\(.*sync_dist=True")
#: strategies that run one process per device (one rank each)
MULTI_PROCESS = ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook", "fsdp", "deepspeed")
#: environment Lightning's launcher sets in the parent process of a DDP job (removed between multirun jobs)
_LAUNCH_ENV = ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_PORT", "MASTER_ADDR")
WANDB_ID_FILE = "wandb_run_id.txt"
_env_before_jobs: dict[str, str | None] | None = None


# -- configuration checks -------------------------------------------------------------------------------
def _strategy_name(strategy: Any) -> str:
    if isinstance(strategy, str):
        return strategy
    if isinstance(strategy, dict):
        target = str(strategy.get("_target_", ""))
        return "fsdp" if "fsdp" in target.lower() else "ddp" if "ddp" in target.lower() else target
    return "auto"


def _visible_devices(accelerator: str) -> int | None:
    if accelerator in ("gpu", "cuda"):
        return torch.cuda.device_count()
    if accelerator == "mps":
        return 1 if torch.backends.mps.is_available() else 0
    if accelerator == "cpu":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return None  # auto: Lightning picks what exists


def device_count(trainer: dict[str, Any]) -> int | None:
    """Processes per node the trainer config asks for (None: `auto`/-1, decided by Lightning)."""
    devices = trainer.get("devices", 1)
    accelerator = str(trainer.get("accelerator", "auto"))
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if isinstance(devices, str):
        if devices.strip().lstrip("-").isdigit():
            devices = int(devices)
        elif "," in devices:
            return len([d for d in devices.split(",") if d.strip()])
        else:
            return None
    if isinstance(devices, bool) or not isinstance(devices, int):
        raise ConfigError(f"trainer.devices={devices!r} must be a count, a list of device ids, -1 or 'auto'")
    if devices == -1:
        return _visible_devices(accelerator)
    if devices < 1:
        raise ConfigError(f"trainer.devices={devices} must be >= 1 (or -1 for all visible devices)")
    return devices


def check(cfg: DictConfig, environ: dict[str, str] | None = None) -> None:
    """Refuse device/launcher settings that cannot work, with one line each (ConfigError)."""
    env = os.environ if environ is None else environ
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True) if cfg.get("trainer") is not None else {}
    accelerator = str(trainer.get("accelerator", "auto"))
    strategy = _strategy_name(trainer.get("strategy", "auto"))
    num_nodes = trainer.get("num_nodes", 1)
    if not isinstance(num_nodes, int) or isinstance(num_nodes, bool) or num_nodes < 1:
        raise ConfigError(f"trainer.num_nodes={num_nodes!r} must be an integer >= 1")
    devices = device_count(trainer)
    visible = _visible_devices(accelerator)
    requested = trainer.get("devices", 1)
    if visible is not None and devices is not None:
        kind = {"cpu": "CPU cores", "mps": "MPS devices"}.get(accelerator, "CUDA GPUs")
        if visible == 0:
            raise ConfigError(f"trainer.accelerator={accelerator} but no {kind} are visible here; use trainer=cpu")
        if devices > visible:
            raise ConfigError(f"trainer.devices={requested} but only {visible} {kind} are visible on this machine")
    if strategy.startswith(MULTI_PROCESS) and devices is not None and devices * num_nodes < 2:
        raise ConfigError(
            f"trainer.strategy={strategy} with trainer.devices={requested} x trainer.num_nodes={num_nodes} "
            "= 1 process; use trainer=cpu/gpu for one device, or ask for >= 2 devices"
        )
    if trainer.get("sync_batchnorm") and accelerator == "cpu" and (devices or 1) * num_nodes > 1:
        raise ConfigError("trainer.sync_batchnorm=true needs GPUs (torch's SyncBatchNorm has no CPU kernel); "
                          "set it false with trainer.accelerator=cpu")  # fmt: skip
    _check_launcher(env, devices, num_nodes)


def _check_launcher(env: Any, devices: int | None, num_nodes: int) -> None:
    """SLURM / torchrun started a number of processes: it must equal devices x num_nodes."""
    if devices is None:
        return
    if env.get("SLURM_NTASKS") and env.get("SLURM_JOB_NAME") not in ("bash", "interactive"):
        per_node = env.get("SLURM_NTASKS_PER_NODE", "").split("(")[0]
        nnodes = env.get("SLURM_NNODES") or env.get("SLURM_JOB_NUM_NODES")
        if per_node.isdigit() and int(per_node) != devices:
            raise ConfigError(
                f"SLURM started {per_node} tasks per node (--ntasks-per-node) but trainer.devices={devices}; "
                f"make them equal (one task per device)"
            )
        if nnodes and nnodes.isdigit() and int(nnodes) != num_nodes:
            raise ConfigError(f"SLURM allocated {nnodes} nodes (--nodes) but trainer.num_nodes={num_nodes}; "
                              f"make them equal")  # fmt: skip
        ntasks = int(env["SLURM_NTASKS"])
        if ntasks not in (1, devices * num_nodes):
            raise ConfigError(
                f"SLURM started {ntasks} tasks (--ntasks) but trainer.devices={devices} x "
                f"trainer.num_nodes={num_nodes} = {devices * num_nodes} ranks; use --ntasks-per-node={devices}"
            )
        return
    if env.get("TORCHELASTIC_RUN_ID") and env.get("WORLD_SIZE"):
        world = int(env["WORLD_SIZE"])
        if world != devices * num_nodes:
            raise ConfigError(
                f"torchrun started WORLD_SIZE={world} processes but trainer.devices={devices} x "
                f"trainer.num_nodes={num_nodes} = {devices * num_nodes}; set trainer.devices=<nproc-per-node> "
                f"trainer.num_nodes=<nnodes>"
            )


def env_global_rank(devices: int | None, environ: dict[str, str] | None = None) -> int | None:
    """This process's global rank as the launcher set it (None: not launched as a rank)."""
    env = os.environ if environ is None else environ
    for key in ("RANK", "SLURM_PROCID"):
        if env.get(key, "").isdigit() and (key != "SLURM_PROCID" or env.get("SLURM_NTASKS", "1") != "1"):
            return int(env[key])
    if env.get("LOCAL_RANK", "").isdigit() or env.get("NODE_RANK", "").isdigit():
        return int(env.get("NODE_RANK", 0) or 0) * (devices or 1) + int(env.get("LOCAL_RANK", 0) or 0)
    return None


# -- DDP inside a Hydra multirun ------------------------------------------------------------------------
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
    command = [sys.executable, "-m", module, *_config_flags(sys.argv[1:]), *hc.overrides.task]
    command += [f'hydra.run.dir="{hc.runtime.output_dir}"', f"hydra.job.name={hc.job.name}_ddp_rank{local_rank}",
                "hydra.output_subdir=null"]  # fmt: skip
    return command, get_original_cwd()


def _install_job_command() -> None:
    from lightning_fabric.strategies.launchers import subprocess_script as fabric_launcher
    from pytorch_lightning.strategies.launchers import subprocess_script as launcher

    original = fabric_launcher._hydra_subprocess_cmd

    def command(local_rank: int) -> tuple[Sequence[str], str]:
        from nnopt.cli import is_multirun

        return job_command(local_rank) if is_multirun() else original(local_rank)

    launcher._hydra_subprocess_cmd = command


def _reset_between_jobs() -> None:
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


# -- auto-resume ----------------------------------------------------------------------------------------
def resume_candidates(run_dir: str | Path) -> list[Path]:
    """Checkpoints a killed or requeued run left in its own dir, newest first."""
    run_dir = Path(run_dir)
    found = [p for p in (run_dir / "checkpoints" / "last.ckpt", *run_dir.glob("hpc_ckpt_*.ckpt")) if p.is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def in_run_dir(ckpt_path: str | Path, cfg: DictConfig) -> bool:
    """Whether a checkpoint belongs to this run's own dir (then it must come from this very config)."""
    try:
        return Path(ckpt_path).resolve().is_relative_to(Path(cfg.paths.output_dir).resolve())
    except (OSError, TypeError):
        return False


def auto_resume(cfg: DictConfig) -> Path | None:
    """`resume=true` (or a SLURM requeue checkpoint): continue from the newest checkpoint of this run dir."""
    if cfg.get("ckpt_path") and not cfg.get("resume"):
        return None
    found = resume_candidates(cfg.paths.output_dir)
    requeued = [p for p in found if p.name.startswith("hpc_ckpt_")]
    if not cfg.get("resume"):
        found = requeued if _under_slurm() else []  # Lightning itself resumes a requeued SLURM job from these
    if not found:
        if cfg.get("resume") and not cfg.get("ckpt_path"):
            log.warning("resume=true: no checkpoint in %s yet; starting from scratch", cfg.paths.output_dir)
        return None
    with open_dict(cfg):
        cfg.ckpt_path = str(found[0])
    log.info("resume: continuing from %s", found[0])
    return found[0]


def _under_slurm() -> bool:
    from lightning_fabric.plugins.environments import SLURMEnvironment

    try:
        return SLURMEnvironment.detect()
    except Exception:  # noqa: BLE001 - a misconfigured srun is reported by Lightning itself later
        return False


def prepare(cfg: DictConfig) -> None:
    """Everything distributed that must happen before the run is built (see module docstring)."""
    from nnopt.cli import is_multirun

    if is_multirun():
        _reset_between_jobs()
        _install_job_command()
    check(cfg)
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    rank = env_global_rank(device_count(trainer))
    if rank is not None:
        rank_zero_only.rank = rank
    auto_resume(cfg)


# -- loggers --------------------------------------------------------------------------------------------
def wandb_resume_args(cfg: DictConfig, node: dict[str, Any] | None = None) -> dict[str, Any]:
    """W&B run id kept in the run dir: a resumed run (resume=true or a checkpoint of this dir) continues
    the same W&B run instead of starting a second one. An `id` set in the logger config wins."""
    if (node or {}).get("id"):
        return {}
    path = Path(cfg.paths.output_dir) / WANDB_ID_FILE
    resuming = bool(cfg.get("resume")) or (cfg.get("ckpt_path") and in_run_dir(cfg.ckpt_path, cfg))
    if resuming and path.is_file() and path.read_text().strip():
        return {"id": path.read_text().strip(), "resume": "allow"}
    if rank_zero_only.rank != 0:
        return {}
    import uuid

    run_id = uuid.uuid4().hex[:8]  # W&B's own id format: 8 lower-case alphanumerics
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return {"id": run_id}


# -- strategies and callbacks ---------------------------------------------------------------------------
def fsdp_strategy(
    min_params: int = 100_000, sharding_strategy: str = "FULL_SHARD", cpu_offload: bool = False, **kwargs: Any
) -> pl.strategies.Strategy:
    """FSDP with size-based wrapping (our models are plain nn.Modules: no layer classes to name) and
    full-state checkpoints (one file, readable by nnopt-eval and resume)."""
    from functools import partial

    from pytorch_lightning.strategies import FSDPStrategy
    from torch.distributed.fsdp.wrap import size_based_auto_wrap_policy

    return FSDPStrategy(
        auto_wrap_policy=partial(size_based_auto_wrap_policy, min_num_params=min_params),
        sharding_strategy=sharding_strategy,
        cpu_offload=cpu_offload,
        state_dict_type="full",
        **kwargs,
    )


class StepCheckpoint(pl.Callback):
    """Mid-epoch `last.ckpt` every `every_n_train_steps` (0: only the epoch-end one of ModelCheckpoint), so a
    kill -9 loses at most that many steps; plus the torch RNG state, so dropout draws after a resume are the
    ones the uninterrupted run would have drawn. The data order resumes via TensorBatches' own state.
    Lightning writes checkpoints atomically (temp file + move): a kill during a save keeps the previous one."""

    def __init__(self, dirpath: str, every_n_train_steps: int = 0, filename: str = "last.ckpt") -> None:
        if not isinstance(every_n_train_steps, int) or every_n_train_steps < 0:
            raise ConfigError(f"callbacks.step_checkpoint.every_n_train_steps={every_n_train_steps!r} must be >= 0")
        self.path = Path(dirpath) / filename
        self.every = every_n_train_steps
        self._rng: torch.Tensor | None = None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.every and trainer.global_step % self.every == 0 and not trainer.sanity_checking:
            trainer.save_checkpoint(self.path)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._rng is not None:
            torch.set_rng_state(self._rng)
            self._rng = None

    def state_dict(self) -> dict[str, Any]:
        return {"torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        rng = state_dict.get("torch_rng")
        self._rng = rng if isinstance(rng, torch.Tensor) else None


def config_digest(config: dict[str, Any]) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


class RankAgreement(pl.Callback):
    """Under DDP, every rank checks at setup that all ranks run the same configuration.

    DDP itself never notices ranks training different configs in one process group (it happened with
    Lightning's default relaunch inside a Hydra multirun): they would silently average unrelated gradients.
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.world_size < 2:
            return
        digest = config_digest(getattr(pl_module, "run_config", {}) or {})
        gathered: list[str | None] = [None] * trainer.world_size
        torch.distributed.all_gather_object(gathered, digest)  # every rank sees every digest: all fail alike
        log.info(
            "rank %d of %d: config %s (%s)",
            trainer.global_rank,
            trainer.world_size,
            digest,
            getattr(stage, "value", stage),
        )
        if len(set(gathered)) != 1:
            raise RuntimeError(f"DDP ranks run different configurations (rank {trainer.global_rank}: {digest}); "
                               "each rank must be started with the same overrides")  # fmt: skip
