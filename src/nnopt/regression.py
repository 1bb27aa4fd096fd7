"""The regression task: MSE (or Huber) on standardised targets, metrics in the target's original units."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, MinMetric, R2Score
from typing_extensions import override

from nnopt.errors import ConfigError
from nnopt.lit import TaskModule
from nnopt.metrics import names as N

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
        **kwargs: see :class:`nnopt.lit.TaskModule`.
    """

    task = "regression"  # read by callbacks that treat outputs differently (distillation: MSE, not KL)

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
        self.val_mse_best = MinMetric()

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

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        pred = self._flat(self.eval_forward(x, stage))
        loss = F.mse_loss(pred, y)
        self.stage_metrics[stage].update(self.to_original(pred), self.to_original(y))
        self.log(N.key(stage, N.LOSS), loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=len(y))
        return loss

    @override
    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Predictions in the target's original units, from the deployed model when there is one."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.to_original(self._flat(self.eval_forward(x, N.TEST)))

    @override
    def on_validation_epoch_end(self) -> None:
        values = self._log_stage_metrics(N.VAL)
        if not self.trainer.sanity_checking:
            self.val_mse_best.update(values[N.MSE])
            self.log(N.VAL_MSE_BEST, self.val_mse_best.compute())
