"""Learning-rate schedules as callbacks that drive `torch.optim.lr_scheduler` classes per optimizer step.

A callback (not `configure_optimizers`) so any optimizer composes with any schedule from the command line.
Total steps come from the trainer (`estimated_stepping_batches`: epochs x batches / accumulation, per rank),
never from the user. The scheduler's state travels in the callback's checkpoint state, so resume is exact.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import StochasticWeightAveraging
from torch.optim import Optimizer
from torch.optim import lr_scheduler as S

from nnopt.errors import ConfigError, require
from nnopt.metrics import names as N

LR_KEY = N.key(N.TRAIN, "lr")
#: keys a plateau schedule may watch: logged once per validation epoch
PLATEAU_MONITORS = tuple(N.key(N.VAL, m) for m in (*N.CLASS_METRICS, N.LOSS))


def _check(name: str, value: float, ok: bool, allowed: str) -> None:
    require(ok, f"schedule.{name}", value, allowed)


class LRSchedule(pl.Callback):
    """Base: builds the scheduler at train start, steps it after every optimizer step, logs `train/lr`."""

    per_step = True

    def __init__(self, log_every_n_steps: int | None = None) -> None:
        self.log_every_n_steps = log_every_n_steps
        self.scheduler: S.LRScheduler | S.ReduceLROnPlateau | None = None
        self._saved_state: dict[str, Any] | None = None
        self.base_lrs: list[float] = []  # the optimizer's lrs before any scheduling (kept across resume)
        self._last_step = -1
        self.total_steps = 0

    def make(self, optimizer: Optimizer, total_steps: int, steps_per_epoch: int) -> Any:
        raise NotImplementedError

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Lightning's SWA installs its own SWALR scheduler at swa_epoch_start: two schedulers would fight.
        if any(isinstance(cb, StochasticWeightAveraging) for cb in trainer.callbacks):
            raise ConfigError(f"schedule={self.option_name} cannot be combined with callbacks.swa, which sets its own "
                              "lr (swa_lrs); use schedule=constant with swa")  # fmt: skip

    @property
    def option_name(self) -> str:
        return type(self).__name__.removesuffix("Schedule").lower()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        total = trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ConfigError(f"schedule={self.option_name} needs a finite training length; "
                              "set trainer.max_epochs or trainer.max_steps")  # fmt: skip
        self.total_steps = total = int(total)
        # optimizer steps per epoch on this rank (the DDP sampler already split the batches between ranks)
        steps_per_epoch = max(1, math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches))
        optimizer = trainer.optimizers[0]
        groups = optimizer.param_groups
        # On resume the optimizer's groups (lr, momentum/betas, ...) were just restored from the checkpoint; building
        # a scheduler overwrites them, so keep them to put back once the scheduler's own state is loaded.
        restored = [{k: v for k, v in g.items() if k != "params"} for g in groups] if self._saved_state else None
        if self._saved_state is None or not self.base_lrs:  # fresh run: relative to the configured lr
            self.base_lrs = [g["lr"] for g in groups]
        for group, lr in zip(groups, self.base_lrs, strict=True):
            group["lr"] = group["initial_lr"] = lr
        self.scheduler = self.make(optimizer, total, steps_per_epoch)
        if self._saved_state is not None:
            self.scheduler.load_state_dict(self._saved_state)
            for group, saved in zip(groups, restored, strict=True):
                group.update(saved)
        self._last_step = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.scheduler is None or trainer.global_step == self._last_step:
            return  # no optimizer step happened (gradient accumulation)
        self._last_step = trainer.global_step
        if self.per_step and trainer.global_step < self.total_steps:  # the last step's successor lr is never used
            self.scheduler.step()
        self._log(trainer, pl_module)

    def _log(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Log the lr the next step will use, at the step count reached so far."""
        every = self.log_every_n_steps or trainer.log_every_n_steps
        if trainer.global_step % every == 0 or trainer.global_step == 1:
            pl_module.log(LR_KEY, trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)

    def state_dict(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler.state_dict(), "base_lrs": self.base_lrs} if self.scheduler else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._saved_state = state_dict.get("scheduler")
        self.base_lrs = list(state_dict.get("base_lrs", []))


class StepSchedule(LRSchedule):
    """Multiply the lr by `gamma` every `every_epochs` epochs (counted in steps, so it works mid-epoch too)."""

    def __init__(self, every_epochs: float = 2, gamma: float = 0.5, **kw: Any) -> None:
        super().__init__(**kw)
        _check("every_epochs", every_epochs, every_epochs > 0, "a number > 0")
        _check("gamma", gamma, 0 < gamma <= 1, "a number in (0, 1]")
        self.every_epochs, self.gamma = every_epochs, gamma

    def make(self, optimizer, total_steps, steps_per_epoch):
        return S.StepLR(optimizer, step_size=max(1, round(self.every_epochs * steps_per_epoch)), gamma=self.gamma)


class ExponentialSchedule(LRSchedule):
    """Exponential decay per step, reaching `final_ratio` x lr at the last step."""

    def __init__(self, final_ratio: float = 0.01, **kw: Any) -> None:
        super().__init__(**kw)
        _check("final_ratio", final_ratio, 0 < final_ratio <= 1, "a number in (0, 1]")
        self.final_ratio = final_ratio

    def make(self, optimizer, total_steps, steps_per_epoch):
        return S.ExponentialLR(optimizer, gamma=self.final_ratio ** (1 / max(1, total_steps)))


