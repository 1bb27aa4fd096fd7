"""One run, as data: validate -> build -> fit/test -> summary.json. Shared by train and eval."""

from __future__ import annotations

import logging
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.utilities import rank_zero_only

from nnopt import hydra_env, interrupt, rundir, secrets
from nnopt.callbacks.throughput import TrainThroughput
from nnopt.errors import NnoptError
from nnopt.metrics import efficiency
from nnopt.metrics import names as N
from nnopt.metrics import summary as S
from nnopt.metrics.plots import confusion_matrix_png
from nnopt.tasks import spec as tasks
from nnopt.tasks.module import TaskModule
from nnopt.tracking import finish_wandb, log_final_summary

log = logging.getLogger("nnopt")
#: groups whose chosen option name goes into summary["choices"]
CHOICE_GROUPS = (
    "data",
    "model",
    "optimizer",
    "schedule",
    "compression",
    "trainer",
    "callbacks",
    "logger",
    "experiment",
    "debug",
    "hparams_search",
)


def choices(cfg: DictConfig) -> dict[str, Any]:
    """The chosen option of every config group (from Hydra when it ran us, else from `name` keys)."""
    picked = hydra_env.chosen_options()
    if picked:
        return picked
    return {g: cfg[g].get("name") for g in CHOICE_GROUPS if isinstance(cfg.get(g), DictConfig) and "name" in cfg[g]}


def _tags(cfg: DictConfig) -> list[Any]:
    """The run's tags as stored (a value that is not a list is the schema's to refuse, after the summary exists)."""
    tags = secrets.run_config(cfg).get("tags")
    return list(tags) if isinstance(tags, (list, tuple)) else []


