"""`checkpoints/last.ckpt` at the end of every training epoch: the run's newest state, whatever validation did."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Checkpoint
from typing_extensions import override

from nnopt.checkpoint import LAST_FILE


class LastCheckpoint(Checkpoint):
    """Write `last.ckpt` at the end of every training epoch (after validation, early stopping and the best-model
    checkpoint have updated their state, which the file then holds).

    Lightning's `ModelCheckpoint(save_last=True)` writes `last.ckpt` only beside a top-k save, so a run whose monitored
    metric stops improving would end with an older epoch there, and it versions the name (`last-v1.ckpt`) when
    another callback already wrote one. This callback owns the file: mid-epoch saves
    (:class:`~nnopt.callbacks.step_checkpoint.StepCheckpoint`) and the signal save write the same path, so it always
    holds the newest of them.

    A `Checkpoint` subclass so Lightning runs it after the other callbacks' epoch-end hooks (checkpoint callbacks go
    last, in their configured order): put it after `model_checkpoint`.

    Args:
        dirpath: folder of the checkpoint (the run's `checkpoints/`).
        filename: file name inside `dirpath`.
    """

    def __init__(self, dirpath: str, filename: str = LAST_FILE) -> None:
        self.dirpath = str(dirpath)
        self.path = Path(dirpath) / filename

    @property
    def last_model_path(self) -> str:
        """The file once any save wrote it (epoch end, mid-epoch, signal), else "" (Lightning's name for it)."""
        return str(self.path) if self.path.is_file() else ""

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run or trainer.state.fn != "fit":
            return
        trainer.save_checkpoint(self.path)
