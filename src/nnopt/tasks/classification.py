"""Classification (multi-class and binary): cross-entropy, accuracy, macro precision/recall/F1, AUROC for two
classes, a confusion matrix on the test split."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)
from typing_extensions import override

from nnopt.metrics import names as N
from nnopt.tasks.module import TaskModule
from nnopt.tasks.spec import CLASSIFICATION, Task


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
        **kwargs: see :class:`nnopt.tasks.module.TaskModule`.
    """

    task: ClassVar[Task] = CLASSIFICATION

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
        self.confusion = MulticlassConfusionMatrix(num_classes=num_classes)

    @classmethod
    @override
    def config_kwargs(cls, cfg: Any, shapes: Any) -> dict[str, Any]:
        return {"num_classes": int(shapes.num_classes), "label_smoothing": cfg.get("label_smoothing", 0.0)}

    @override
    def criterion(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, y, label_smoothing=self.label_smoothing)

    @override
    def eval_loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, y)

    @override
    def on_train_outputs(self, outputs: torch.Tensor, y: torch.Tensor) -> None:
        self.train_hits.update(outputs, y)

    @override
    def on_eval_outputs(self, stage: str, outputs: torch.Tensor, y: torch.Tensor) -> None:
        if stage == N.TEST:
            self.confusion.update(outputs, y)

    @override
    def predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        """Class probabilities."""
        return outputs.softmax(dim=-1)

    @override
    def distillation_loss(self, outputs: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
        """`T^2 * KL(softmax(teacher/T) || softmax(student/T))` (Hinton et al.: T^2 keeps gradients' scale)."""
        t = temperature
        kl = F.kl_div(
            F.log_softmax(outputs / t, dim=1), F.log_softmax(teacher / t, dim=1), reduction="batchmean", log_target=True
        )
        return t * t * kl

    @override
    def on_train_epoch_end(self) -> None:
        if self.train_hits.seen:
            self.log(N.key(N.TRAIN, N.ACC), self.train_hits.fraction(), prog_bar=True, sync_dist=True)
        self.train_hits.reset()
        super().on_train_epoch_end()


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
