"""Epoch timer injected into another project's Lightning run (`scripts/bench.py --template-dir`).

Standalone on purpose: the bench copies this file next to the other project and adds
`+callbacks.nnopt_timer._target_=nnopt_template_timer.EpochTimer` to its command line, so it must import nothing
from nnopt and must subclass the Callback of whichever Lightning package (`lightning` or `pytorch_lightning`) that
project uses. Same clock as nnopt's `EpochTimer`: `train_s` runs from the epoch's start to the start of validation.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from typing_extensions import override  # a Lightning dependency: present wherever this runs

try:
    from lightning.pytorch import Callback
except ImportError:  # the project uses the standalone pytorch_lightning package
    from pytorch_lightning import Callback


class EpochTimer(Callback):
    """Writes `[{"train_s", "epoch_s"}, ...]` to `path` after every training epoch."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.epochs: list[dict[str, float]] = []
        self._start: float | None = None
        self._train_end: float | None = None

    @override
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._start, self._train_end = time.perf_counter(), None

    @override
    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if self._start is not None and self._train_end is None and not trainer.sanity_checking:
            self._train_end = time.perf_counter()

    @override
    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self._start is None:
            return
        end = time.perf_counter()
        self.epochs.append({"train_s": (self._train_end or end) - self._start, "epoch_s": end - self._start})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.epochs))
        self._start = None
