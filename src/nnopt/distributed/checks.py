"""Device and launcher checks before anything is built: impossible requests fail with one line.

- more devices than visible, `ddp` on one device, sync_batchnorm on CPU;
- SLURM / torchrun task counts that disagree with `trainer.devices` x `trainer.num_nodes`;
- this process's global rank as the launcher set it (so only global rank 0 writes run files).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from nnopt.errors import ConfigError

#: strategies that run one process per device (one rank each)
MULTI_PROCESS = ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook", "fsdp", "deepspeed")


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
        raise ConfigError(
            "trainer.sync_batchnorm=true needs GPUs (torch's SyncBatchNorm has no CPU kernel); "
            "set it false with trainer.accelerator=cpu"
        )
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
            raise ConfigError(
                f"SLURM allocated {nnodes} nodes (--nodes) but trainer.num_nodes={num_nodes}; make them equal"
            )
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
