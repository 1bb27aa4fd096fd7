"""Experiment trackers: the one place loggers are built and fed.

`build_loggers(cfg)` instantiates every node of the `logger` group from its `_target_`. What a tracker needs beyond
its constructor arguments is decided by the logger's *class* (any key name, user configs included):

- W&B (`WandbLogger` or a subclass): offline unless `online: true` and an API key exist, driven through W&B's
  environment variables (only the environment stops its telemetry thread from reaching the network); all its files
  under the run dir; in a multirun group = the sweep and tags = the job's overrides; the run id is kept in the run
  dir so a resumed run continues the same W&B run.
- `online` is an nnopt key of every logger node (only W&B uses it) and is never passed to a constructor.
"""

from __future__ import annotations

import csv
import logging
import netrc
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("nnopt")
WANDB_ID_FILE = "wandb_run_id.txt"
#: overrides that do not make a job different (kept out of W&B tags)
_PLUMBING = ("paths.", "hydra.", "callbacks.progress_bar", "callbacks.model_summary", "resume=")


# -- W&B environment -------------------------------------------------------------------------------------
def has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def configure_wandb(online: bool, run_dir: str | Path) -> str:
    """Set W&B's environment before it starts; returns the mode. A user's WANDB_MODE=disabled is respected."""
    wandb_dir = Path(run_dir)
    wandb_dir.mkdir(parents=True, exist_ok=True)
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        os.environ[var] = str(wandb_dir / ("" if var == "WANDB_DIR" else f".{var.lower()[6:-4]}"))
    os.environ.setdefault("WANDB_SILENT", "true")
    if os.environ.get("WANDB_MODE") == "disabled":
        return "disabled"
    mode = "offline"
    if online:
        if has_wandb_key():
            mode = "online"
        else:
            log.warning("logger online=true but no W&B API key is configured: logging offline")
    os.environ["WANDB_MODE"] = mode
    return mode


def finish_wandb() -> None:
    """End the W&B run so the next job of a multirun starts its own."""
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()


def _is_wandb(target: str) -> bool:
    try:
        from hydra.utils import get_class
        from pytorch_lightning.loggers import WandbLogger

        return issubclass(get_class(target), WandbLogger)
    except Exception:  # noqa: BLE001 - an unknown target is reported by instantiate itself
        return False


# -- multirun and resume ---------------------------------------------------------------------------------
def _multirun_hydra() -> Any:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return HydraConfig.get()


def sweep_name(sweep_dir: str | Path) -> str:
    path = Path(sweep_dir)
    return f"{path.parent.parent.name}/{path.name}" if path.parent.name == "multiruns" else path.name


def wandb_sweep_args(tags: list[str] | None = None) -> dict[str, Any]:
    """In a multirun: W&B group = the sweep's name, tags = run tags + the job's overrides (W&B: <= 64 chars)."""
    hydra = _multirun_hydra()
    if hydra is None:
        return {}
    overrides = [o for o in hydra.overrides.task if not o.lstrip("+~").startswith(_PLUMBING)]
    merged = list(dict.fromkeys([*(tags or []), *overrides]))
    return {"group": sweep_name(hydra.sweep.dir), "tags": [t[:64] for t in merged]}


def wandb_resume_args(run_dir: str | Path, resuming: bool, node: dict[str, Any] | None = None) -> dict[str, Any]:
    """W&B run id kept in the run dir: a resumed run continues the same W&B run. An `id` set in the config wins."""
    from pytorch_lightning.utilities import rank_zero_only

    if (node or {}).get("id"):
        return {}
    path = Path(run_dir) / WANDB_ID_FILE
    if resuming and path.is_file() and path.read_text().strip():
        return {"id": path.read_text().strip(), "resume": "allow"}
    if rank_zero_only.rank != 0:
        return {}
    run_id = uuid.uuid4().hex[:8]  # W&B's own id format: 8 lower-case alphanumerics
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return {"id": run_id}


# -- building --------------------------------------------------------------------------------------------
def build_loggers(cfg: DictConfig, resuming: bool = False) -> list[Any]:
    """Instantiate every `logger.<name>` node (null nodes are skipped); see the module docstring."""
    from nnopt.build import instantiate

    loggers = []
    for node in (cfg.get("logger") or {}).values():
        if node is None:
            continue
        node = OmegaConf.to_container(node, resolve=True)
        online = bool(node.pop("online", False))
        if _is_wandb(str(node.get("_target_", ""))):
            configure_wandb(online, cfg.paths.output_dir)
            node.update(wandb_sweep_args(node.get("tags")))
            node.update(wandb_resume_args(cfg.paths.output_dir, resuming, node))
        loggers.append(instantiate(node, _convert_="all"))
    return loggers


def log_final_summary(loggers: list[Any], summary: dict[str, Any]) -> None:
    """Hand the final numbers to loggers that keep a run summary (W&B)."""
    from pytorch_lightning.loggers import WandbLogger

    numeric = {k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update({f"summary/{k}": v for k, v in numeric.items()})


def log_report_to_wandb(config: DictConfig, sweep_dir: Path, paths: list[Path]) -> None:
    """When the sweep logs to W&B: its report as a table plus an artifact, in the sweep's group."""
    nodes = [n for n in (config.get("logger") or {}).values() if n is not None and _is_wandb(str(n.get("_target_")))]
    if not nodes:
        return
    node = nodes[0]
    if configure_wandb(bool(node.get("online", False)), sweep_dir) == "disabled":
        return
    import wandb

    name = sweep_name(sweep_dir)
    run = wandb.init(project=node.get("project", "nnopt"), entity=node.get("entity"), group=name, job_type="report",
                     name=f"report {name}", dir=str(sweep_dir), reinit="finish_previous")  # fmt: skip
    with (sweep_dir / "report.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    run.log({"sweep/report": wandb.Table(columns=rows[0], data=rows[1:])})
    artifact = wandb.Artifact(f"report-{sweep_dir.name}", type="sweep-report")
    for path in paths:
        if path.is_file():
            artifact.add_file(str(path))
    run.log_artifact(artifact)
    run.finish()
