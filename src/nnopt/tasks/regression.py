"""Regression: MSE (or Huber) on standardised targets, metrics and predictions in the target's original units."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score
from typing_extensions import override

from nnopt.errors import ConfigError
from nnopt.metrics import names as N
from nnopt.tasks.module import TaskModule
from nnopt.tasks.spec import REGRESSION, Task

LOSSES = ("mse", "huber")


def regression_metrics() -> MetricCollection:
    return MetricCollection({N.MSE: MeanSquaredError(), N.MAE: MeanAbsoluteError(), N.R2: R2Score()})


class Regressor(TaskModule):
    """One real output per sample (`net` has one output unit).

    The data module standardises targets with training statistics (`target_mean`, `target_std`): training and
    `val/loss`/`test/loss` use those units (so default learning rates work for any target scale), while
    `mse`/`mae`/`r2` and predictions are mapped back to the target's original units, the numbers one reports.

    Args:
        target_mean: training-split target mean (original units).
        target_std: training-split target standard deviation (original units).
        loss: "mse" or "huber" (robust to outliers; `huber_delta` in standardised units).
        **kwargs: see :class:`nnopt.tasks.module.TaskModule`.
    """

    task: ClassVar[Task] = REGRESSION

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        target_mean: float = 0.0,
        target_std: float = 1.0,
        loss: str = "mse",
        huber_delta: float = 1.0,
        **kwargs: Any,
    ) -> None:
        if loss not in LOSSES:
            raise ConfigError(f"regression_loss={loss!r} is not allowed; choose one of: {', '.join(LOSSES)}")
        if not huber_delta > 0:
            raise ConfigError(f"huber_delta={huber_delta!r} is out of range; allowed: a number > 0")
        super().__init__(net, optimizer, **kwargs)
        self.target_mean, self.target_std = float(target_mean), float(target_std)
        self.loss_name, self.huber_delta = loss, float(huber_delta)
        self.stage_metrics = nn.ModuleDict({N.VAL: regression_metrics(), N.TEST: regression_metrics()})

    @classmethod
    @override
    def config_kwargs(cls, cfg: Any, shapes: Any) -> dict[str, Any]:
        return {
            "target_mean": getattr(shapes, "target_mean", 0.0),
            "target_std": getattr(shapes, "target_std", 1.0),
            "loss": cfg.get("regression_loss", "mse"),
            "huber_delta": cfg.get("huber_delta", 1.0),
        }

    @staticmethod
    def _flat(outputs: torch.Tensor) -> torch.Tensor:
        return outputs.reshape(len(outputs), -1)[:, 0] if outputs.dim() > 1 else outputs

    def to_original(self, values: torch.Tensor) -> torch.Tensor:
        """Standardised targets/predictions -> the target's original units."""
        return values * self.target_std + self.target_mean

    @override
    def criterion(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pred = self._flat(outputs)
        if self.loss_name == "huber":
            return F.huber_loss(pred, y, delta=self.huber_delta)
        return F.mse_loss(pred, y)

    @override
    def eval_loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self._flat(outputs), y)

    @override
    def metric_inputs(self, outputs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.to_original(self._flat(outputs)), self.to_original(y)

    @override
    def predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        """Predictions in the target's original units."""
        return self.to_original(self._flat(outputs))

    @override
    def distillation_loss(self, outputs: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
        """Real outputs: the mean squared distance to the teacher's (standardised units; T is unused)."""
        return F.mse_loss(outputs, teacher)
