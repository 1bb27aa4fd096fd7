"""`trainer.fused_steps: K`: one Lightning `training_step` performs K optimizer steps on K consecutive batches.

For small models Lightning's per-batch machinery (hooks of every callback, the automatic-optimization closure,
result collection, progress bar, logger connector) costs about as much as the step itself. Fusing K steps into
one `training_step` pays it once per K steps while each optimizer step stays what it was:

- the training data comes in groups of K x `accumulate_grad_batches` consecutive batches (`GroupedBatches`, the
  same order and the same resume state as the plain loader; from resident tensors each batch is gathered only when
  its step runs, so it is still in cache), run with manual optimisation: `manual_backward`
  (precision plugins, DDP gradient sync) and the Lightning optimizer's `step()` (so `on_before_optimizer_step`
  runs for every callback and the module, per step: gradient clipping, pruning's gradient masks); on one device in
  32/64-bit precision, where that is all they would do, `loss.backward()`, those hooks and the torch optimizer's
  `step()` directly (`plain_loop`);
- gradient accumulation and `gradient_clip_val` move from the Trainer (Lightning forbids them with manual
  optimisation) to this loop: the loss is divided by the accumulation count as Lightning does, and clipping runs
  in the module's `on_before_optimizer_step`, after every callback's, as in Lightning's own order;
- LR schedulers step here with Lightning's rule (interval `step`: after every optimizer step whose batch index
  + 1 is a multiple of `frequency`; interval `epoch`: after the epoch's last batch; plateau schedulers after the
  epoch's validation, with the monitored value);
- per-step values (`train/loss`, loss terms) reach the loggers every `log_every_n_steps` optimizer steps at the
  same step numbers as without fusion, and Lightning's step counter for loggers counts optimizer steps;
- callbacks that act after every optimizer step (`WeightAveraging`: EMA/SWA-style averaging) are called after
  each one; the divergence check sees all K losses and names the exact step.

Checkpoints are written between groups; `StepCheckpoint.every_n_train_steps` and `log_every_n_steps` are best
multiples of K. `fused_steps: 1` (the default) is Lightning's automatic optimisation, unchanged.
Length: fused steps must reproduce Lightning's per-step work (closure, clipping, accumulation, schedules, hooks)
exactly; it is one mechanism.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import WeightAveraging
from pytorch_lightning.plugins.precision import DoublePrecision, Precision
from pytorch_lightning.profilers import PassThroughProfiler
from pytorch_lightning.strategies import SingleDeviceStrategy
from pytorch_lightning.utilities.model_helpers import is_overridden

from nnopt import _compat
from nnopt.data.grouping import BatchGroup, GroupedBatches, batch_samples, gathered, plain_batches
from nnopt.errors import require

__all__ = ["BatchGroup", "FusedModule", "Fusion", "GroupedBatches", "batch_samples", "gathered", "plain_batches"]


class FusedModule(Protocol):
    """What the fused loop needs of a LightningModule (nnopt's `TaskModule` has it all): its fusion settings, the
    one place its training loss is computed, and Lightning's own module API."""

    fusion: Fusion
    trainer: pl.Trainer

    def train_loss(self, x: torch.Tensor, y: torch.Tensor, log_now: bool) -> torch.Tensor: ...

    def log_fused_step(self, step: int) -> None: ...

    def manual_backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None: ...

    def optimizers(self, use_pl_optimizer: bool = True) -> Any: ...

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None: ...

    def clip_gradients(
        self, optimizer: Any, gradient_clip_val: Any = None, gradient_clip_algorithm: Any = None
    ) -> None: ...

    def on_before_optimizer_step(self, optimizer: Any) -> None: ...


KEY = "fused_steps"
#: Trainer arguments Lightning refuses under manual optimisation: the fused loop applies them itself
MOVED = ("accumulate_grad_batches", "gradient_clip_val", "gradient_clip_algorithm")


@dataclass(frozen=True)
class Fusion:
    """How the training loop runs: `steps` optimizer steps per `training_step`, each over `accumulate` batches."""

    steps: int = 1
    accumulate: int = 1
    clip_val: float | None = None
    clip_algorithm: str | None = None
    batch_limit: int | None = None  # an integer `limit_train_batches`: batches (not groups) per epoch

    def grouping(self, batches: Iterable[Any]) -> GroupedBatches:
        """The training loader as this fusion runs it (InMemoryDataModule.train_grouping)."""
        return GroupedBatches(batches, self.group_size, self.batch_limit)

    @property
    def enabled(self) -> bool:
        return self.steps > 1

    @property
    def group_size(self) -> int:
        """Batches per `training_step`."""
        return self.steps * self.accumulate


def from_trainer(trainer: Mapping[str, Any] | None) -> Fusion:
    """The fusion a trainer config asks for (`trainer.fused_steps`, validated)."""
    trainer = trainer or {}
    steps = trainer.get(KEY, 1)
    ok = isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1
    require(ok, f"trainer.{KEY}", steps, "an integer >= 1 (1: one optimizer step per training_step)")
    limit = trainer.get("limit_train_batches")
    return Fusion(
        steps=steps,
        accumulate=int(trainer.get("accumulate_grad_batches") or 1),
        clip_val=trainer.get("gradient_clip_val"),
        clip_algorithm=trainer.get("gradient_clip_algorithm"),
        batch_limit=limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
    )


#: callbacks that drive their own training runs or schedulers per training_step: refused with fused steps
UNSUPPORTED_CALLBACKS = ("lr_finder", "batch_size_finder", "swa")


def check_callbacks(fusion: Fusion, callbacks: Mapping[str, Any] | None) -> None:
    """Refuse, in one line, callbacks whose semantics fused steps do not keep (before anything is built)."""
    if not fusion.enabled:
        return
    for name in UNSUPPORTED_CALLBACKS:
        node = (callbacks or {}).get(name)
        if node is not None and node.get("enabled", True):
            require(
                False,
                f"trainer.{KEY}",
                fusion.steps,
                f"1 while callbacks.{name} is enabled (it is not supported with fused steps)",
            )


def pop_trainer_options(node: dict[str, Any]) -> Fusion:
    """Pop `fused_steps` from a trainer node (not a Trainer argument); when fused, also the arguments the fused loop
    takes over from Lightning (MOVED). Returns the fusion."""
    fusion = from_trainer(node)
    node.pop(KEY, None)
    if fusion.enabled:
        for key in MOVED:
            node.pop(key, None)
        if fusion.batch_limit is not None:  # Lightning counts groups
            node["limit_train_batches"] = math.ceil(fusion.batch_limit / fusion.group_size)
    return fusion


def training_step(module: FusedModule, group: BatchGroup, batch_idx: int) -> dict[str, torch.Tensor]:
    """Run the group's optimizer steps (see the module docstring); returns `{"loss", "losses", "first_step",
    "logged"}`: the last step's loss, every step's loss, the global step of the first one, and whether any step
    reached the loggers."""
    trainer = module.trainer
    fusion: Fusion = module.fusion
    optimizer = module.optimizers()
    first_step = trainer.global_step
    first_batch = batch_idx * fusion.group_size  # index of the group's first batch in the epoch
    per_step_callbacks = [cb for cb in trainer.callbacks if isinstance(cb, WeightAveraging)]
    plain = plain_loop(module)
    backward = (lambda t: t.backward()) if plain else module.manual_backward
    if plain:  # the hooks Lightning's optimizer step would call, without its plugin layers (see _compat)
        hooked = [cb for cb in trainer.callbacks if is_overridden("on_before_optimizer_step", cb, pl.Callback)]
        raw = optimizer.optimizer

        def before_step() -> None:
            for callback in hooked:
                callback.on_before_optimizer_step(trainer, module, raw)
            module.on_before_optimizer_step(raw)

        step = lambda: _compat.plain_optimizer_step(optimizer, before_step)  # noqa: E731
    else:
        step = optimizer.step
    losses, logged = [], False
    for start in range(0, len(group), fusion.accumulate):
        window = group[start : start + fusion.accumulate]
        global_step = trainer.global_step
        log_now = (global_step + 1) % trainer.log_every_n_steps == 0
        optimizer.zero_grad()
        for batch in window:
            x, y = gathered(batch)
            loss = module.train_loss(x, y, log_now)
            backward(loss / fusion.accumulate if fusion.accumulate > 1 else loss)  # as Lightning divides
        step()
        losses.append(loss.detach())
        _step_schedulers(module, "step", first_batch + start + len(window) - 1)
        if log_now:
            module.log_fused_step(global_step)
            logged = True
        if start + fusion.accumulate < len(group):  # Lightning calls them itself after the group's last step
            for callback in per_step_callbacks:
                callback.on_train_batch_end(trainer, module, {"loss": losses[-1]}, window[-1], batch_idx)
    if batch_idx + 1 == trainer.num_training_batches:
        _step_schedulers(module, "epoch", None)
    _compat.count_logged_steps(trainer, len(losses) - 1)  # Lightning adds one per training_step itself
    return {
        "loss": losses[-1],
        "losses": torch.stack(losses),
        "first_step": torch.tensor(first_step),
        "logged": logged,
    }


class StepCounts:
    """The trainer as LR schedules see it (`nnopt.optim.schedules.training_steps`), counted in optimizer steps and
    plain batches rather than fused training_steps; everything else is the trainer's."""

    def __init__(self, trainer: Any, fusion: Fusion) -> None:
        self._real, self._fusion = trainer, fusion

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    @property
    def accumulate_grad_batches(self) -> int:
        return self._fusion.accumulate

    @property
    def num_training_batches(self) -> float:
        loader = self._real.train_dataloader
        return loader.num_batches if isinstance(loader, GroupedBatches) else self._real.num_training_batches

    @property
    def estimated_stepping_batches(self) -> float:
        """Lightning's rule (ceil(batches / accumulation) per epoch x epochs, capped by max_steps) in plain batches."""
        groups = self._real.estimated_stepping_batches  # sets the train loader up
        batches = self.num_training_batches
        if not math.isfinite(groups) or not math.isfinite(batches):
            return groups
        total = math.ceil(batches / self._fusion.accumulate) * max(self._real.max_epochs or 1, 1)
        return min(total, self._real.max_steps) if self._real.max_steps != -1 else total


def schedule_view(trainer: Any, fusion: Fusion) -> Any:
    """What `configure_optimizers` hands to a schedule: the trainer itself, or its StepCounts when fused."""
    return StepCounts(trainer, fusion) if fusion.enabled else trainer


def plain_loop(module: FusedModule) -> bool:
    """Whether `loss.backward()` and the torch optimizer's `step()` (after the `on_before_optimizer_step` hooks) are
    all `manual_backward` and Lightning's optimizer step would do: one device, plain 32/64-bit precision, no
    profiler, and neither a callback nor the module hooks into backward (saves ~0.1 ms per step)."""
    trainer = module.trainer
    if type(trainer.precision_plugin) not in (Precision, DoublePrecision):
        return False
    if not isinstance(trainer.strategy, SingleDeviceStrategy) or not isinstance(trainer.profiler, PassThroughProfiler):
        return False
    hooks = ("on_before_backward", "on_after_backward")
    if any(is_overridden(h, cb, pl.Callback) for cb in trainer.callbacks for h in hooks):
        return False
    return not any(is_overridden(h, module, pl.LightningModule) for h in (*hooks, "backward", "optimizer_step"))


def _step_schedulers(module: FusedModule, interval: str, batch_index: int | None) -> None:
    """Lightning's stepping rule for non-plateau schedulers (it skips them under manual optimisation)."""
    trainer = module.trainer
    for config in trainer.lr_scheduler_configs:
        if config.reduce_on_plateau or config.interval != interval:
            continue
        index = (batch_index if interval == "step" else trainer.current_epoch) + 1
        if index % config.frequency == 0:
            module.lr_scheduler_step(config.scheduler, None)


def step_plateau_schedulers(module: FusedModule) -> None:
    """After the epoch (validation included): plateau schedulers with their monitored value, as Lightning does."""
    trainer = module.trainer
    for config in trainer.lr_scheduler_configs:
        if not config.reduce_on_plateau or config.interval != "epoch":
            continue
        if (trainer.current_epoch + 1) % config.frequency:
            continue
        value = trainer.callback_metrics.get(config.monitor)
        if value is None:
            require(
                not config.strict,
                "schedule.monitor",
                config.monitor,
                f"a logged metric ({', '.join(sorted(trainer.callback_metrics))})",
            )
            continue
        module.lr_scheduler_step(config.scheduler, value)


def clip(module: FusedModule, optimizer: Any) -> None:
    """The Trainer's `gradient_clip_val`, applied by the fused loop (from the module's on_before_optimizer_step)."""
    fusion: Fusion = module.fusion
    if fusion.enabled and fusion.clip_val:
        module.clip_gradients(
            optimizer, gradient_clip_val=fusion.clip_val, gradient_clip_algorithm=fusion.clip_algorithm or "norm"
        )
