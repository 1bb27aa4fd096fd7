"""Learning-rate schedules as factories: each builds one `torch.optim.lr_scheduler` for Lightning to step.

`Classifier.configure_optimizers` returns `schedule.lr_scheduler_config(optimizer, trainer)`, so Lightning steps the
scheduler (after every optimizer step, or after validation for `plateau`), saves and restores its state in
checkpoints and lets `StochasticWeightAveraging` swap it for SWALR. Total steps come from the trainer
(`estimated_stepping_batches`: epochs x batches / accumulation, per rank), never from the user. The lr and momentum
curves are logged by `LearningRateMonitor` under `LR_KEY` / `MOMENTUM_KEY`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
from torch.optim import Optimizer, lr_scheduler

from nnopt.errors import ConfigError, require, require_choice
from nnopt.metrics import names as N

#: the scheduler's name: LearningRateMonitor logs the lr under it and the momentum/beta1 under `MOMENTUM_KEY`
LR_KEY = N.key(N.TRAIN, "lr")
MOMENTUM_KEY = f"{LR_KEY}-momentum"
#: keys a plateau schedule may watch: logged once per validation epoch (classification or regression)
PLATEAU_MONITORS = tuple(N.key(N.VAL, m) for m in (*N.CLASS_METRICS, *N.REGRESSION_METRICS, N.LOSS))


class LRSchedule:
    """Base factory: `make` builds the scheduler, `lr_scheduler_config` hands it to Lightning (stepped per step)."""

    @property
    def option_name(self) -> str:
        return type(self).__name__.removesuffix("Schedule").lower()

    def make(self, optimizer: Optimizer, total_steps: int, steps_per_epoch: int) -> Any:
        """The torch scheduler, relative to the optimizer's current (configured) lrs."""
        raise NotImplementedError

    def lr_scheduler_config(self, optimizer: Optimizer, trainer: pl.Trainer) -> dict[str, Any]:
        """Lightning's lr_scheduler dict for `configure_optimizers`."""
        total, per_epoch = self.training_steps(trainer)
        return {"scheduler": self.make(optimizer, total, per_epoch), "interval": "step", "frequency": 1, "name": LR_KEY}

    def training_steps(self, trainer: pl.Trainer) -> tuple[int, int]:
        """(optimizer steps in the whole run, optimizer steps per epoch or 0 for an unsized loader) on this rank.

        Lightning steps on the last batch of each epoch even mid-accumulation: ceil(batches / accumulation) per
        epoch, as `estimated_stepping_batches` counts them, so OneCycleLR ends exactly on the last step.

        Raises:
            ConfigError: the run has no finite length.
        """
        total = trainer.estimated_stepping_batches  # also sets up the train loader, so num_training_batches is known
        if not math.isfinite(total) or total < 1:
            raise ConfigError(
                f"schedule={self.option_name} needs a finite training length; "
                "set trainer.max_epochs (with a sized training loader) or trainer.max_steps"
            )
        batches = trainer.num_training_batches  # per rank: the DDP sampler already split the batches
        per_epoch = max(1, math.ceil(batches / trainer.accumulate_grad_batches)) if math.isfinite(batches) else 0
        return int(total), per_epoch


class StepSchedule(LRSchedule):
    """Multiply the lr by `gamma` every `every_epochs` epochs (counted in steps, so it works mid-epoch too)."""

    def __init__(self, every_epochs: float = 2, gamma: float = 0.5) -> None:
        require(every_epochs > 0, "schedule.every_epochs", every_epochs, "a number > 0")
        require(0 < gamma <= 1, "schedule.gamma", gamma, "a number in (0, 1]")
        self.every_epochs, self.gamma = every_epochs, gamma

    def make(self, optimizer: Optimizer, total_steps: int, steps_per_epoch: int) -> lr_scheduler.LRScheduler:
        if not steps_per_epoch:
            raise ConfigError(
                "schedule=step counts epochs, but the training loader has no length; use another schedule"
            )
        return lr_scheduler.StepLR(
            optimizer, step_size=max(1, round(self.every_epochs * steps_per_epoch)), gamma=self.gamma
        )


