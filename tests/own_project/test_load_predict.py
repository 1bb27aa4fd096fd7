"""Issue 13 item 6: `Classifier.load_from_checkpoint(path)` rebuilds the model from the file alone (no data, no
arguments, only targets nnopt's configs name); `Trainer.predict` gives class probabilities for x and (x, y) batches."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from nnopt import build, checkpoint
from nnopt.errors import CheckpointError
from nnopt.metrics import summary as S
from nnopt.tasks.classification import Classifier
from nnopt.train import run
from tests.helpers import make_cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[dict, torch.Tensor, torch.Tensor]:
    out = tmp_path_factory.mktemp("run")
    cfg = make_cfg(out, "model.hidden=[64]")
    summary = run(cfg)
    x, y = build.build_datamodule(cfg).tensors["test"]
    return summary, x, y


def predictor() -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )


def test_load_from_checkpoint_alone_and_predict_x_and_xy_batches(trained):
    summary, x, y = trained
    model = Classifier.load_from_checkpoint(summary[S.CKPT_BEST])
    assert isinstance(model, Classifier) and not model.training
    assert model.data_info["input_shape"] == [1, 28, 28] and model.data_info["num_classes"] == 10
    x_only = torch.cat(predictor().predict(model, DataLoader(x, batch_size=100)))
    with_labels = torch.cat(predictor().predict(model, DataLoader(TensorDataset(x, y), batch_size=100)))
    assert x_only.shape == (len(x), 10)
    assert torch.allclose(x_only.sum(1), torch.ones(len(x)), atol=1e-5)  # probabilities
    assert torch.equal(x_only, with_labels)
    accuracy = float((x_only.argmax(1) == y).float().mean())
    assert accuracy == pytest.approx(summary[S.TEST_ACC], abs=1e-6)  # the run tested the same (best) checkpoint


def test_load_refuses_targets_nobody_chose(trained, tmp_path):
    summary, _, _ = trained
    ckpt = dict(checkpoint.load(summary[S.CKPT_BEST]))
    ckpt[checkpoint.CONFIG_KEY] = {**ckpt[checkpoint.CONFIG_KEY], "model": {"_target_": "builtins.open", "name": "x"}}
    forged = tmp_path / "forged.ckpt"
    torch.save(ckpt, forged)
    with pytest.raises(CheckpointError, match=r"nnopt_config\.model\._target_='builtins\.open' is not a target"):
        Classifier.load_from_checkpoint(forged)


def test_load_needs_the_stored_input_shape(trained, tmp_path):
    summary, _, _ = trained
    ckpt = {k: v for k, v in checkpoint.load(summary[S.CKPT_BEST]).items() if k != checkpoint.DATA_KEY}
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    with pytest.raises(CheckpointError, match="stores no input shape"):
        Classifier.load_from_checkpoint(old)


def test_regressor_loads_with_its_target_scale(tmp_path):
    from nnopt.tasks.regression import Regressor

    cfg = make_cfg(tmp_path, "data=diabetes", "model.hidden=[32]", "test_ckpt=last")
    summary = run(cfg)
    model = Regressor.load_from_checkpoint(summary[S.CKPT_LAST])
    assert model.target_std > 1.0  # diabetes targets (25-346): the original units are restored from the file
    x, y = build.build_datamodule(cfg).tensors["test"]
    metrics = predictor().test(model, DataLoader(TensorDataset(x, y), batch_size=1024), verbose=False)[0]
    assert metrics["test/mse"] == pytest.approx(summary["test/mse"], rel=1e-5)
