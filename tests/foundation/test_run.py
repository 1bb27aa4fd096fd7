"""End-to-end behaviour of one run: accuracy, summary contract, eval parity, resume, loggers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from nnopt import eval as nnopt_eval
from nnopt import train
from nnopt.config import CONFIG_DIR
from nnopt.errors import CheckpointError, ConfigError, NnoptError
from nnopt.metrics import summary as S
from tests.helpers import make_cfg


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The default job (digits, LeNet-300-100, Adam, 15 epochs, csv+tensorboard loggers)."""
    out = tmp_path_factory.mktemp("default")
    cfg = make_cfg(out, "logger=[csv,tensorboard]", fast=False)
    return out, train.run(cfg)


def test_default_run_is_accurate_and_summary_complete(default_run):
    out, summary = default_run
    on_disk = json.loads((out / S.FILENAME).read_text())
    assert on_disk == json.loads(json.dumps(summary, default=str))  # the file is exactly what run() returned
    assert set(S.REQUIRED_KEYS) <= set(on_disk)
    assert on_disk[S.STATUS] == S.COMPLETED and on_disk["schema_version"] == S.SCHEMA_VERSION
    assert on_disk[S.TEST_ACC] >= 0.95
    for key in (S.TEST_PRECISION, S.TEST_RECALL, S.TEST_F1, S.VAL_ACC_BEST):
        assert 0.9 <= on_disk[key] <= 1.0, key
    assert 0 < on_disk[S.TEST_LOSS] < 0.5
    assert on_disk[S.PARAMS] == 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10
    assert on_disk[S.NONZERO_PARAMS] == on_disk[S.PARAMS] and on_disk[S.SPARSITY] == 0.0
    assert on_disk[S.PARAMS] * 4 < on_disk[S.SIZE_BYTES] < on_disk[S.PARAMS] * 4 + 20_000
    assert 0 < on_disk[S.SIZE_BYTES_GZIP] <= on_disk[S.SIZE_BYTES]
    assert 0 < on_disk[S.LATENCY_B1] < on_disk[S.LATENCY_B256]
    assert on_disk[S.TRAIN_TIME] > 0 and on_disk[S.TRAIN_SAMPLES_PER_S] > 0
    assert 1 <= on_disk[S.TRAIN_EPOCHS] <= 15
    assert on_disk[S.TRAIN_PEAK_MEM] > 50
    assert on_disk[S.CHOICES]["model"] == "mlp" and on_disk[S.CHOICES]["data"] == "digits"
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_loggers_write_metrics(default_run):
    out, _ = default_run
    rows = (out / "csv" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert {"train/loss", "val/acc", "val/f1", "test/acc"} <= set(header)
    assert len(rows) > 10
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))


def test_eval_of_saved_checkpoint_matches_train(default_run, tmp_path):
    out, summary = default_run
    cfg = make_cfg(tmp_path, f"ckpt_path={summary['ckpt/best']}", config_name="eval")
    result = nnopt_eval.run(cfg)
    assert result[S.STATUS] == S.COMPLETED
    assert result[S.TEST_ACC] == pytest.approx(summary[S.TEST_ACC], abs=1e-6)
    assert result[S.PARAMS] == summary[S.PARAMS]
    assert json.loads((tmp_path / S.FILENAME).read_text())[S.TEST_ACC] == pytest.approx(summary[S.TEST_ACC])


def test_resume_continues_at_the_right_step(tmp_path):
    first = make_cfg(tmp_path / "a", "trainer.max_epochs=2", "callbacks.early_stopping=null")
    first_summary = train.run(first)
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    steps_per_epoch = torch.load(last, weights_only=True)["global_step"] // 2
    assert steps_per_epoch == math.ceil(1797 * 0.7 / 128)
    resumed = make_cfg(tmp_path / "b", "trainer.max_epochs=3", f"ckpt_path={last}", "callbacks.early_stopping=null")
    summary = train.run(resumed)
    ckpt = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 3 * steps_per_epoch and ckpt["epoch"] == 2
    assert summary[S.TRAIN_EPOCHS] == 3
    # the resumed run trained one epoch only: its throughput timer saw one epoch of samples (the first run: two)
    assert summary[S.TRAIN_TIME] > 0
    assert 2 * summary[S.TRAIN_SAMPLES_RANK0] == first_summary[S.TRAIN_SAMPLES_RANK0] > 0