class ExponentialSchedule(LRSchedule):
    """Exponential decay per step, reaching `final_ratio` x lr after the last step."""

    def __init__(self, final_ratio: float = 0.01) -> None:
        require(0 < final_ratio <= 1, "schedule.final_ratio", final_ratio, "a number in (0, 1]")
        self.final_ratio = final_ratio

    def make(self, optimizer: Optimizer, total_steps: int, steps_per_epoch: int) -> lr_scheduler.LRScheduler:
        return lr_scheduler.ExponentialLR(optimizer, gamma=self.final_ratio ** (1 / max(1, total_steps)))


class CosineSchedule(LRSchedule):
    """Cosine annealing from lr to `min_ratio` x lr over all steps, optionally after a linear warm-up."""

    def __init__(self, min_ratio: float = 0.0, warmup: float = 0.0, warmup_start_ratio: float = 0.01) -> None:
        require(0 <= min_ratio < 1, "schedule.min_ratio", min_ratio, "a number in [0, 1)")
        require(warmup >= 0, "schedule.warmup", warmup, "a fraction of training in [0, 1) or a step count >= 1")
        require(0 < warmup_start_ratio <= 1, "schedule.warmup_start_ratio", warmup_start_ratio, "a number in (0, 1]")
        self.min_ratio, self.warmup, self.warmup_start_ratio = min_ratio, warmup, warmup_start_ratio

    def warmup_steps(self, total_steps: int) -> int:
        return int(round(self.warmup * total_steps)) if self.warmup < 1 else int(self.warmup)

    def make(self, optimizer: Optimizer, total_steps: int, steps_per_epoch: int) -> lr_scheduler.LRScheduler:
        warm = self.warmup_steps(total_steps)
        if warm >= total_steps:
            raise ConfigError(
                f"schedule.warmup={self.warmup} gives {warm} warm-up steps but training has only {total_steps}; "
                "use a fraction below 1 or fewer steps"
            )
        eta_min = optimizer.param_groups[0]["lr"] * self.min_ratio
        cosine = lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps - warm, eta_min=eta_min)
        if warm == 0:
            return cosine
        ramp = lr_scheduler.LinearLR(optimizer, start_factor=self.warmup_start_ratio, end_factor=1.0, total_iters=warm)
        return lr_scheduler.SequentialLR(optimizer, [ramp, cosine], milestones=[warm])


class OneCycleSchedule(LRSchedule):
    """Smith's 1cycle: lr rises to `max_ratio` x lr at `pct_start` of training, then anneals far below it.

    Momentum (SGD) or beta1 (Adam-style) cycles inversely when the optimizer has one.
    """

    def __init__(
        self,
        max_ratio: float = 10.0,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        anneal_strategy: str = "cos",
    ) -> None:
        require(max_ratio > 0, "schedule.max_ratio", max_ratio, "a number > 0")
        require(0 < pct_start < 1, "schedule.pct_start", pct_start, "a number in (0, 1)")
        require(div_factor >= 1, "schedule.div_factor", div_factor, "a number >= 1")
        require(final_div_factor > 0, "schedule.final_div_factor", final_div_factor, "a number > 0")
        require_choice("schedule.anneal_strategy", anneal_strategy, ("cos", "linear"))
        self.max_ratio, self.pct_start = max_ratio, pct_start
        self.div_factor, self.final_div_factor, self.anneal_strategy = div_factor, final_div_factor, anneal_strategy

    def make(self, optimizer: Optimizer, total_steps: int, steps_per_epoch: int) -> lr_scheduler.LRScheduler:
        defaults = optimizer.defaults
        # OneCycleLR raises if stepped past total_steps: Lightning steps it exactly once per optimizer step
        return lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[group["lr"] * self.max_ratio for group in optimizer.param_groups],
            total_steps=total_steps,
            pct_start=self.pct_start,
            div_factor=self.div_factor,
            final_div_factor=self.final_div_factor,
            anneal_strategy=self.anneal_strategy,
            cycle_momentum=bool(defaults.get("momentum")) or "betas" in defaults,
        )