def base_summary(cfg: DictConfig) -> dict[str, Any]:
    summary = S.empty_summary()
    summary.update(
        {
            S.SEED: cfg.get("seed"),
            S.CHOICES: choices(cfg),
            S.TASK_NAME: cfg.get("task_name"),
            S.TAGS: _tags(cfg),  # ${oc.env:...} tags stay unresolved
            S.OVERRIDES: hydra_env.overrides(),
            S.RUN_DIR: str(Path(cfg.paths.output_dir).resolve()),
            S.STARTED_AT: time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
    )
    return summary


def _metric(metrics: dict[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    return float(value) if value is not None else None


def test_and_measure(
    trainer: pl.Trainer, lit: TaskModule, dm: pl.LightningDataModule, cfg: DictConfig, ckpt_path: str | None
) -> dict[str, Any]:
    """Test `lit` (optionally from a checkpoint), save the confusion matrix, measure efficiency."""
    out: dict[str, Any] = {}
    if ckpt_path == "best" and getattr(trainer.checkpoint_callback, "best_model_path", ""):
        # the best file by name: "best" would warn that last_checkpoint is a second checkpoint callback
        ckpt_path = trainer.checkpoint_callback.best_model_path
    results = trainer.test(lit, datamodule=dm, ckpt_path=ckpt_path, verbose=False)
    metrics = results[0] if results else {}
    for name in (*N.CLASS_METRICS, N.LOSS):
        out[N.key(N.TEST, name)] = _metric(metrics, N.key(N.TEST, name))
    for key in metrics:  # extra test keys callbacks log, e.g. test/acc_float beside an int8 model
        if key.startswith(f"{N.TEST}/") and key not in out:
            out[key] = _metric(metrics, key)
    confusion = getattr(lit, "confusion", None)  # classification only
    confusion = confusion.compute() if confusion is not None else None  # syncs across DDP ranks: all take part
    if trainer.is_global_zero:
        if confusion is not None:
            confusion_matrix_png(confusion, Path(cfg.paths.output_dir) / "confusion_matrix.png")
        eff = cfg.get("efficiency") or {}
        out.update(
            efficiency.measure(
                lit.deployable(), dm.input_shape, eff.get("latency_repeats", 20), eff.get("latency_warmup", 3)
            )
        )
    if confusion is not None:
        lit.confusion.reset()
    return out


def training_stats(trainer: pl.Trainer) -> dict[str, Any]:
    timer = next((c for c in trainer.callbacks if isinstance(c, TrainThroughput)), None)
    stats: dict[str, Any] = {
        S.TRAIN_EPOCHS: trainer.current_epoch,
        S.TRAIN_STEPS: trainer.global_step,
        S.TRAIN_PEAK_MEM: efficiency.peak_memory_mb(),
        S.TRAIN_WORLD_SIZE: trainer.world_size,
        S.TRAIN_THREADS: torch.get_num_threads(),
    }
    if timer is not None:
        stats[S.TRAIN_TIME] = timer.time_s
        stats[S.TRAIN_SAMPLES_PER_S] = timer.samples_per_s(trainer.world_size)
        stats[S.TRAIN_SAMPLES_RANK0] = timer.samples
    pruned = [cb.pruned_at for cb in trainer.callbacks if getattr(cb, "pruned_at", None) is not None]
    if pruned:  # an Optuna pruner stopped this trial (nnopt.sweep.optuna_pruning): status `pruned`, not a full run
        stats[S.PRUNED_AT] = pruned[0]
    ckpt_cb = trainer.checkpoint_callback
    if ckpt_cb is not None and getattr(ckpt_cb, "best_model_path", ""):
        stats[S.CKPT_BEST] = ckpt_cb.best_model_path
    # the newest state: LastCheckpoint's last.ckpt (mid-epoch and signal saves write the same file)
    last = [getattr(cb, "last_model_path", "") for cb in trainer.checkpoint_callbacks]
    last = [p for p in last if p and Path(p).is_file()]
    if last:
        stats[S.CKPT_LAST] = max(last, key=lambda p: Path(p).stat().st_mtime_ns)
    return stats


def report_summary(summary: dict[str, Any], loggers: list) -> None:
    """Hand the final numbers to the loggers, print a short table."""
    log_final_summary(loggers, summary)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"nnopt run: {summary.get(S.STATUS)}", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in (
        *tasks.of_summary(summary).report_keys(),
        S.PARAMS,
        S.SPARSITY,
        S.SIZE_BYTES,
        S.LATENCY_B1,
        S.LATENCY_B256,
        S.TRAIN_TIME,
        S.TRAIN_EPOCHS,
    ):
        value = summary.get(key)
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    Console(stderr=True).print(table)


def _detach_log_files(folder: Path) -> None:
    """Close logging file handlers writing into `folder` (Hydra's job log) before the folder is removed."""
    loggers = [
        logging.getLogger(),
        *(lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)),
    ]
    for logger in loggers:
        for handler in list(logger.handlers):
            if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).is_relative_to(folder):
                handler.close()
                logger.removeHandler(handler)


class RunRecorder:
    """Context manager: whatever happens inside, rank zero writes summary.json (atomically) at exit."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        secrets.use_config(cfg)  # the run's own secret variables (secrets.redact) before anything is written
        self.summary = base_summary(cfg)
        self.loggers: list = []
        #: set once every check passed and work starts: bad input before it changes nothing in an existing run dir
        self.checked = False

    def __enter__(self) -> RunRecorder:
        Path(self.cfg.paths.output_dir).mkdir(parents=True, exist_ok=True)
        self._fresh_dir = not (Path(self.cfg.paths.output_dir) / S.FILENAME).exists()
        return self

    def _discard_on_bad_input(self) -> bool:
        """A single run rejected for bad input leaves no run dir behind (a sweep keeps it for its report).

        Only a dir this run created and that holds nothing but Hydra's own files is removed.
        """
        if not hydra_env.is_single_run() or not self._fresh_dir:
            return False
        out = Path(self.cfg.paths.output_dir)
        if rank_zero_only.rank != 0 or not out.is_dir():
            return False
        # a dir the user had (hydra.run.dir=...) is never removed: only what this run added to it (nnopt.rundir)
        doomed = rundir.removable(out, {".hydra", f"{hydra_env.job_name()}.log"})
        if not doomed:
            return False
        _detach_log_files(out)
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        return True

    def _restore_on_bad_input(self) -> bool:
        """A resume refused for bad input leaves the run dir it was pointed at as it was (summary, Hydra's files)."""
        out = Path(self.cfg.paths.output_dir)
        if not hydra_env.is_single_run() or self._fresh_dir or rank_zero_only.rank != 0:
            return False
        _detach_log_files(out)
        return rundir.restore_refused(out)

    def __exit__(self, exc_type, exc, tb) -> None:
        signum = interrupt.signal_of(exc)
        if exc is None:
            self.summary[S.STATUS] = S.PRUNED if self.summary.get(S.PRUNED_AT) is not None else S.COMPLETED
        elif signum is not None:  # SIGTERM/SIGINT/SIGUSR1: resumable from the checkpoint saved at the signal
            self.summary[S.STATUS] = S.INTERRUPTED
            self.summary[S.ERROR] = f"interrupted by {signal.Signals(signum).name}"
            self.summary[S.CKPT_LAST] = interrupt.saved_to()
            self.summary[S.TRAIN_STEPS] = interrupt.saved_step()
        else:
            self.summary[S.STATUS] = S.FAILED
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self.summary[S.ERROR] = f"{type(exc).__name__}: {first}"
            if getattr(exc, "step", None) is not None:  # e.g. TrainingDiverged
                self.summary[S.FAILED_AT_STEP] = exc.step
        self.summary[S.FINISHED_AT] = time.strftime("%Y-%m-%dT%H:%M:%S")
        try:
            if isinstance(exc, NnoptError) and self._discard_on_bad_input():
                return
            if isinstance(exc, NnoptError) and not self.checked and self._restore_on_bad_input():
                return
            if rank_zero_only.rank == 0:
                path = S.write_summary(self.cfg.paths.output_dir, self.summary)
                log.info("summary: %s", path)
                if exc is None:
                    report_summary(self.summary, self.loggers)
        finally:
            finish_wandb()
