"""Hydra callback for multiruns: grid check, sweep resume, per-job threads, report and exit status at the end."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from nnopt import hydra_env
from nnopt.errors import NnoptError
from nnopt.metrics import summary as S
from nnopt.sweep import RESUME_KEY, find_previous_sweep
from nnopt.threads import job_threads
from nnopt.tracking import log_report_to_wandb

log = logging.getLogger("nnopt")
STAMP_RESOLVER = "${run_stamp:}"
MAX_EXIT = 100  # exit status = number of failed jobs, capped so it never wraps around 256


def empty_sweeps(config: DictConfig) -> list[str]:
    """Sweep overrides of the basic sweeper that expand to no value at all (an empty grid)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if "BasicSweeper" not in str(config.hydra.sweeper.get("_target_", "")):
        return []
    params = config.hydra.sweeper.get("params") or {}
    args = [*(f"{k}={v}" for k, v in params.items()), *hydra_env.task_overrides(config.hydra)]
    empty = []
    for override, arg in zip(OverridesParser.create().parse_overrides(args), args, strict=True):
        if not override.is_sweep_override():
            continue
        try:
            values = list(override.sweep_string_iterator())
        except Exception:  # interval sweeps only make sense to a search sweeper: Hydra reports them
            continue
        if not values:
            empty.append(arg)
    return empty


#: the running sweep (callback, its config): an interruption (nnopt.interrupt) writes the report of what finished
_active: tuple[SweepCallback, DictConfig] | None = None


def finish_interrupted_sweep() -> str | None:
    """After a signal stopped a sweep (its remaining jobs are not started): write the report of what finished.

    Returns what happened, for the one line the user gets (None: no sweep was running)."""
    global _active
    if _active is None:
        return None
    callback, config = _active
    _active = None
    sweep_dir = Path(str(config.hydra.sweep.dir))
    if not callback.report or not sweep_dir.is_dir():
        return f"sweep {sweep_dir} stopped"
    from nnopt.report import build_report, write_report

    try:
        write_report(build_report(sweep_dir, callback.sort_by))
    except NnoptError as exc:
        return f"sweep {sweep_dir} stopped, no report ({str(exc).splitlines()[0][:200]})"
    return f"sweep {sweep_dir} stopped, report written"


class SweepCallback(Callback):
    def __init__(self, report: bool = True, sort_by: str | None = None, exit_status: bool = True) -> None:
        self.report = report
        self.sort_by = sort_by
        self.exit_status = exit_status

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _active
        _active = (self, config)
        empty = empty_sweeps(config)
        if empty:
            from nnopt.errors import fail

            fail(f"empty grid: {', '.join(empty)} gives no value to run; nothing was launched")
        if config.get(RESUME_KEY):
            self._reenter(config)

    def _reenter(self, config: DictConfig) -> None:
        """`resume=true`: point ${run_stamp:} at the newest sweep dir started with the same overrides."""
        raw = OmegaConf.to_container(config.hydra.sweep, resolve=False)["dir"]
        if not str(raw).endswith(STAMP_RESOLVER):
            return  # an explicit hydra.sweep.dir is re-entered as it is
        current = Path(str(config.hydra.sweep.dir))
        if current.is_dir():
            return  # NNOPT_RUN_STAMP given (e.g. scripts/sbatch_sweep.sh): that sweep dir is re-entered
        parent = current.parent
        previous = find_previous_sweep(parent, hydra_env.task_overrides(config.hydra))
        if previous is None:
            log.warning("resume=true: no earlier sweep with these overrides under %s; starting a new one", parent)
            return
        from nnopt.config.resolvers import set_run_stamp

        set_run_stamp(previous.name)  # launcher workers inherit it, like every run stamp
        log.info("resume=true: continuing sweep %s (completed jobs are skipped)", previous)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        threads = job_threads(config)
        if threads:
            import torch

            torch.set_num_threads(threads)
            log.info("job %s: torch threads = %d (its share of the CPU cores)", config.hydra.job.num, threads)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global _active
        _active = None
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not self.report or not sweep_dir.is_dir():
            return
        from nnopt.report import build_report, write_report

        try:
            report = build_report(sweep_dir, self.sort_by)
            paths = write_report(report)
        except NnoptError as exc:
            log.error("sweep report not written: %s", exc)
            return
        log.info("sweep report: %s", sweep_dir / "report.md")
        log_report_to_wandb(config, sweep_dir, paths)
        failed = report.failed
        if failed:
            jobs = "; ".join(f"job {r.job}: {(r.summary or {}).get(S.ERROR) or r.status}" for r in failed[:5])
            print(f"nnopt: {len(failed)} of {len(report.runs)} jobs failed in {sweep_dir}: {jobs}", file=sys.stderr)
            if self.exit_status:
                sys.exit(min(len(failed), MAX_EXIT))
