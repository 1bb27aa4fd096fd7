"""Mid-epoch checkpoints for kill/preemption recovery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from typing_extensions import override

from nnopt.checkpoint import LAST_FILE
from nnopt.errors import require


class StepCheckpoint(pl.Callback):
    """Write `last.ckpt` every `every_n_train_steps` optimizer steps, so a kill -9 loses at most that many steps.

    The torch RNG state travels in this callback's state, so dropout draws after a resume are the ones the
    uninterrupted run would have drawn; the data order resumes via TensorBatches' own state.

    Args:
        dirpath: folder of the checkpoint (the run's `checkpoints/`).
        every_n_train_steps: steps between saves; 0 leaves only LastCheckpoint's epoch-end `last.ckpt`.
        filename: file name inside `dirpath` (the file :class:`~nnopt.callbacks.last_checkpoint.LastCheckpoint`
            writes at epoch ends: one `last.ckpt`, the newest state).

    Raises:
        ConfigError: `every_n_train_steps` is not an integer >= 0.
    """

    def __init__(self, dirpath: str, every_n_train_steps: int = 0, filename: str = LAST_FILE) -> None:
        ok = isinstance(every_n_train_steps, int) and not isinstance(every_n_train_steps, bool)
        require(
            ok and every_n_train_steps >= 0,
            "callbacks.step_checkpoint.every_n_train_steps",
            every_n_train_steps,
            "an integer >= 0",
        )
        self.path = Path(dirpath) / filename
        self.every = every_n_train_steps
        self._rng: torch.Tensor | None = None

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.every and trainer.global_step % self.every == 0 and not trainer.sanity_checking:
            trainer.save_checkpoint(self.path)

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._rng is not None:
            torch.set_rng_state(self._rng)
            self._rng = None

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"torch_rng": torch.get_rng_state()}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        rng = state_dict.get("torch_rng")
        self._rng = rng if isinstance(rng, torch.Tensor) else None
