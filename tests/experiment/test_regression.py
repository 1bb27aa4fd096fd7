"""Regression task: metrics in original units against closed-form least squares, the default diabetes MLP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnopt import build, train
from nnopt.checkpoint import net_state
from nnopt.metrics import summary as S
from nnopt.tasks.regression import Regressor
from tests.helpers import make_cfg

#: a linear model (no hidden layer) fitted to convergence by full-batch L-BFGS is least squares
LINEAR = [
    "data=synthetic_regression",
    "model.hidden=[]",
    "optimizer=lbfgs",
    "optimizer.max_iter=50",
    "trainer.max_epochs=4",
    "callbacks.early_stopping=null",
]


def original_units(dm, split: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = dm.tensors[split]
    return x.double().numpy(), (y.double() * dm.target_std + dm.target_mean).numpy()


def test_linear_regression_metrics_match_closed_form_least_squares(tmp_path) -> None:
    cfg = make_cfg(tmp_path, *LINEAR)
    summary = train.run(cfg)
    assert summary[S.STATUS] == S.COMPLETED
    dm = build.build_datamodule(cfg)
    x_tr, y_tr = original_units(dm, "train")
    x_te, y_te = original_units(dm, "test")
    design = np.c_[x_tr, np.ones(len(x_tr))]
    coef, *_ = np.linalg.lstsq(design, y_tr, rcond=None)
    pred = np.c_[x_te, np.ones(len(x_te))] @ coef
    mse = float(np.mean((pred - y_te) ** 2))
    mae = float(np.mean(np.abs(pred - y_te)))
    r2 = 1 - float(np.sum((pred - y_te) ** 2) / np.sum((y_te - y_te.mean()) ** 2))
    assert summary[S.TEST_MSE] == pytest.approx(mse, rel=2e-3)
    assert summary[S.TEST_MAE] == pytest.approx(mae, rel=2e-3)
    assert summary[S.TEST_R2] == pytest.approx(r2, abs=1e-4)
    assert 0.15 < mse < 0.4  # noise 0.5: the irreducible test MSE is about 0.25, in the target's units
    assert summary[S.VAL_MSE_BEST] is not None and summary[S.VAL_MSE_BEST] < 0.5
    assert summary[S.TEST_ACC] is None and summary[S.VAL_ACC_BEST] is None  # classification keys: null


@torch.no_grad()
def test_metrics_are_in_original_units_whatever_the_target_scale() -> None:
    """Same model, targets 1000x larger: the loss (standardised) is unchanged, the MSE grows 10^6x."""
    module = Regressor(torch.nn.Linear(2, 1), torch.optim.SGD, target_mean=5.0, target_std=1000.0)
    x, y = torch.randn(64, 2), torch.randn(64)
    module.stage_metrics["test"].update(module.to_original(module(x)[:, 0]), module.to_original(y))
    scaled = module.stage_metrics["test"].compute()
    plain = ((module(x)[:, 0] - y) ** 2).mean()
    assert float(scaled["mse"]) == pytest.approx(float(plain) * 1e6, rel=1e-4)
    assert float(module.criterion(module(x), y)) == pytest.approx(float(plain), rel=1e-6)


def test_huber_loss_option() -> None:
    module = Regressor(torch.nn.Linear(2, 1), torch.optim.SGD, loss="huber", huber_delta=0.5)
    out, y = torch.tensor([[0.0], [0.0]]), torch.tensor([0.2, 3.0])
    expected = (0.5 * 0.2**2 + 0.5 * (3.0 - 0.25)) / 2  # quadratic below delta, linear above
    assert float(module.criterion(out, y)) == pytest.approx(expected)


def test_regression_monitors_val_loss_and_classification_val_acc(tmp_path) -> None:
    regression = make_cfg(tmp_path, "data=diabetes")
    classification = make_cfg(tmp_path, "data=digits")
    for name in ("model_checkpoint", "early_stopping"):
        assert (regression.callbacks[name].monitor, regression.callbacks[name].mode) == ("val/loss", "min")
        assert (classification.callbacks[name].monitor, classification.callbacks[name].mode) == ("val/acc", "max")


def test_diabetes_mlp_defaults_reach_r2(tmp_path) -> None:
    summary = train.run(make_cfg(tmp_path, "data=diabetes", fast=False))
    assert summary[S.STATUS] == S.COMPLETED
    assert summary[S.TEST_R2] >= 0.40  # linear regression gets ~0.45 on this split
    assert 2000 < summary[S.TEST_MSE] < 4500 and 30 < summary[S.TEST_MAE] < 60  # original units (progression^2)
    best = torch.load(summary[S.CKPT_BEST], map_location="cpu", weights_only=True)
    assert "val/loss" in str(best["callbacks"])  # the checkpoint callback watched val/loss
    assert net_state(best["state_dict"])["classifier.weight"].shape == (1, 100)  # one output unit


@pytest.mark.parametrize("compression", ["prune", "ptq_dynamic"])
def test_compression_works_for_regression(tmp_path, compression) -> None:
    summary = train.run(make_cfg(tmp_path, "data=diabetes", f"compression={compression}", "trainer.max_epochs=6"))
    assert summary[S.STATUS] == S.COMPLETED and summary[S.TEST_R2] > 0.3
    if compression == "prune":
        assert summary[S.SPARSITY] > 0.8
    else:
        assert summary[S.SIZE_BYTES] < 0.5 * 4 * summary[S.PARAMS]  # int8 weights