class PlateauSchedule(LRSchedule):
    """Multiply the lr by `factor` when `monitor` has not improved for `patience` validation epochs."""

    def __init__(
        self, monitor: str = N.VAL_LOSS, mode: str = "min", factor: float = 0.5, patience: int = 2, min_lr: float = 0.0
    ) -> None:
        require_choice("schedule.monitor", monitor, PLATEAU_MONITORS, problem="is never logged")
        require_choice("schedule.mode", mode, ("min", "max"))
        require(0 < factor < 1, "schedule.factor", factor, "a number in (0, 1)")
        require(patience >= 0, "schedule.patience", patience, "an integer >= 0")
        require(min_lr >= 0, "schedule.min_lr", min_lr, "a number >= 0")
        self.monitor, self.mode, self.factor, self.patience, self.min_lr = monitor, mode, factor, patience, min_lr

    def make(self, optimizer: Optimizer, total_steps: int, steps_per_epoch: int) -> lr_scheduler.ReduceLROnPlateau:
        return lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=self.mode, factor=self.factor, patience=self.patience, min_lr=self.min_lr
        )

    def lr_scheduler_config(self, optimizer: Optimizer, trainer: pl.Trainer) -> dict[str, Any]:
        """Stepped by Lightning at the end of each epoch that validates, after validation.

        Raises:
            ConfigError: validation is off, so the monitored value is never logged.
        """
        if trainer.limit_val_batches == 0:
            raise ConfigError(
                f"schedule.monitor={self.monitor!r} is never logged: validation is off "
                "(trainer.limit_val_batches=0); enable validation or pick another schedule"
            )
        # epochs without validation have no fresh value: step only on the epochs that validate
        every = trainer.check_val_every_n_epoch or 1
        return {
            "scheduler": self.make(optimizer, 0, 0),
            "interval": "epoch",
            "frequency": every,
            "monitor": self.monitor,
            "strict": True,
            "reduce_on_plateau": True,
            "name": LR_KEY,
        }


class TorchSchedule(LRSchedule):
    """Any torch scheduler from config, for schedules that need no run length (a user's own `conf/schedule/*.yaml`).

    Args:
        scheduler: a `_partial_` scheduler class: called with the optimizer only.
        interval: "step" (after every optimizer step) or "epoch" (after every epoch), as in Lightning.
        frequency: step it every `frequency` intervals.
        monitor: the value a `ReduceLROnPlateau` watches (one of `PLATEAU_MONITORS`); only for that class.
    """

    def __init__(
        self,
        scheduler: Callable[[Optimizer], Any],
        interval: str = "step",
        frequency: int = 1,
        monitor: str | None = None,
    ) -> None:
        require(callable(scheduler), "schedule.scheduler", scheduler, "a scheduler class with _partial_: true")
        require_choice("schedule.interval", interval, ("step", "epoch"))
        require(isinstance(frequency, int) and frequency >= 1, "schedule.frequency", frequency, "an integer >= 1")
        if monitor is not None:
            require_choice("schedule.monitor", monitor, PLATEAU_MONITORS, problem="is never logged")
        self.scheduler, self.interval, self.frequency, self.monitor = scheduler, interval, frequency, monitor

    def lr_scheduler_config(self, optimizer: Optimizer, trainer: pl.Trainer) -> dict[str, Any]:
        """Lightning's lr_scheduler dict for `configure_optimizers`.

        Raises:
            ConfigError: a `ReduceLROnPlateau` without `monitor`.
        """
        scheduler = self.scheduler(optimizer)
        config = {"scheduler": scheduler, "interval": self.interval, "frequency": self.frequency, "name": LR_KEY}
        if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
            if self.monitor is None:
                raise ConfigError(
                    f"schedule.monitor is missing: a ReduceLROnPlateau watches one of: {', '.join(PLATEAU_MONITORS)}"
                )
            config["monitor"] = self.monitor
        return config
