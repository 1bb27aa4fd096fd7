"""Gradual magnitude pruning with `torch.nn.utils.prune` on the Zhu & Gupta (2017) cubic schedule.

Two phases, so that a resumed run ends exactly at the target and QAT can follow on the sparse model:

* while the schedule runs, masks live in prune's reparametrisation (`weight = weight_orig * weight_mask`);
  each step prunes the *increment* from the current to the next cumulative target (prune's `amount` is
  relative to what is left, so an integer count of extra weights is passed: the result is exact);
* after the last step the pruning is made permanent (plain parameters with zeros) and the masks are kept
  enforced: gradients and weights are multiplied by them around every optimizer step. This survives module
  swaps (QAT keeps the same Parameter objects) and leaves checkpoints, export and the summary a plain model.

Checkpoints always hold plain weights (`weight = orig * mask`, which is what the model computes); the masks
and schedule position travel in this callback's state, so `nnopt-eval` loads a pruned checkpoint into a
fresh model and a resumed run re-applies the same masks.
Length: one callback whose two phases (scheduled masks, then permanent enforced masks) and resume state must stay
together.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn.utils import prune
from torch.optim import Optimizer
from typing_extensions import override

from nnopt.compression import keep_training_until, restart_best_tracking
from nnopt.compression.pruning_criteria import CRITERIA, PruningCriterion
from nnopt.errors import ConfigError, require, require_choice

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
SCOPES = ("global", "layer")
METHODS = ("unstructured", "structured")
SPARSITY_KEY = "prune/sparsity"


def zhu_gupta(t: int, s_f: float, s_i: float, t0: int, n: int, dt: int) -> float:
    """Cumulative sparsity at step t: s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3, clamped to [t0, t0 + n dt]."""
    if n == 0:
        return s_f if t >= t0 else 0.0
    if t < t0:
        return 0.0
    progress = min(1.0, (t - t0) / (n * dt))
    return s_f + (s_i - s_f) * (1.0 - progress) ** 3


class GradualPruning(pl.Callback):
    """Magnitude pruning at the start of epochs `start_epoch, start_epoch + frequency, ..., end_epoch`.

    Args:
        sparsity: final fraction of pruned weights, in [0, 1).
        start_epoch: epoch of the first pruning step.
        end_epoch: epoch of the last step (must be before `trainer.max_epochs`, so the remaining epochs fine-tune
            at the target); None: two thirds into training.
        frequency: epochs between pruning steps.
        initial_sparsity: sparsity of the first step (the cubic schedule's `s_i`), in [0, sparsity].
        scope: `global` ranks all pruned tensors together (L1); `layer` prunes each to the same fraction.
        method: `unstructured` (single weights) or `structured` (whole output channels/neurons by Ln norm, per
            layer, never the output layer).
        norm: the n of the Ln norm for `structured`.
        prune_bias: prune biases too (otherwise only weights).
        skip_last: leave the output layer dense.
        layer_sparsity: per-layer final sparsities, e.g. `{net.features.0: 0.5, net.classifier.0: 0.95}` (as
            `nnopt-sensitivity --target` proposes): each listed layer is pruned to its own fraction on the same
            schedule (unlisted layers to `sparsity`); unstructured, per layer.
        criterion: what each step prunes, a :class:`PruningCriterion` of your own (e.g. from a config's
            `criterion: {_target_: ...}`); None: the one `method` and `scope` name (:data:`CRITERIA`).

    Raises:
        ConfigError: on an argument out of range; at `setup`, when the schedule cannot end before
            `trainer.max_epochs`, the model has no prunable layer, or structured pruning would empty a layer.
    """

    def __init__(
        self,
        sparsity: float,
        start_epoch: int = 0,
        end_epoch: int | None = None,
        frequency: int = 1,
        initial_sparsity: float = 0.0,
        scope: str = "global",
        method: str = "unstructured",
        norm: float = 2.0,
        prune_bias: bool = False,
        skip_last: bool = False,
        layer_sparsity: dict[str, float] | None = None,
        criterion: PruningCriterion | None = None,
    ) -> None:
        ok = isinstance(sparsity, (int, float)) and 0 <= sparsity < 1
        require(ok, "compression.sparsity", sparsity, "a number in [0, 1)")
        ok = 0 <= initial_sparsity <= sparsity
        require(ok, "compression.initial_sparsity", initial_sparsity, f"in [0, {sparsity}]")
        ok = isinstance(start_epoch, int) and start_epoch >= 0
        require(ok, "compression.start_epoch", start_epoch, "an integer >= 0")
        ok = isinstance(frequency, int) and frequency >= 1
        require(ok, "compression.frequency", frequency, "an integer >= 1")
        require_choice("compression.scope", scope, SCOPES)
        for layer, value in (layer_sparsity or {}).items():
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1
            require(ok, f"compression.layer_sparsity.{layer}", value, "a number in [0, 1)")
        if layer_sparsity:
            require(sparsity > 0, "compression.sparsity", sparsity, "> 0 with layer_sparsity (the schedule's end)")
            require(method == "unstructured", "compression.method", method, "unstructured with layer_sparsity")
        require_choice("compression.method", method, METHODS)
        require(isinstance(norm, (int, float)) and norm > 0, "compression.norm", norm, "a number > 0")
        if end_epoch is not None:
            ok = isinstance(end_epoch, int) and end_epoch >= start_epoch
            require(ok, "compression.end_epoch", end_epoch, f"an integer >= start_epoch ({start_epoch})")
        self.sparsity, self.initial_sparsity = float(sparsity), float(initial_sparsity)
        self.start_epoch, self.end_epoch, self.frequency = start_epoch, end_epoch, frequency
        self.scope, self.method, self.norm = scope, method, norm
        self.layer_sparsity = {str(k): float(v) for k, v in (layer_sparsity or {}).items()}
        self.criterion = criterion or CRITERIA[(method, "layer" if self.layer_sparsity else scope)](norm)
        self.names = ("weight", "bias") if prune_bias else ("weight",)
        self.skip_last = skip_last or self.criterion.structured  # removing output classes is never wanted
        self.applied = 0.0  # cumulative sparsity reached so far
        self.permanent = False  # phase two: plain weights, masks enforced around optimizer steps
        self._fixed: list[tuple[nn.Parameter, torch.Tensor]] = []
        self._pending: dict[str, torch.Tensor] | None = None
        self._module: pl.LightningModule | None = None

    # -- schedule ---------------------------------------------------------------------------------
    @property
    def steps(self) -> int:
        return (self.end_epoch - self.start_epoch) // self.frequency

    @property
    def last_step_epoch(self) -> int:
        return self.start_epoch + self.steps * self.frequency

    def target_at(self, epoch: int) -> float:
        """Cumulative sparsity of the last scheduled step at or before `epoch`."""
        if epoch < self.start_epoch:
            return 0.0
        t = self.start_epoch + min(self.steps, (epoch - self.start_epoch) // self.frequency) * self.frequency
        return zhu_gupta(t, self.sparsity, self.initial_sparsity, self.start_epoch, self.steps, self.frequency)

    # -- targets ----------------------------------------------------------------------------------
    def _layers(self, pl_module: pl.LightningModule) -> list[tuple[str, nn.Module]]:
        layers = [(n, m) for n, m in pl_module.named_modules() if isinstance(m, PRUNABLE)]
        return layers[:-1] if self.skip_last else layers

    def _targets(self, pl_module: pl.LightningModule) -> list[tuple[str, nn.Module, str]]:
        return [(n, m, p) for n, m in self._layers(pl_module) for p in self.names if getattr(m, p, None) is not None]

    # -- hooks ------------------------------------------------------------------------------------
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._module = pl_module
        max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        if self.end_epoch is None:
            if max_epochs is None:
                raise ConfigError("compression.end_epoch must be set when trainer.max_epochs is unlimited")
            self.end_epoch = max(self.start_epoch, math.ceil(2 * max_epochs / 3) - 1)
        if max_epochs is not None and self.end_epoch >= max_epochs:
            raise ConfigError(
                f"compression.end_epoch={self.end_epoch} is not before trainer.max_epochs={max_epochs}: "
                "the pruning schedule would not reach its target sparsity"
            )
        keep_training_until(trainer, self.last_step_epoch)
        if not self._targets(pl_module):
            raise ConfigError(f"compression: the model has no {'/'.join(c.__name__ for c in PRUNABLE)} layer to prune")
        unknown = sorted(set(self.layer_sparsity) - {name for name, _ in self._layers(pl_module)})
        if unknown:
            have = ", ".join(name for name, _ in self._layers(pl_module))
            raise ConfigError(f"compression.layer_sparsity: {unknown[0]!r} is not a prunable layer; layers: {have}")
        for name, module in self._layers(pl_module):
            self.criterion.check(name, module, self.layer_sparsity.get(name, self.sparsity))

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Re-apply masks restored from a checkpoint (weights were loaded already, with zeros in place)."""
        if self._pending is None:
            return
        params = dict(pl_module.named_parameters())
        modules = dict(pl_module.named_modules())
        for key, mask in self._pending.items():
            mask = mask.to(device=pl_module.device)
            if self.permanent:
                self._fixed.append((params[key], mask.to(params[key].dtype)))
            else:
                module_name, _, pname = key.rpartition(".")
                prune.custom_from_mask(modules[module_name], pname, mask)
        self._pending = None

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        target = self.target_at(epoch)
        if target > self.applied and not self.permanent:
            self._prune_to(pl_module, target)
        if epoch >= self.last_step_epoch and not self.permanent:
            self._make_permanent(pl_module)
            restart_best_tracking(trainer)
            if hasattr(pl_module, "restart_best"):  # the best-so-far value counts the delivered model only
                pl_module.restart_best()
        pl_module.log(SPARSITY_KEY, self.applied, on_step=False, on_epoch=True)

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer
    ) -> None:
        for param, mask in self._fixed:
            if param.grad is not None:
                param.grad.mul_(mask)

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after every optimizer step, also when one training_step runs several (trainer.fused_steps)
        self._hooks = [opt.register_step_post_hook(self._reapply_masks) for opt in trainer.optimizers]

    @torch.no_grad()
    def _reapply_masks(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        for param, mask in self._fixed:
            param.mul_(mask)  # optimizers with decoupled updates (AdamW) could otherwise move pruned weights

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for hook in getattr(self, "_hooks", []):
            hook.remove()
        self._hooks = []
        if not self.permanent:  # stopped before the schedule ended: still hand over a plain model
            self._make_permanent(pl_module)

    @override
    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Store plain `weight = orig * mask` so any fresh model (nnopt-eval, export) loads the checkpoint."""
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.endswith("_orig")]:
            base = key[: -len("_orig")]
            mask = state.pop(f"{base}_mask", None)
            if mask is not None:
                state[base] = state.pop(key) * mask

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "permanent": self.permanent,
            "end_epoch": self.end_epoch,
            "masks": self._current_masks(),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.applied = float(state_dict.get("applied", 0.0))
        self.permanent = bool(state_dict.get("permanent", False))
        self.end_epoch = state_dict.get("end_epoch", self.end_epoch)
        self._pending = dict(state_dict.get("masks") or {}) or None
        self._fixed = []

    # -- mechanics --------------------------------------------------------------------------------
    def _current_masks(self) -> dict[str, torch.Tensor]:
        """Parameter name (as in a plain state_dict) -> boolean mask."""
        module = self._module
        if module is None:
            return {}
        if self.permanent:
            names = {id(p): n for n, p in module.named_parameters()}
            return {names[id(p)]: m.bool().cpu() for p, m in self._fixed if id(p) in names}
        return {
            f"{n}.{p}": getattr(m, f"{p}_mask").bool().cpu()
            for n, m in module.named_modules()
            for p in self.names
            if hasattr(m, f"{p}_mask")
        }

    @torch.no_grad()
    def _prune_to(self, pl_module: pl.LightningModule, target: float) -> None:
        progress = target / self.sparsity if self.sparsity else 0.0  # the schedule's fraction of the way
        layer_targets = {name: value * progress for name, value in self.layer_sparsity.items()}
        self.criterion.prune(self._targets(pl_module), target, layer_targets)
        self.applied = target

    def _make_permanent(self, pl_module: pl.LightningModule) -> None:
        """Plain parameters from here on; the masks move to `_fixed`, enforced around every optimizer step."""
        fixed = []
        for module in pl_module.modules():
            for pname in self.names:
                if hasattr(module, f"{pname}_mask"):
                    mask = getattr(module, f"{pname}_mask").detach().clone()
                    prune.remove(module, pname)
                    fixed.append((getattr(module, pname), mask))
        self._fixed = fixed
        self.permanent = True
