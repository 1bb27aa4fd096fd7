"""LightningModules around any plain `nn.Module`: shared training mechanics (`TaskModule`) and the classifier.

A task (classification, regression) defines its training criterion, its evaluation step and its metrics; the
optimizer and LR schedule, extra loss terms, the compiled and the deployed network are the same for every task.
Length: TaskModule's training mechanics (incl. fused steps' entry) and the Classifier belong together; the Regressor
lives in regression.py.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)
from typing_extensions import override

from nnopt import _compat, fused
from nnopt.checkpoint import CONFIG_KEY, DATA_KEY
from nnopt.metrics import names as N

#: extra loss terms callbacks may add: fn(module, x, outputs, y) -> scalar tensor
LossTerm = Callable[["TaskModule", torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class TaskModule(pl.LightningModule):
    """Training mechanics shared by every task.

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
        self.data_info: dict[str, Any] = {}  # input shape, classes, standardisation (nnopt.build.data_info)
        self.task_weight = 1.0
        self.loss_terms: dict[str, LossTerm] = {}
        if l1 > 0:
            self.loss_terms["l1"] = l1_penalty(l1)
        object.__setattr__(self, "_compiled_net", None)  # not submodules: see the class docstring
        object.__setattr__(self, "_deploy_net", None)

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

    # -- evaluation: each task defines `_eval_step(batch, stage)` and `stage_metrics` (a ModuleDict of val/test) --
    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        raise NotImplementedError

    @override
    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._eval_step(batch, N.VAL)

    @override
    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._eval_step(batch, N.TEST)

    def _log_stage_metrics(self, stage: str) -> dict[str, torch.Tensor]:
        values = self.stage_metrics[stage].compute()  # torchmetrics syncs across DDP ranks here
        self.stage_metrics[stage].reset()
        self.log_dict({N.key(stage, k): v for k, v in values.items()}, prog_bar=stage == N.VAL)
        return values

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
        and extra keyword arguments are not supported.

        Raises:
            CheckpointError: not an nnopt checkpoint, a target nobody chose, or weights that do not fit.
        """
        from types import SimpleNamespace

        from omegaconf import open_dict

        from nnopt import build, checkpoint
        from nnopt.config import resolvers
        from nnopt.errors import CheckpointError

        resolvers.register()  # stored configs keep `${oc.env:...}` (and nnopt's resolvers) unresolved
        key = "checkpoint_path"
        if hparams_file is not None or kwargs or weights_only is False:
            raise CheckpointError(
                f"{key}={checkpoint_path}: nnopt checkpoints load from the file alone "
                "(weights_only, no hparams_file or extra arguments)"
            )
        ckpt = checkpoint.load(checkpoint_path, key)
        from nnopt.config.targets import targets_in_dir

        own = [*trusted, *(targets_in_dir(config_dir) if config_dir is not None else ())]
        chosen = [{"_target_": str(t)} for t in own] or None
        cfg = checkpoint.trusted_config(ckpt, checkpoint_path, key, chosen=chosen)
        info = ckpt.get(DATA_KEY)
        if not isinstance(info, dict) or not info.get("input_shape") or not info.get("num_classes"):
            raise CheckpointError(
                f"{key}={checkpoint_path} stores no input shape (written by an older nnopt): "
                "evaluate it with nnopt-eval ckpt_path=..."
            )
        with open_dict(cfg):
            cfg.compile = False  # a loaded model runs eagerly; compile it yourself if you want
        shapes = SimpleNamespace(**{**info, "input_shape": tuple(info["input_shape"])})
        try:
            module = build.build_module(cfg, shapes)
        except Exception as exc:  # noqa: BLE001 - any failure here means the stored config does not rebuild
            raise CheckpointError(
                f"{key}={checkpoint_path}: the stored config does not rebuild "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
            ) from None
        if not isinstance(module, cls):
            raise CheckpointError(f"{key}={checkpoint_path} holds a {type(module).__name__}, not a {cls.__name__}")
        module.data_info = dict(info)
        try:
            module.load_state_dict(ckpt["state_dict"], strict=True if strict is None else strict)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{key}={checkpoint_path}: weights do not fit the rebuilt model ({str(exc).splitlines()[0][:200]})"
            ) from None
        if isinstance(map_location, (str, torch.device)):
            module = module.to(map_location)
        return module.eval()


def class_metrics(num_classes: int) -> MetricCollection:
    makers = {
        N.ACC: MulticlassAccuracy,
        N.PRECISION: MulticlassPrecision,
        N.RECALL: MulticlassRecall,
        N.F1: MulticlassF1Score,
    }
    if num_classes == 2:  # binary: area under the ROC curve (the macro mean over both classes equals it)
        makers[N.AUROC] = MulticlassAUROC
    kwargs = {N.ACC: {"average": "micro"}}
    return MetricCollection(
        {
            name: makers[name](num_classes=num_classes, validate_args=False, **kwargs.get(name, {"average": "macro"}))
            for name in makers
        }
    )


class Classifier(TaskModule):
    """Cross-entropy classifier: accuracy, macro precision/recall/F1 and a confusion matrix on val/test.

    Args:
        num_classes: number of classes (outputs of `net`).
        label_smoothing: cross-entropy label smoothing during training (evaluation uses plain cross-entropy).
        **kwargs: see :class:`TaskModule`.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        num_classes: int,
        label_smoothing: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(net, optimizer, **kwargs)
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        # Train accuracy as running counts: a torchmetrics update per step costs more than a small model's step.
        self.train_hits = RunningHits()
        self.stage_metrics = nn.ModuleDict({N.VAL: class_metrics(num_classes), N.TEST: class_metrics(num_classes)})
        self.val_acc_best = MaxMetric()
        self.confusion = MulticlassConfusionMatrix(num_classes=num_classes)

    @override
    def criterion(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, y, label_smoothing=self.label_smoothing)

    @override
    def on_train_outputs(self, outputs: torch.Tensor, y: torch.Tensor) -> None:
        self.train_hits.update(outputs, y)

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        logits = self.eval_forward(x, stage)
        loss = F.cross_entropy(logits, y)
        self.stage_metrics[stage].update(logits, y)
        if stage == N.TEST:
            self.confusion.update(logits, y)
        self.log(N.key(stage, N.LOSS), loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=len(y))
        return loss

    @override
    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Class probabilities for `x` or `(x, y)` batches, from the deployed model when there is one."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.eval_forward(x, N.TEST).softmax(dim=-1)

    @override
    def on_train_epoch_end(self) -> None:
        if self.train_hits.seen:
            self.log(N.key(N.TRAIN, N.ACC), self.train_hits.fraction(), prog_bar=True, sync_dist=True)
        self.train_hits.reset()
        super().on_train_epoch_end()

    @override
    def on_validation_epoch_end(self) -> None:
        values = self._log_stage_metrics(N.VAL)
        if not self.trainer.sanity_checking:
            self.val_acc_best.update(values[N.ACC])
            self.log(N.VAL_ACC_BEST, self.val_acc_best.compute())


