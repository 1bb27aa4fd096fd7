"""Save a checkpoint when a run is interrupted by a signal (see :mod:`nnopt.interrupt`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from typing_extensions import override

from nnopt import interrupt


class SaveOnSignal(pl.Callback):
    """During fit a signal is only recorded; at the end of the current step this saves `path` and stops the run.

    `resume=true` then continues from that step. Lightning's own SIGTERM stop (`SIGTERMException`, raised after
    validation of the step) is covered too: the checkpoint is written in `on_exception` if not yet.

    Under SLURM the same path serves every signal that means "stop now, continue later": SIGTERM (scancel,
    scontrol requeue, preemption) and, in jobs of `hydra/launcher=slurm`, submitit's pre-timeout SIGUSR2 (the
    launcher then requeues the job; the requeued job runs with resume=true). SIGUSR1 under SLURM stays Lightning's
    (hpc_ckpt_N.ckpt + requeue). See README "Run on a SLURM cluster".

    Args:
        path: the checkpoint to write (the run's `checkpoints/last.ckpt`, which `resume=true` reads).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._saved = False

    def _save_and_stop(self, trainer: pl.Trainer) -> None:
        signum = interrupt.received()
        if signum is None:
            return
        self._save(trainer)
        raise interrupt.Interrupted(signum)

    def _save(self, trainer: pl.Trainer) -> None:
        if self._saved or trainer.sanity_checking:
            return
        self._saved = True
        trainer.save_checkpoint(self.path)
        if trainer.is_global_zero:
            interrupt.note_saved(str(self.path), trainer.global_step)

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._saved = False
        interrupt.defer(True)

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._save_and_stop(trainer)

    @override
    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.state.fn == "fit":
            self._save_and_stop(trainer)

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        interrupt.defer(False)
        if interrupt.signal_of(exception) is not None and trainer.state.fn == "fit":
            self._save(trainer)

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        interrupt.defer(False)
