"""A QAT run's checkpoint loads: `load_from_checkpoint` gives the fake-quantized model the run trained, and
`nnopt.tasks.rebuild.int8_model` the int8 model it tested, both from the checkpoint alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nnopt import build, train
from nnopt.metrics import summary as S
from nnopt.tasks import rebuild
from nnopt.tasks.classification import Classifier
from tests.helpers import QUIET, make_cfg

QAT = [
    *QUIET,
    "compression=qat",
    "compression.start_epoch=1",
    "trainer.max_epochs=3",
    "callbacks.early_stopping=null",
    "model.hidden=[32]",
    "logger=none",
    "test_ckpt=last",
]


@pytest.fixture(scope="module")
def qat_run(tmp_path_factory) -> tuple[Path, dict, torch.Tensor, torch.Tensor]:
    out = tmp_path_factory.mktemp("qat_ckpt") / "run"
    summary = train.run(make_cfg(out, *QAT))
    assert summary[S.STATUS] == S.COMPLETED and summary[S.INT8] is True
    x, y = build.build_datamodule(make_cfg(out.parent / "probe", "model.hidden=[32]")).tensors["test"]
    return out, summary, x, y


@torch.no_grad()
def test_load_from_checkpoint_gives_the_fake_quantized_model(qat_run) -> None:
    out, summary, x, y = qat_run
    module = Classifier.load_from_checkpoint(out / "checkpoints" / "last.ckpt")
    fake_quant = [n for n, _ in module.net.named_modules() if n.endswith("weight_fake_quant")]
    assert fake_quant, "the rebuilt network is not the QAT-prepared one"
    int8 = rebuild.int8_model(out / "checkpoints" / "last.ckpt")
    agree = (module(x).argmax(1) == int8(x).argmax(1)).float().mean()
    assert agree >= 0.97  # fake quantization simulates the int8 model it converts to


@torch.no_grad()
def test_int8_model_is_what_the_run_tested(qat_run) -> None:
    out, summary, x, y = qat_run
    int8 = rebuild.int8_model(out / "checkpoints" / "last.ckpt")
    quantized = [m for m in int8.modules() if type(m).__module__.startswith("torch.ao.nn.quantized")]
    assert quantized
    acc = float((int8(x).argmax(1) == y).float().mean())
    assert acc == pytest.approx(summary[S.TEST_ACC], abs=1e-6)


def test_int8_model_of_a_run_without_one_is_one_line(tmp_path) -> None:
    from nnopt.errors import CheckpointError

    out = tmp_path / "run"
    train.run(make_cfg(out, *QUIET, "trainer.max_epochs=1", "model.hidden=[8]", "logger=none"))
    with pytest.raises(CheckpointError, match="no model_int8.pt beside it") as refused:
        rebuild.int8_model(out / "checkpoints" / "last.ckpt")
    assert len(str(refused.value).splitlines()) == 1
