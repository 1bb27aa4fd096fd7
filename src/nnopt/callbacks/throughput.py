"""Training time and throughput for summary.json, measured around the train loop only."""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl


class TrainThroughput(pl.Callback):
    """Sums wall time of training epochs (validation excluded) and the samples this rank trained on."""

    def __init__(self) -> None:
        self.time_s = 0.0
        self.samples = 0
        self._epoch_start: float | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch: Any, batch_idx: int) -> None:
        self.samples += len(batch[0])

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._epoch_start is not None:
            self.time_s += time.perf_counter() - self._epoch_start
            self._epoch_start = None

    def samples_per_s(self, world_size: int = 1) -> float | None:
        return self.samples * world_size / self.time_s if self.time_s > 0 else None
