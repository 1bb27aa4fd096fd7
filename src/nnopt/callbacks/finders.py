"""Lightning's batch-size finder and LR range test, writing their results into the run dir."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import BatchSizeFinder, LearningRateFinder
from typing_extensions import override

from nnopt._compat import set_batch_size_finder_start
from nnopt.errors import ConfigError

log = logging.getLogger("nnopt")


class LRRangeTest(LearningRateFinder):
    """LR range test at fit start; saves `lr_find.png` and `lr_find.json` and (optionally) applies the suggestion.

    Args:
        output_dir: where rank 0 writes `lr_find.png` (loss against LR) and `lr_find.json`.
        apply: train from the suggested LR (the optimizer and its schedule are built again from it).
        **kwargs: passed to Lightning's :class:`~pytorch_lightning.callbacks.LearningRateFinder`
            (`min_lr`, `max_lr`, `num_training_steps`, `mode`, `early_stop_threshold`).
    """

    def __init__(self, output_dir: str, apply: bool = True, **kwargs) -> None:
        super().__init__(update_attr=False, **kwargs)
        self.output_dir, self.apply = Path(output_dir), apply
        self.num_training_steps = int(kwargs.get("num_training_steps", 100))  # Lightning's default

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        run_steps = trainer.estimated_stepping_batches
        if self.num_training_steps > run_steps:  # the test would stop early and suggest a meaningless lr
            raise ConfigError(
                f"callbacks.lr_finder.num_training_steps={self.num_training_steps} exceeds this run's "
                f"{int(run_steps)} training steps; lower it (e.g. {max(1, int(run_steps) // 2)}) or train longer"
            )
        self.lr_find(trainer, pl_module)
        result = self.optimal_lr
        if result is None:
            return
        suggestion = result.suggestion()
        if self.apply and suggestion:
            # configure_optimizers already ran (before on_fit_start): build the optimizer and its schedule again,
            # from the suggested lr, so a schedule's curve is relative to it (no step has been taken yet)
            pl_module.optimizer_factory = functools.partial(pl_module.optimizer_factory, lr=suggestion)
            trainer.strategy.setup_optimizers(trainer)
        if trainer.global_rank != 0:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        fig = result.plot(suggest=True)
        fig.savefig(self.output_dir / "lr_find.png", dpi=100)
        (self.output_dir / "lr_find.json").write_text(
            json.dumps({"suggestion": suggestion, "lr": result.results["lr"], "loss": result.results["loss"]})
        )
        log.info("LR range test suggests lr=%.3g (plot: %s)", suggestion, self.output_dir / "lr_find.png")


class LargestBatchSize(BatchSizeFinder):
    """Find the largest `data.batch_size` that fits, before training starts.

    Starts from the configured `data.batch_size` (Lightning's default start is 2), so with power scaling the
    result is `data.batch_size x 2^k` for the largest k < max_trials that fits.

    Args:
        output_dir: where rank 0 writes `batch_size_find.json`.
        init_val: start from this batch size instead of the configured `data.batch_size`.
        **kwargs: passed to Lightning's :class:`~pytorch_lightning.callbacks.BatchSizeFinder`
            (`mode`, `steps_per_trial`, `max_trials`, `margin`, `max_val`).
    """

    def __init__(self, output_dir: str, init_val: int | None = None, **kwargs) -> None:
        super().__init__(batch_arg_name="batch_size", init_val=init_val or 2, **kwargs)
        self.output_dir, self.start_from_config = Path(output_dir), init_val is None

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.start_from_config and trainer.datamodule is not None:
            set_batch_size_finder_start(self, trainer.datamodule.batch_size)
        super().on_fit_start(trainer, pl_module)
        if trainer.global_rank == 0 and self.optimal_batch_size:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "batch_size_find.json").write_text(json.dumps({"batch_size": self.optimal_batch_size}))
