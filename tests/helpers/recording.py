"""A test-only callback that records a module's parameters during a run (weight-averaging tests)."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch


class RecordWeights(pl.Callback):
    """Saves to `path`: the parameters at the start of each training epoch (`epoch_starts`), after each training
    step (`steps`) and at the end of fit (`final`: what the run tests and exports), as {name: tensor} dicts."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.epoch_starts: list[dict[str, torch.Tensor]] = []
        self.steps: list[dict[str, torch.Tensor]] = []

    @staticmethod
    def _snapshot(pl_module: pl.LightningModule) -> dict[str, torch.Tensor]:
        return {name: p.detach().clone() for name, p in pl_module.named_parameters()}

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epoch_starts.append(self._snapshot(pl_module))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        self.steps.append(self._snapshot(pl_module))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        record = {"epoch_starts": self.epoch_starts, "steps": self.steps, "final": self._snapshot(pl_module)}
        torch.save(record, self.path)
