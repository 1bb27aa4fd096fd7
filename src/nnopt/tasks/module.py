"""`TaskModule`: the LightningModule mechanics every task shares.

A task defines its training criterion and how outputs become metric inputs and predictions; the optimizer and LR
schedule, extra loss terms (L1, distillation), fused steps, the compiled and the deployed network, validation and
test steps, the best-so-far value and checkpoint rebuilding are the same for every task and live here once.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MaxMetric, MinMetric
from typing_extensions import override

from nnopt import _compat, fused
from nnopt.checkpoint import CONFIG_KEY, DATA_KEY
from nnopt.metrics import names as N
from nnopt.tasks.spec import Task

#: checkpoint key of `TaskModule.best_from_epoch`
BEST_FROM_KEY = "nnopt_best_from_epoch"

#: extra loss terms callbacks may add: fn(module, x, outputs, y) -> scalar tensor
LossTerm = Callable[["TaskModule", torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class TaskModule(pl.LightningModule):
    """Training and evaluation mechanics shared by every task.

    A subclass sets `task` (its :class:`nnopt.tasks.spec.Task`), creates `stage_metrics` (a ModuleDict of val/test
    metric collections keyed by the task's metric names) and defines `criterion`; it may override `eval_loss`,
    `metric_inputs`, `predictions`, `distillation_loss` or `training_step` itself (fused steps then use K=1 unless
    it keeps `train_loss` as the place the loss is computed).

    `loss_terms` lets callbacks (L1, distillation, ...) add to the training loss without subclassing;
    `task_weight` scales the task's own criterion (distillation moves weight to its own term). The compiled network
    and the deployed network (e.g. the int8 model a quantization callback converts) are kept outside the module tree,
    so checkpoints hold the plain float weights.

    Args:
        net: the network; any `nn.Module`.
        optimizer: a factory `optimizer(params=...)` (Hydra `_partial_`).
        run_config: the resolved run config, stored in every checkpoint (`nnopt.checkpoint.CONFIG_KEY`).
        schedule: an `nnopt.optim.schedules` factory, or None for a constant lr; Lightning steps it.
        l1: weight of an L1 penalty on weight matrices/kernels.
        fusion: `trainer.fused_steps` > 1: several optimizer steps per training_step (see nnopt.fused).
    """

    task: ClassVar[Task]

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        run_config: dict[str, Any] | None = None,
        schedule: Any = None,
        l1: float = 0.0,
        fusion: fused.Fusion | None = None,
    ) -> None:
        super().__init__()
        self.fusion = fusion or fused.Fusion()  # trainer.fused_steps (nnopt.fused)
        self.automatic_optimization = not self.fusion.enabled
        self.net = net
        self.optimizer_factory = optimizer
        self.schedule = schedule
        self.run_config = run_config or {}
        self.data_info: dict[str, Any] = {}  # input shape, classes, standardisation (nnopt.tasks.rebuild.data_info)
        self.task_weight = 1.0
        self.loss_terms: dict[str, LossTerm] = {}
        if l1 > 0:
            self.loss_terms["l1"] = l1_penalty(l1)
        object.__setattr__(self, "_compiled_net", None)  # not submodules: see the class docstring
        object.__setattr__(self, "_deploy_net", None)
        self.best_so_far = MaxMetric() if self.task.larger_is_better else MinMetric()  # val/<best>_best
        #: the first epoch whose model is the delivered one (compression moves it: see `restart_best`)
        self.best_from_epoch = 0

    @classmethod
    def config_kwargs(cls, cfg: Any, shapes: Any) -> dict[str, Any]:
        """Constructor arguments this task takes from the run config and the data (`shapes`: the data module, or
        what a checkpoint stores of it), besides the common ones and its own `task` config's keys."""
        return {}

    # -- networks ---------------------------------------------------------------------------------------
    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._compiled_net(x) if self._compiled_net is not None else self.net(x)

    def compile_net(self, example: torch.Tensor) -> bool:
        """torch.compile the inner network (compiling the LightningModule breaks `self.log` on this Lightning/torch
        pair). Returns False, with a warning, where compilation is unavailable."""
        try:
            compiled = torch.compile(self.net)
            compiled(example)  # compile now: a missing compiler fails here, not in the first training step
        except Exception as exc:  # noqa: BLE001 - any backend failure means "run eagerly"
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            warnings.warn(f"compile=true: torch.compile is unavailable here ({first}); training eagerly", stacklevel=2)
            return False
        object.__setattr__(self, "_compiled_net", compiled)
        return True

    def drop_compiled_net(self) -> None:
        """Forget the compiled graph (after `net` was replaced, e.g. by QAT's fake-quantized model)."""
        object.__setattr__(self, "_compiled_net", None)

    def set_deploy_net(self, model: nn.Module | None) -> None:
        """The model the summary tests, measures and exports instead of `net` (e.g. the converted int8 model)."""
        object.__setattr__(self, "_deploy_net", model)

    @property
    def deploy_net(self) -> nn.Module | None:
        return self._deploy_net

    def deployable(self) -> nn.Module:
        return self._deploy_net if self._deploy_net is not None else self.net

    def eval_forward(self, x: torch.Tensor, stage: str) -> torch.Tensor:
        """Outputs for evaluation: the test split runs the deployed model (int8 kernels are CPU kernels)."""
        if stage == N.TEST and self._deploy_net is not None:
            return self._deploy_net(x.cpu()).to(x.device)
        return self(x)

    # -- training ---------------------------------------------------------------------------------------
    def criterion(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The task's training loss."""
        raise NotImplementedError

    def on_train_outputs(self, outputs: torch.Tensor, y: torch.Tensor) -> None:
        """Per-step bookkeeping of training outputs (e.g. running accuracy counts); none by default."""

    @override
    def training_step(self, batch: Any, batch_idx: int) -> Any:
        if isinstance(batch, fused.BatchGroup):  # trainer.fused_steps > 1
            out = fused.training_step(self, batch, batch_idx)
            if out["logged"] or batch_idx == 0:  # the progress bar's loss, as often as without fusion
                self.log(N.TRAIN_LOSS, out["loss"], on_step=True, on_epoch=False, prog_bar=True, logger=False)
            return out
        x, y = batch
        return self.train_loss(x, y, self._log_this_step())

    def train_loss(self, x: torch.Tensor, y: torch.Tensor, log_now: bool) -> torch.Tensor:
        """One batch's training loss (criterion + loss terms), logged when `log_now`; fused steps log by hand."""
        outputs = self(x)
        loss = self.criterion(outputs, y)
        if self.task_weight != 1.0:  # not a multiplication by 1: one autograd node less per step
            loss = self.task_weight * loss
        logged = {}
        for name, term in self.loss_terms.items():
            value = term(self, x, outputs, y)
            if log_now:
                logged[N.key(N.TRAIN, f"loss_{name}")] = value
            loss = loss + value
        self.on_train_outputs(outputs.detach(), y)
        if log_now:
            logged[N.TRAIN_LOSS] = loss
            if self.fusion.enabled:
                self._fused_logged = {k: v.detach() for k, v in logged.items()}
            else:
                for key, value in logged.items():
                    self.log(key, value, on_step=True, on_epoch=False, prog_bar=key == N.TRAIN_LOSS, batch_size=len(y))
        return loss

    def log_fused_step(self, step: int) -> None:
        """Fused steps: the values of optimizer step `step` straight to the loggers, at the step number (and with
        the `epoch` key) Lightning would have used; Lightning itself only logs once per training_step."""
        values = {k: float(v) for k, v in getattr(self, "_fused_logged", {}).items()}
        values["epoch"] = self.current_epoch
        for logger in self.loggers:
            logger.log_metrics(values, step=step)

    @override
    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        fused.clip(self, optimizer)  # fused steps only: the Trainer's gradient_clip_val, after every callback's

    def _log_this_step(self) -> bool:
        """Per-step values reach loggers only every `log_every_n_steps`; skipping `self.log` on the other steps
        saves ~0.3 ms/step, which is most of the framework cost for small models."""
        trainer = _compat.attached_trainer(self)
        if trainer is None:
            return True
        return (self.global_step + 1) % trainer.log_every_n_steps == 0 or self.global_step == 0

    @override
    def on_train_epoch_end(self) -> None:
        if self.fusion.enabled:  # Lightning steps no scheduler under manual optimisation
            fused.step_plateau_schedulers(self)

    # -- evaluation ---------------------------------------------------------------------------------------
    def eval_loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """`val/loss` and `test/loss`: the criterion without training-only terms (e.g. label smoothing)."""
        return self.criterion(outputs, y)

    def metric_inputs(self, outputs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What `stage_metrics` are updated with (e.g. predictions in the target's original units)."""
        return outputs, y

    def predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        """What `predict_step` returns for a batch's outputs (class probabilities, values in original units)."""
        return outputs

    def on_eval_outputs(self, stage: str, outputs: torch.Tensor, y: torch.Tensor) -> None:
        """Per-batch hook on val/test outputs (the classifier's confusion matrix); none by default."""

    def distillation_loss(self, outputs: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
        """How far the student's outputs are from a teacher's (compression=distill); mean squared error by default."""
        return torch.nn.functional.mse_loss(outputs, teacher)

    @torch.no_grad()
    def evaluate_outputs(self, pairs: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
        """The task's `best` metric over (outputs, targets) pairs, computed as the test step computes it (same
        metric objects and units): what sensitivity analysis and export verification compare."""
        metrics = self.stage_metrics[N.TEST].clone()
        metrics.reset()
        for outputs, y in pairs:
            metrics.update(*self.metric_inputs(outputs, y))
        return float(metrics.compute()[self.task.best])

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        outputs = self.eval_forward(x, stage)
        loss = self.eval_loss(outputs, y)
        self.stage_metrics[stage].update(*self.metric_inputs(outputs, y))
        self.on_eval_outputs(stage, outputs, y)
        self.log(N.key(stage, N.LOSS), loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=len(y))
        return loss

    @override
    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._eval_step(batch, N.VAL)

    @override
    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._eval_step(batch, N.TEST)

    @override
    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """`predictions` for `x` or `(x, y)` batches, from the deployed model when there is one."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.predictions(self.eval_forward(x, N.TEST))

    def _log_stage_metrics(self, stage: str) -> dict[str, torch.Tensor]:
        values = self.stage_metrics[stage].compute()  # torchmetrics syncs across DDP ranks here
        self.stage_metrics[stage].reset()
        self.log_dict({N.key(stage, k): v for k, v in values.items()}, prog_bar=stage == N.VAL)
        return values

    def restart_best(self) -> None:
        """From this epoch on the model is the one delivered (pruning at its target, QAT running): the best-so-far
        value forgets earlier epochs, whose model is not the delivered one. Compression callbacks call it."""
        self.best_so_far.reset()
        self.best_from_epoch = self.current_epoch

    @override
    def on_validation_epoch_end(self) -> None:
        values = self._log_stage_metrics(N.VAL)
        if not self.trainer.sanity_checking:
            self.best_so_far.update(values[self.task.best])
            self.log(self.task.best_key, self.best_so_far.compute())

    @override
    def on_test_epoch_end(self) -> None:
        self._log_stage_metrics(N.TEST)

    @override
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.schedule is None:
            return optimizer
        view = fused.schedule_view(self.trainer, self.fusion)  # fused steps: counted in optimizer steps
        return {"optimizer": optimizer, "lr_scheduler": self.schedule.lr_scheduler_config(optimizer, view)}

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The resolved run config and the input contract travel with the weights: `nnopt-eval`, `nnopt-export` and
        # `load_from_checkpoint` rebuild the model without loading any data.
        checkpoint[CONFIG_KEY] = self.run_config
        checkpoint[DATA_KEY] = self.data_info
        checkpoint[BEST_FROM_KEY] = self.best_from_epoch

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        value = checkpoint.get(BEST_FROM_KEY, 0)
        self.best_from_epoch = value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0

    @classmethod
    @override
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: str | Path,
        map_location: Any = None,
        hparams_file: Any = None,
        strict: bool | None = None,
        weights_only: bool | None = None,
        *,
        trusted: Sequence[str] = (),
        config_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> TaskModule:
        """Rebuild network, optimizer factory and module from an nnopt checkpoint alone, with its weights, in eval mode.

        The stored config is untrusted data: only `_target_`s named by nnopt's configs (or the running Hydra app's
        search path) are built, plus those listed in `trusted` (e.g. your own model's class path) or named by the
        configs in `config_dir` (your own conf/). The file is always read with `weights_only=True`; `hparams_file`
        and extra keyword arguments are not supported. See :func:`nnopt.tasks.rebuild.from_checkpoint`.

        Raises:
            CheckpointError: not an nnopt checkpoint, a target nobody chose, or weights that do not fit.
        """
        from nnopt.errors import CheckpointError
        from nnopt.tasks import rebuild

        key = "checkpoint_path"
        if hparams_file is not None or kwargs or weights_only is False:
            raise CheckpointError(
                f"{key}={checkpoint_path}: nnopt checkpoints load from the file alone "
                "(weights_only, no hparams_file or extra arguments)"
            )
        module = rebuild.from_checkpoint(
            checkpoint_path, key, trusted=trusted, config_dir=config_dir, strict=True if strict is None else strict
        ).module
        if not isinstance(module, cls):
            raise CheckpointError(f"{key}={checkpoint_path} holds a {type(module).__name__}, not a {cls.__name__}")
        if isinstance(map_location, (str, torch.device)):
            module = module.to(map_location)
        return module.eval()


def l1_penalty(weight: float) -> LossTerm:
    """L1 on weight matrices/kernels (not biases or norm scales)."""

    def term(module: TaskModule, x, outputs, y) -> torch.Tensor:
        return weight * sum(p.abs().sum() for n, p in module.net.named_parameters() if p.dim() > 1)

    return term
