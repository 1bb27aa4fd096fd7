"""What a run prints: a progress bar and a model table that fit an 80-column terminal and say something real."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import RichModelSummary, RichProgressBar
from typing_extensions import override

from nnopt._compat import compact_rich_bar_columns, rich_model_table

#: the bar's metrics for a module without a task: the training loss and nnopt's tasks' monitored metrics
BAR_METRICS = ("train/loss", "val/acc", "val/mse")
#: characters of bar (Lightning's is 40): room for "Epoch 10/15 120/120 0:00:03 • 0:00:00 loss: 0.873 val/acc: 0.819"
BAR_WIDTH = 10
#: Lightning's size columns (added with an example input): ~30 characters of shapes that do not fit 80 columns
_SIZE_COLUMNS = ("In sizes", "Out sizes")


class CompactProgressBar(RichProgressBar):
    """Lightning's rich bar showing only `metrics` that were logged, so one line fits an 80-column terminal.

    Every metric still reaches the loggers and summary.json; the bar is for watching a run, not reading results.
    `metrics` None: what the module's task shows (its training loss and monitored metric).
    """

    def __init__(self, metrics: Sequence[str] | None = None, speed: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = tuple(metrics) if metrics is not None else None
        self.speed = speed

    @override
    def configure_columns(self, trainer: pl.Trainer) -> list:
        """Without the it/s column unless `speed`: ~10 characters, and summary.json has the throughput."""
        return compact_rich_bar_columns(super().configure_columns(trainer), BAR_WIDTH, self.speed)

    @override
    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, int | str | float | dict]:
        task = getattr(pl_module, "task", None)
        wanted = self.metrics or (task.console_metrics() if hasattr(task, "console_metrics") else BAR_METRICS)
        shown = {k: v for k, v in super().get_metrics(trainer, pl_module).items() if k in wanted}
        return {k.removeprefix("train/"): v for k, v in shown.items()}  # "loss", beside "val/acc"


class ModelTable(RichModelSummary):
    """Lightning's rich model table with real FLOPs per sample.

    Lightning counts FLOPs (torch.utils.flop_counter.FlopCounterMode) only when the module has an
    `example_input_array`, and prints 0 otherwise: one zero input of the data's `input_shape` is lent to it for
    the table. The input/output size columns that come with it are left out to keep the table 80 columns wide.
    """

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        shape = getattr(trainer.datamodule, "input_shape", None) if trainer.datamodule is not None else None
        lend = pl_module.example_input_array is None and shape is not None
        if lend:
            pl_module.example_input_array = torch.zeros(1, *shape, device=pl_module.device)
        try:
            super().on_fit_start(trainer, pl_module)
        finally:
            if lend:
                pl_module.example_input_array = None

    @staticmethod
    @override
    def summarize(summary_data: list[tuple[str, list[str]]], *args: Any, **kwargs: Any) -> None:
        rich_model_table(summary_data, *args, leave_out=_SIZE_COLUMNS, **kwargs)
