"""Stop a run whose training loss stops being finite, naming the step, instead of training on NaNs."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from typing_extensions import override


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, step: int, value: float) -> None:
        super().__init__(f"training diverged: loss={value} at step {step}")
        self.step = step


class StopOnNonFiniteLoss(pl.Callback):
    """Raise :class:`TrainingDiverged` at the first non-finite training loss.

    The run then ends with `status: failed` and the step in its summary; in a sweep the other jobs go on.
    `check_every_n_steps` > 1 trades detection latency for fewer host syncs (the last batch of an epoch is
    always checked); a NaN persists in the weights, so a later check still sees it.

    Args:
        check_every_n_steps: check every n-th training batch (values < 1 mean every batch).

    Raises:
        TrainingDiverged: from `on_train_batch_end`, at the first checked batch whose loss is NaN or infinite.
    """

    def __init__(self, check_every_n_steps: int = 1) -> None:
        self.check_every_n_steps = max(1, int(check_every_n_steps))

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        losses = outputs.get("losses") if isinstance(outputs, dict) else None
        if isinstance(losses, torch.Tensor):  # fused steps (nnopt.fused): all of them, one host sync per group
            bad = (~torch.isfinite(losses.detach())).nonzero()
            if len(bad):
                first = int(bad[0, 0])
                raise TrainingDiverged(int(outputs["first_step"]) + first + 1, float(losses[first]))
            return
        # every n-th batch and the epoch's last one, so a short epoch cannot end on an unchecked NaN
        if batch_idx % self.check_every_n_steps and batch_idx + 1 != trainer.num_training_batches:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss.detach()).all()):
            raise TrainingDiverged(trainer.global_step, float(loss.detach().float().mean()))
