"""Sweep-level behaviour that single runs do not need.

- `SweepCallback` (a Hydra callback, set in conf/hydra/default.yaml): refuses an empty grid, re-enters the
  previous sweep dir on `resume=true`, limits each parallel job's CPU threads, and at the end writes the
  report and exits with the number of failed jobs.
- `completed_summary`: `resume=true` skips a job whose summary.json says completed (an unfinished job continues from
  its own `last.ckpt`: :func:`nnopt.checkpoint.resolve_resume`).
W&B grouping of a sweep's runs is in :mod:`nnopt.tracking`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nnopt import hydra_env
from nnopt.metrics import summary as S

log = logging.getLogger("nnopt")
RESUME_KEY = "resume"


def completed_summary(cfg: DictConfig) -> dict[str, Any] | None:
    """With `resume=true` in a sweep: the job's summary if it already completed (skip it), else None."""
    if not cfg.get(RESUME_KEY) or not hydra_env.is_multirun():
        return None
    out = Path(cfg.paths.output_dir)
    try:
        summary = S.read_summary(out)
    except S.SummaryError:
        return None
    if summary.get(S.STATUS) == S.COMPLETED:
        log.info("resume: job %s already completed, skipped", out)
        return summary
    return None


def job_overrides(overrides: list[str]) -> list[str]:
    """The overrides that define a sweep (resume flag dropped), for matching a re-run with its old dir."""
    return [o for o in overrides if not o.lstrip("+~").startswith(f"{RESUME_KEY}=")]


def find_previous_sweep(parent: Path, overrides: list[str]) -> Path | None:
    """The newest sweep dir under `parent` started with the same overrides (ignoring `resume=`)."""
    wanted = job_overrides(overrides)
    for candidate in sorted(parent.glob("*/multirun.yaml"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            old = hydra_env.task_overrides(OmegaConf.load(candidate).hydra)
        except Exception:  # a foreign or broken multirun.yaml is simply not a match
            continue
        if job_overrides(list(old)) == wanted:
            return candidate.parent
    return None
