"""Tabular data sets: shapes, per-feature scaling with training statistics, task declared by the data config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnopt import train
from nnopt.data.digits import DigitsDataModule
from nnopt.data.tabular import SklearnTabularDataModule, SyntheticRegressionDataModule
from nnopt.errors import ConfigError, DataError
from nnopt.metrics import summary as S
from tests.helpers import make_cfg, run_cli


def test_diabetes_features_and_targets_are_standardised_with_training_statistics() -> None:
    from sklearn.datasets import load_diabetes

    dm = SklearnTabularDataModule(dataset="diabetes", task="regression", val_fraction=0.15, test_fraction=0.2)
    dm.prepare()
    assert dm.input_shape == (10,) and dm.num_classes == 1
    assert dm.split_sizes() == {"train": 288, "val": 66, "test": 88}  # 442 = 15 % val, 20 % test
    x_train, y_train = dm.tensors["train"]
    assert y_train.dtype == torch.float32
    torch.testing.assert_close(x_train.mean(0), torch.zeros(10), atol=1e-5, rtol=0)
    torch.testing.assert_close(x_train.std(0), torch.ones(10), atol=1e-5, rtol=0)
    assert abs(float(y_train.mean())) < 1e-5 and abs(float(y_train.std()) - 1) < 1e-5
    # the kept statistics map standardised targets back to the raw ones
    back = torch.cat([y for _, y in dm.tensors.values()]) * dm.target_std + dm.target_mean
    np.testing.assert_allclose(np.sort(back.numpy()), np.sort(load_diabetes().target), rtol=0, atol=1e-3)
    assert 140 < dm.target_mean < 165 and 70 < dm.target_std < 85  # diabetes progression: mean 152, sd 77
    # val/test are scaled with *training* statistics: their means are not exactly zero
    assert float(dm.tensors["test"][0].mean(0).abs().max()) > 1e-3


def test_breast_cancer_is_binary_classification() -> None:
    dm = SklearnTabularDataModule(dataset="breast_cancer", num_classes=2)
    dm.prepare()
    assert dm.input_shape == (30,) and dm.num_classes == 2 and dm.task == "classification"
    assert dm.tensors["train"][1].dtype == torch.int64 and set(dm.tensors["train"][1].tolist()) == {0, 1}


def test_data_config_task_must_fit_the_data_set() -> None:
    with pytest.raises(DataError, match="data.task='classification' does not fit data.dataset=diabetes"):
        SklearnTabularDataModule(dataset="diabetes", task="classification")
    with pytest.raises(DataError, match="data.task='ranking' is not allowed; choose one of: classification, regr"):
        DigitsDataModule(task="ranking")


def test_synthetic_regression_is_linear_in_the_inputs() -> None:
    dm = SyntheticRegressionDataModule(num_samples=400, noise=0.0)
    arrays = dm.load_arrays()
    np.testing.assert_allclose(arrays.x_train @ dm.weights + dm.bias, arrays.y_train, rtol=1e-5, atol=1e-4)


def test_conv_model_on_tabular_data_is_refused_before_building(tmp_path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"model=lenet5 needs image inputs \(C,H,W\); data=diabetes has inputs of "
        r"shape \(10,\)",
    ):
        train.run(make_cfg(tmp_path, "data=diabetes", "model=lenet5"))


@pytest.mark.slow  # a CLI subprocess: ~10 s idle, 40 s on a loaded machine
def test_conv_model_on_tabular_data_cli_one_line_exit_2(tmp_path) -> None:
    proc = run_cli("train", "data=diabetes", "model=cnn", log_dir=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == ["nnopt: error: model=cnn needs image inputs (C,H,W); data=diabetes has inputs of shape (10,)"]


def test_breast_cancer_run_reports_binary_metrics(tmp_path) -> None:
    summary = train.run(make_cfg(tmp_path, "data=breast_cancer", "trainer.max_epochs=8"))
    assert summary[S.STATUS] == S.COMPLETED
    assert summary[S.TEST_ACC] >= 0.9 and summary[S.TEST_AUROC] >= 0.95
    for key in (S.TEST_PRECISION, S.TEST_RECALL, S.TEST_F1):
        assert 0.85 <= summary[key] <= 1.0, key
    assert summary[S.TEST_MSE] is None and summary[S.VAL_MSE_BEST] is None  # regression keys: null
