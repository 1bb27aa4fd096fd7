"""The one LightningModule: a classifier around any plain `nn.Module`."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from nnopt.metrics import names as N

#: extra loss terms callbacks may add: fn(module, x, logits, y) -> scalar tensor
LossTerm = Callable[["Classifier", torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
CONFIG_KEY = "nnopt_config"


def class_metrics(num_classes: int) -> MetricCollection:
    makers = {
        N.ACC: MulticlassAccuracy,
        N.PRECISION: MulticlassPrecision,
        N.RECALL: MulticlassRecall,
        N.F1: MulticlassF1Score,
    }
    kwargs = {N.ACC: {"average": "micro"}}
    return MetricCollection(
        {
            name: makers[name](num_classes=num_classes, validate_args=False, **kwargs.get(name, {"average": "macro"}))
            for name in makers
        }
    )


class Classifier(pl.LightningModule):
    """Cross-entropy classifier; train/val/test share one `_step`.

    `loss_terms` lets callbacks (L1, distillation, ...) add to the training loss without subclassing;
    `ce_weight` scales the cross-entropy part. `deploy_net`, when a compression callback sets it, is the
    model the summary measures and exports (e.g. the converted int8 model).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        num_classes: int,
        label_smoothing: float = 0.0,
        l1: float = 0.0,
        run_config: dict[str, Any] | None = None,
        schedule: Any = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.schedule = schedule  # an nnopt.optim.schedules factory (None: constant lr); Lightning steps it
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.ce_weight = 1.0
        self.loss_terms: dict[str, LossTerm] = {}
        if l1 > 0:
            self.loss_terms["l1"] = l1_penalty(l1)
        self.run_config = run_config or {}
        self.deploy_net: nn.Module | None = None
        # Train accuracy as two running counts: a torchmetrics update per step costs more than a small model's step.
        self._train_correct = torch.zeros((), dtype=torch.long)
        self._train_seen = 0
        self.stage_metrics = nn.ModuleDict(
            {N.VAL: class_metrics(num_classes), N.TEST: class_metrics(num_classes)}
        )
        self.val_acc_best = MaxMetric()
        self.confusion = MulticlassConfusionMatrix(num_classes=num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        compiled = self.__dict__.get("_compiled_net")
        return compiled(x) if compiled is not None else self.net(x)

    def compile_net(self, example: torch.Tensor) -> bool:
        """torch.compile the inner network (compiling the LightningModule breaks `self.log` on this
        Lightning/torch pair). Kept outside the module tree, so checkpoints hold the plain weights.
        Returns False, with a warning, where compilation is unavailable."""
        try:
            compiled = torch.compile(self.net)
            compiled(example)  # compile now: a missing compiler fails here, not in the first training step
        except Exception as exc:  # noqa: BLE001 - any backend failure means "run eagerly"
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            warnings.warn(f"compile=true: torch.compile is unavailable here ({first}); training eagerly", stacklevel=2)
            return False
        self.__dict__["_compiled_net"] = compiled
        return True

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        deploy = self.deploy_net if stage == N.TEST else None  # test the model that is deployed (e.g. int8)
        logits = self(x) if deploy is None else deploy(x.cpu()).to(x.device)  # int8 kernels are CPU kernels
        ce = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing if stage == N.TRAIN else 0.0)
        if stage == N.TRAIN:
            loss = self.ce_weight * ce
            log_now = self._log_this_step()
            for name, term in self.loss_terms.items():
                value = term(self, x, logits, y)
                if log_now:
                    self.log(N.key(N.TRAIN, f"loss_{name}"), value, on_step=True, on_epoch=False, batch_size=len(y))
                loss = loss + value
            self._train_correct = self._train_correct.to(y.device) + (logits.detach().argmax(1) == y).sum()
            self._train_seen += len(y)
            if log_now:
                self.log(N.TRAIN_LOSS, loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=len(y))
            return loss
        self.stage_metrics[stage].update(logits, y)
        if stage == N.TEST:
            self.confusion.update(logits, y)
        self.log(N.key(stage, N.LOSS), ce, on_step=False, on_epoch=True, sync_dist=True, batch_size=len(y))
        return ce

    def _log_this_step(self) -> bool:
        """Per-step values reach loggers only every `log_every_n_steps`; skipping `self.log` on the other steps
        saves ~0.3 ms/step, which is most of the framework cost for small models."""
        trainer = self._trainer
        if trainer is None:
            return True
        return (self.global_step + 1) % trainer.log_every_n_steps == 0 or self.global_step == 0

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, N.TRAIN)

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, N.VAL)

    def test_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, N.TEST)

    def on_train_epoch_end(self) -> None:
        if self._train_seen:
            acc = self._train_correct.float() / self._train_seen
            self.log(N.key(N.TRAIN, N.ACC), acc, prog_bar=True, sync_dist=True)
        self._train_correct, self._train_seen = torch.zeros((), dtype=torch.long), 0

    def _log_stage_metrics(self, stage: str) -> dict[str, torch.Tensor]:
        values = self.stage_metrics[stage].compute()  # torchmetrics syncs across DDP ranks here
        self.stage_metrics[stage].reset()
        self.log_dict({N.key(stage, k): v for k, v in values.items()}, prog_bar=stage == N.VAL)
        return values

    def on_validation_epoch_end(self) -> None:
        values = self._log_stage_metrics(N.VAL)
        if not self.trainer.sanity_checking:
            self.val_acc_best.update(values[N.ACC])
            self.log(N.VAL_ACC_BEST, self.val_acc_best.compute())

    def on_test_epoch_end(self) -> None:
        self._log_stage_metrics(N.TEST)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.schedule is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.schedule.lr_scheduler_config(optimizer, self.trainer)}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The resolved run config travels with the weights, so `nnopt-eval` can rebuild the model.
        checkpoint[CONFIG_KEY] = self.run_config

    def deployable(self) -> nn.Module:
        return self.deploy_net if self.deploy_net is not None else self.net


def l1_penalty(weight: float) -> LossTerm:
    """L1 on weight matrices/kernels (not biases or norm scales)."""

    def term(module: Classifier, x, logits, y) -> torch.Tensor:
        return weight * sum(p.abs().sum() for n, p in module.net.named_parameters() if p.dim() > 1)

    return term