class RunningHits:
    """Correct predictions over an epoch. The outputs of up to `FOLD` steps are scored together (one argmax and
    comparison instead of one per step: on CPU each small op costs ~5-15 us, a few % of a small model's step); the
    count stays on the device (no host sync), and it is a plain object, so an update costs no
    `nn.Module.__setattr__`."""

    FOLD = 16
    MAX_PENDING = 1 << 22  # output elements held back at most (16 MiB of float32)

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.hits: torch.Tensor | int = 0
        self.seen = 0

    def update(self, outputs: torch.Tensor, y: torch.Tensor) -> None:
        """One batch's (detached) outputs and labels."""
        self.pending.append((outputs, y))
        self.seen += len(y)
        if len(self.pending) >= self.FOLD or sum(o.numel() for o, _ in self.pending) >= self.MAX_PENDING:
            self._fold()

    def _fold(self) -> None:
        if self.pending:
            outputs = torch.cat([o for o, _ in self.pending])
            y = torch.cat([t for _, t in self.pending])
            self.hits = self.hits + (outputs.argmax(1) == y).sum()
            self.pending = []

    def fraction(self) -> torch.Tensor:
        self._fold()
        return torch.as_tensor(self.hits).float() / self.seen


def l1_penalty(weight: float) -> LossTerm:
    """L1 on weight matrices/kernels (not biases or norm scales)."""

    def term(module: TaskModule, x, outputs, y) -> torch.Tensor:
        return weight * sum(p.abs().sum() for n, p in module.net.named_parameters() if p.dim() > 1)

    return term
