"""Lightning's LearningRateMonitor, made a no-op for runs without a logger.

It is a default callback (lr and momentum/beta1 curves of every run), but Lightning's version raises at train start
when the trainer has no logger, which would make `logger=none` fail. With a schedule the curves are logged under the
scheduler's name (`nnopt.optim.schedules.LR_KEY`, `MOMENTUM_KEY`); with a constant lr under Lightning's default
`lr-<Optimizer>`.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import LearningRateMonitor
from typing_extensions import override


class LRMonitor(LearningRateMonitor):
    """`LearningRateMonitor` that does nothing when the trainer has no logger (there is nowhere to log to).

    Args:
        logging_interval: "step", "epoch" or None (each scheduler's own interval), as in Lightning.
        log_momentum: also log momentum (SGD) or beta1 (Adam-style optimizers).
        log_weight_decay: also log the weight decay.
    """

    def __init__(
        self, logging_interval: str | None = "step", log_momentum: bool = True, log_weight_decay: bool = False
    ) -> None:
        super().__init__(
            logging_interval=logging_interval, log_momentum=log_momentum, log_weight_decay=log_weight_decay
        )

    @override
    def on_train_start(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.loggers:
            super().on_train_start(trainer, *args, **kwargs)

    @override
    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.loggers:
            super().on_train_batch_start(trainer, *args, **kwargs)

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.loggers:
            super().on_train_epoch_start(trainer, *args, **kwargs)
