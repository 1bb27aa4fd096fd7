"""A callback for cluster tests: each training step sleeps a little and writes the step count to
`<dir>/steps.txt` (default: the run's own dir, trainer.default_root_dir), so a test can signal, requeue or cancel
a SLURM job in the middle of its training."""

from __future__ import annotations

import time
from pathlib import Path

import pytorch_lightning as pl


class SlowSteps(pl.Callback):
    def __init__(self, seconds: float, dir: str | None = None) -> None:
        self.seconds, self.dir = float(seconds), dir

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        time.sleep(self.seconds)
        if trainer.is_global_zero:
            path = Path(self.dir or trainer.default_root_dir) / "steps.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{trainer.global_step}\n")