def test_resume_refuses_checkpoint_of_another_model(tmp_path):
    train.run(make_cfg(tmp_path / "a", "trainer.max_epochs=1"))
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointError, match="model.hidden"):
        train.run(make_cfg(tmp_path / "b", f"ckpt_path={last}", "model.hidden=[64]"))
    assert json.loads((tmp_path / "b" / S.FILENAME).read_text())[S.STATUS] == S.FAILED


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("optimizer.lr=-0.1", r"optimizer.lr=-0.1 is out of range"),
        ("optimizer.lr=0", r"optimizer.lr=0"),
        ("data.batch_size=0", r"data.batch_size=0 is out of range"),
        ("data.batch_size=-8", r"data.batch_size=-8"),
        ("data.batch_size=abc", r"data.batch_size='abc' has the wrong type"),
        ("trainer.max_epochs=1.5", r"trainer.max_epochs=1.5 has the wrong type"),
        ("model.dropout=1.2", r"model.dropout=1.2 is out of range"),
        ("label_smoothing=1.0", r"label_smoothing=1.0"),
        ("test_ckpt=middle", r"test_ckpt='middle' is not allowed; choose one of: .*\bbest\b.*\blast\b"),
        ("trainer.precision=8", r"trainer.precision=8 is not allowed"),
        ("data.val_fraction=1.5", r"data.val_fraction=1.5"),
        ("model.hidden=[300,-1]", r"model.hidden\[1\]=-1"),
        ("ckpt_path=/no/such.ckpt", r"ckpt_path=/no/such.ckpt does not exist"),
    ],
)
def test_bad_values_fail_before_training(tmp_path, override, match):
    with pytest.raises(NnoptError, match=match):
        train.run(make_cfg(tmp_path, override))
    summary = json.loads((tmp_path / S.FILENAME).read_text())
    assert summary[S.STATUS] == S.FAILED and summary[S.TEST_ACC] is None
    assert not (tmp_path / "checkpoints").exists()


def test_lenet5_rejects_too_small_inputs(tmp_path):
    with pytest.raises(ConfigError, match="model=lenet5 cannot take inputs of shape"):
        train.run(make_cfg(tmp_path, "model=lenet5", "data.size=8"))


@pytest.mark.parametrize("model", ["lenet5", "cnn"])
def test_conv_models_train(tmp_path, model):
    summary = train.run(make_cfg(tmp_path, f"model={model}", "trainer.max_epochs=1", "trainer.limit_train_batches=5"))
    # chance is 0.1 (10 digits); 5 batches reach 0.65 (lenet5) / 0.73 (cnn) at seed 42, 0.59-0.73 on seeds 0-2
    assert summary[S.STATUS] == S.COMPLETED
    assert summary[S.TEST_ACC] > 0.5


OPTIMIZERS = sorted(p.stem for p in (Path(CONFIG_DIR) / "optimizer").glob("*.yaml"))


def test_the_optimizer_list_covers_the_documented_ones():
    assert {"sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad", "gd", "lbfgs"} <= set(OPTIMIZERS)


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_every_optimizer_builds_and_steps(tmp_path, opt):
    summary = train.run(
        make_cfg(
            tmp_path / opt,
            f"optimizer={opt}",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "callbacks.model_checkpoint=null",
            "logger=none",
            "test=false",
        )
    )
    assert summary[S.STATUS] == S.COMPLETED, opt
    assert summary[S.TRAIN_EPOCHS] == 1
