"""Training time and throughput for summary.json, measured around the train loop only."""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
from typing_extensions import override

from nnopt.fused import batch_samples


class TrainThroughput(pl.Callback):
    """Sums wall time of training epochs and the samples this rank trained on.

    Lightning runs the end-of-epoch validation *inside* the training epoch (before `on_train_epoch_end`),
    so validation time is measured and subtracted: `time_s` is training only. No arguments; read `time_s`,
    `samples` and :meth:`samples_per_s` after `fit`.
    """

    def __init__(self) -> None:
        self.time_s = 0.0
        self.samples = 0
        self._epoch_start: float | None = None
        self._val_start: float | None = None
        self._val_in_epoch = 0.0

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start, self._val_in_epoch = time.perf_counter(), 0.0

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.samples += batch_samples(batch)  # a plain batch, or a group of them (trainer.fused_steps)

    @override
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._val_start = time.perf_counter()

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._val_start is not None and self._epoch_start is not None:
            self._val_in_epoch += time.perf_counter() - self._val_start
        self._val_start = None

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._epoch_start is not None:
            self.time_s += time.perf_counter() - self._epoch_start - self._val_in_epoch
            self._epoch_start = None

    def samples_per_s(self, world_size: int = 1) -> float | None:
        """All ranks' training samples per second of training time (None before an epoch has ended)."""
        return self.samples * world_size / self.time_s if self.time_s > 0 else None
