"""Training time and throughput for summary.json, measured around the train loop only."""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl


class TrainThroughput(pl.Callback):
    """Sums wall time of training epochs and the samples this rank trained on.

    Lightning runs the end-of-epoch validation *inside* the training epoch (before `on_train_epoch_end`),
    so validation time is measured and subtracted: `time_s` is training only.
    """

    def __init__(self) -> None:
        self.time_s = 0.0
        self.samples = 0
        self._epoch_start: float | None = None
        self._val_start: float | None = None
        self._val_in_epoch = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start, self._val_in_epoch = time.perf_counter(), 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch: Any, batch_idx: int) -> None:
        self.samples += len(batch[0])

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._val_start is not None and self._epoch_start is not None:
            self._val_in_epoch += time.perf_counter() - self._val_start
        self._val_start = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._epoch_start is not None:
            self.time_s += time.perf_counter() - self._epoch_start - self._val_in_epoch
            self._epoch_start = None

    def samples_per_s(self, world_size: int = 1) -> float | None:
        return self.samples * world_size / self.time_s if self.time_s > 0 else None
