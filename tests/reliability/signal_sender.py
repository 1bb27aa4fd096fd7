"""A callback that sends its own process a signal at a given training step (for the signal tests, via the CLI)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from typing_extensions import override


class SendSignal(pl.Callback):
    """`os.kill(own pid, signum)` when training step `at_step` starts; with `once`, only while that file is absent;
    with `job`, only in that job of a multirun."""

    def __init__(self, signum: int, at_step: int, once: str | None = None, job: int | None = None) -> None:
        self.signum, self.at_step, self.once, self.job = signum, at_step, once, job

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step != self.at_step or (self.once and Path(self.once).exists()):
            return
        if self.job is not None:
            from hydra.core.hydra_config import HydraConfig

            if HydraConfig.get().job.num != self.job:
                return
        if self.once:
            Path(self.once).touch()
        os.kill(os.getpid(), self.signum)
