"""Model compression as callbacks: gradual pruning, quantization (QAT, PTQ), distillation, fine-tuning.

Each callback owns one concern, keeps its resumable state in `state_dict`, and hands the model the summary
measures with `TaskModule.set_deploy_net` (e.g. the converted int8 model).
"""

from __future__ import annotations

import pytorch_lightning as pl

from nnopt._compat import raise_min_epochs, restart_best_tracking

__all__ = ["keep_training_until", "restart_best_tracking"]


def keep_training_until(trainer: pl.Trainer, epoch: int) -> None:
    """Early stopping may not end the run before `epoch` has been trained (the compression needs it)."""
    raise_min_epochs(trainer, epoch + 1)
