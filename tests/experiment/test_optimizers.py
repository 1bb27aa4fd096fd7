"""Full-batch gradient descent and L-BFGS: one optimizer step per epoch, train/steps, accuracy on digits."""

from __future__ import annotations

import math

import pytest

from nnopt import train
from nnopt.errors import ConfigError
from nnopt.metrics import summary as S
from tests.helpers import make_cfg

NO_STOP = "callbacks.early_stopping=null"


@pytest.mark.parametrize("optimizer", ["gd", "lbfgs"])
def test_full_batch_makes_one_step_per_epoch(tmp_path, optimizer) -> None:
    summary = train.run(make_cfg(tmp_path, f"optimizer={optimizer}", "trainer.max_epochs=3", NO_STOP, "data.size=8"))
    assert summary[S.STATUS] == S.COMPLETED
    assert summary[S.TRAIN_EPOCHS] == 3 and summary[S.TRAIN_STEPS] == 3
    assert summary[S.TRAIN_SAMPLES_RANK0] == 3 * 1257  # every epoch's one batch is the whole training split


def test_mini_batch_steps_count_batches(tmp_path) -> None:
    summary = train.run(
        make_cfg(tmp_path, "optimizer=sgd", "data.batch_size=100", "trainer.max_epochs=2", NO_STOP, "data.size=8")
    )
    assert summary[S.TRAIN_STEPS] == 2 * math.ceil(1257 / 100)


def test_full_batch_refuses_gradient_accumulation(tmp_path) -> None:
    with pytest.raises(ConfigError, match="trainer.accumulate_grad_batches=2 does nothing with optimizer=gd"):
        train.run(make_cfg(tmp_path, "optimizer=gd", "trainer.accumulate_grad_batches=2"))


def test_lbfgs_refuses_fp16(tmp_path) -> None:
    with pytest.raises(ConfigError, match="optimizer=lbfgs cannot train with trainer.precision=16-mixed"):
        train.run(make_cfg(tmp_path, "optimizer=lbfgs", "trainer.precision=16-mixed"))


@pytest.mark.slow  # 150 full-batch steps: ~15 s idle, more on a loaded machine
def test_gd_reaches_90_percent_on_digits(tmp_path) -> None:
    summary = train.run(make_cfg(tmp_path, "optimizer=gd", "trainer.max_epochs=150", fast=False))
    assert summary[S.TEST_ACC] >= 0.90
    assert summary[S.TRAIN_STEPS] == summary[S.TRAIN_EPOCHS]


@pytest.mark.slow  # 15 steps of up to 20 L-BFGS iterations each
def test_lbfgs_reaches_90_percent_on_digits(tmp_path) -> None:
    summary = train.run(make_cfg(tmp_path, "optimizer=lbfgs", "trainer.max_epochs=15", fast=False))
    assert summary[S.TEST_ACC] >= 0.90
    assert summary[S.TRAIN_STEPS] == summary[S.TRAIN_EPOCHS]


@pytest.mark.parametrize("schedule", ["onecycle", "plateau"])
def test_lbfgs_composes_with_schedules(tmp_path, schedule) -> None:
    summary = train.run(
        make_cfg(tmp_path, "optimizer=lbfgs", f"schedule={schedule}", "trainer.max_epochs=4", "data.size=8")
    )
    assert summary[S.STATUS] == S.COMPLETED and summary[S.TEST_ACC] >= 0.85
