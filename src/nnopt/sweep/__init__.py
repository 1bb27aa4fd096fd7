"""Sweep-level behaviour that single runs do not need.

- `SweepCallback` (a Hydra callback, set in conf/hydra/default.yaml): refuses an empty grid, re-enters the
  previous sweep dir on `resume=true`, limits each parallel job's CPU threads, and at the end writes the
  report and exits with the number of failed jobs.
- `completed_summary`: `resume=true` skips a job whose summary.json says completed.
- `wandb_sweep_args`: W&B `group` = the sweep, `tags` = the job's overrides.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from nnopt.metrics import summary as S

log = logging.getLogger("nnopt")
RESUME_KEY = "resume"
#: overrides that do not make a job different (kept out of W&B tags and sweep matching)
_PLUMBING = ("paths.", "hydra.", "callbacks.progress_bar", "callbacks.model_summary", f"{RESUME_KEY}=")


def _hydra() -> DictConfig | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return HydraConfig.get()


def completed_summary(cfg: DictConfig) -> dict[str, Any] | None:
    """With `resume=true` in a sweep: the job's summary if it already completed (skip it), else None.

    An unfinished job that left `checkpoints/last.ckpt` continues from it (unless ckpt_path is set).
    """
    if not cfg.get(RESUME_KEY) or _hydra() is None:
        return None
    out = Path(cfg.paths.output_dir)
    try:
        summary = S.read_summary(out)
    except S.SummaryError:
        summary = None
    if summary is not None and summary.get(S.STATUS) == S.COMPLETED:
        log.info("resume: job %s already completed, skipped", out)
        return summary
    last = out / "checkpoints" / "last.ckpt"
    if last.is_file() and not cfg.get("ckpt_path"):
        log.info("resume: job %s continues from %s", out, last)
        with open_dict(cfg):
            cfg.ckpt_path = str(last)
    return None


def sweep_name(sweep_dir: str | Path) -> str:
    path = Path(sweep_dir)
    return f"{path.parent.parent.name}/{path.name}" if path.parent.name == "multiruns" else path.name


def wandb_sweep_args(tags: list[str] | None = None) -> dict[str, Any]:
    """In a multirun: W&B group = the sweep's name, tags = run tags + the job's overrides (W&B: <= 64 chars)."""
    hydra = _hydra()
    if hydra is None:
        return {}
    overrides = [o for o in hydra.overrides.task if not o.lstrip("+~").startswith(_PLUMBING)]
    merged = list(dict.fromkeys([*(tags or []), *overrides]))
    return {"group": sweep_name(hydra.sweep.dir), "tags": [t[:64] for t in merged]}


def job_overrides(overrides: list[str]) -> list[str]:
    """The overrides that define a sweep (resume flag dropped), for matching a re-run with its old dir."""
    return [o for o in overrides if not o.lstrip("+~").startswith(f"{RESUME_KEY}=")]


def find_previous_sweep(parent: Path, overrides: list[str]) -> Path | None:
    """The newest sweep dir under `parent` started with the same overrides (ignoring `resume=`)."""
    wanted = job_overrides(overrides)
    for candidate in sorted(parent.glob("*/multirun.yaml"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            old = OmegaConf.load(candidate).hydra.overrides.task
        except Exception:  # a foreign or broken multirun.yaml is simply not a match
            continue
        if job_overrides(list(old)) == wanted:
            return candidate.parent
    return None


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