class CosineSchedule(LRSchedule):
    """Cosine annealing from lr to `min_ratio` x lr over all steps, optionally after a linear warm-up."""

    def __init__(self, min_ratio: float = 0.0, warmup: float = 0.0, warmup_start_ratio: float = 0.01, **kw: Any):
        super().__init__(**kw)
        _check("min_ratio", min_ratio, 0 <= min_ratio < 1, "a number in [0, 1)")
        _check("warmup", warmup, warmup >= 0, "a fraction of training in [0, 1) or a step count >= 1")
        _check("warmup_start_ratio", warmup_start_ratio, 0 < warmup_start_ratio <= 1, "a number in (0, 1]")
        self.min_ratio, self.warmup, self.warmup_start_ratio = min_ratio, warmup, warmup_start_ratio

    def warmup_steps(self, total_steps: int) -> int:
        return int(round(self.warmup * total_steps)) if self.warmup < 1 else int(self.warmup)

    def make(self, optimizer, total_steps, steps_per_epoch):
        warm = self.warmup_steps(total_steps)
        if warm >= total_steps:
            raise ConfigError(
                f"schedule.warmup={self.warmup} gives {warm} warm-up steps but training has only {total_steps}; "
                "use a fraction below 1 or fewer steps"
            )
        eta_min = [lr * self.min_ratio for lr in self.base_lrs]
        cosine = S.CosineAnnealingLR(optimizer, T_max=total_steps - warm, eta_min=eta_min[0])
        if warm == 0:
            return cosine
        ramp = S.LinearLR(optimizer, start_factor=self.warmup_start_ratio, end_factor=1.0, total_iters=warm)
        return S.SequentialLR(optimizer, [ramp, cosine], milestones=[warm])


class OneCycleSchedule(LRSchedule):
    """Smith's 1cycle: lr rises to `max_ratio` x lr at `pct_start` of training, then anneals far below it.

    Momentum (SGD) or beta1 (Adam-style) cycles inversely when the optimizer has one.
    """

    def __init__(self, max_ratio: float = 10.0, pct_start: float = 0.3, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, anneal_strategy: str = "cos", **kw: Any) -> None:  # fmt: skip
        super().__init__(**kw)
        _check("max_ratio", max_ratio, max_ratio > 0, "a number > 0")
        _check("pct_start", pct_start, 0 < pct_start < 1, "a number in (0, 1)")
        _check("div_factor", div_factor, div_factor >= 1, "a number >= 1")
        if anneal_strategy not in ("cos", "linear"):
            raise ConfigError(
                f"schedule.anneal_strategy={anneal_strategy!r} is not allowed; choose one of: cos, linear"
            )
        self.max_ratio, self.pct_start = max_ratio, pct_start
        self.div_factor, self.final_div_factor, self.anneal_strategy = div_factor, final_div_factor, anneal_strategy

    def make(self, optimizer, total_steps, steps_per_epoch):
        defaults = optimizer.defaults
        cycle = bool(defaults.get("momentum")) or "betas" in defaults
        return S.OneCycleLR(
            optimizer,
            max_lr=[lr * self.max_ratio for lr in self.base_lrs],
            total_steps=total_steps,
            pct_start=self.pct_start,
            div_factor=self.div_factor,
            final_div_factor=self.final_div_factor,
            anneal_strategy=self.anneal_strategy,
            cycle_momentum=cycle,
        )


class PlateauSchedule(LRSchedule):
    """Multiply the lr by `factor` when `monitor` has not improved for `patience` validation epochs."""

    per_step = False

    def __init__(self, monitor: str = N.VAL_LOSS, mode: str = "min", factor: float = 0.5, patience: int = 2,
                 min_lr: float = 0.0, **kw: Any) -> None:  # fmt: skip
        super().__init__(**kw)
        if monitor not in PLATEAU_MONITORS:
            raise ConfigError(
                f"schedule.monitor={monitor!r} is never logged; choose one of: {', '.join(PLATEAU_MONITORS)}"
            )
        if mode not in ("min", "max"):
            raise ConfigError(f"schedule.mode={mode!r} is not allowed; choose one of: min, max")
        _check("factor", factor, 0 < factor < 1, "a number in (0, 1)")
        _check("patience", patience, patience >= 0, "an integer >= 0")
        self.monitor, self.mode, self.factor, self.patience, self.min_lr = monitor, mode, factor, patience, min_lr

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "fit" and trainer.limit_val_batches == 0:
            raise ConfigError(f"schedule.monitor={self.monitor!r} is never logged: validation is off "
                              "(trainer.limit_val_batches=0); enable validation or pick another schedule")  # fmt: skip

    def make(self, optimizer, total_steps, steps_per_epoch):
        return S.ReduceLROnPlateau(optimizer, mode=self.mode, factor=self.factor, patience=self.patience,
                                   min_lr=self.min_lr)  # fmt: skip

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if self.scheduler is not None and value is not None and not trainer.sanity_checking:
            self.scheduler.step(float(value))
