"""Gradient clipping: the pre-clip norm is logged every optimizer step and the post-clip norm obeys the bound."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch

from nnopt import train
from nnopt.callbacks.grad_clip import GradientClipping
from nnopt.errors import ConfigError
from nnopt.tasks.classification import Classifier
from tests.helpers import make_cfg
from tests.optim.test_schedules import TINY, TOTAL, rows

N_PARAMS = 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10  # default MLP 300-100 on digits upsampled to 28x28


def clip_rows(out: Path, *extra: str) -> list[dict[str, str]]:
    train.run(make_cfg(out, "callbacks.grad_clip.enabled=true", *TINY, *extra))
    return [r for r in rows(out) if r.get("train/grad_norm")]


def test_tiny_max_norm_bounds_the_norm_and_training_still_learns(tmp_path):
    logged = clip_rows(tmp_path / "clip", "callbacks.grad_clip.max_norm=0.01")
    assert len(logged) == TOTAL  # one pre-clip norm per optimizer step
    assert all(float(r["train/grad_norm_clipped"]) <= 0.01 * 1.001 for r in logged)
    assert min(float(r["train/grad_norm"]) for r in logged) > 0.01  # clipping happened at every step
    losses = [float(r["train/loss"]) for r in rows(tmp_path / "clip") if r.get("train/loss")]
    assert losses[-1] < losses[0] - 0.3  # Adam's step size does not depend on the gradient's scale
    free = clip_rows(tmp_path / "free", "callbacks.grad_clip.max_norm=1e9", "trainer.max_epochs=1")
    assert all(r["train/grad_norm_clipped"] == r["train/grad_norm"] for r in free)  # unclipped: norm passes through
    assert min(float(r["train/grad_norm"]) for r in free) > 0.01


def test_value_clipping_once_per_optimizer_step_with_accumulation(tmp_path):
    logged = clip_rows(
        tmp_path,
        "callbacks.grad_clip.mode=value",
        "callbacks.grad_clip.max_norm=1e-4",
        "trainer.accumulate_grad_batches=2",
    )
    assert len(logged) == TOTAL // 2  # after accumulation: one clip per optimizer step, not per batch
    for r in logged:
        # every entry is clamped to 1e-4, so the clipped global norm is at most 1e-4 * sqrt(#params)
        assert float(r["train/grad_norm_clipped"]) <= 1e-4 * math.sqrt(N_PARAMS) * 1.001
        assert float(r["train/grad_norm_clipped"]) < float(r["train/grad_norm"])


def test_agc_limits_each_unit_relative_to_its_weights():
    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 4)
    layer.weight.grad = torch.randn(4, 8) * 100  # far larger than 0.01 x the weight norm
    layer.bias.grad = torch.randn(4) * 1e-6  # tiny: left alone
    bias_grad = layer.bias.grad.clone()
    GradientClipping(mode="agc", max_norm=0.01)._agc([layer.weight, layer.bias])
    row_ratio = layer.weight.grad.norm(dim=1) / layer.weight.norm(dim=1)
    assert torch.allclose(row_ratio, torch.full((4,), 0.01), rtol=1e-4)  # unit-wise: each output row at the limit
    assert torch.equal(layer.bias.grad, bias_grad)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_norm": 0}, "callbacks.grad_clip.max_norm=0 is out of range"),
        ({"max_norm": -1.0}, "callbacks.grad_clip.max_norm=-1.0 is out of range"),
        ({"mode": "l3"}, "callbacks.grad_clip.mode='l3' is not allowed; choose one of: .*norm.*value.*agc"),
    ],
)
def test_bad_clip_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        GradientClipping(**kwargs)


@pytest.mark.parametrize("scaled", [False, True])
def test_clipping_sees_unscaled_gradients_under_fp16_amp(scaled):
    """With a GradScaler (16-mixed), gradients are scaled by 2^16 during backward; the logged pre-clip norm must be
    the same as without scaling, i.e. clipping runs after unscaling."""
    import pytorch_lightning as pl
    from pytorch_lightning.plugins import MixedPrecision

    from nnopt.callbacks.grad_clip import NORM_KEY

    class Probe(pl.Callback):
        def __init__(self) -> None:
            self.raw: list[float] = []  # right after backward, before any unscaling
            self.norms: list[float] = []  # what the clipping callback logged

        def on_after_backward(self, trainer, pl_module):
            self.raw.append(float(torch.nn.utils.get_total_norm([p.grad for p in pl_module.parameters()])))

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.norms.append(float(trainer.callback_metrics[NORM_KEY]))

    torch.manual_seed(0)
    x, y = torch.randn(64, 16), torch.randint(0, 4, (64,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    lit = Classifier(torch.nn.Linear(16, 4), torch.optim.SGD, num_classes=4)
    probe = Probe()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    plugins = [MixedPrecision("16-mixed", "cpu", scaler=scaler)] if scaled else []
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        plugins=plugins,
        callbacks=[GradientClipping(max_norm=0.01), probe],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(lit, loader)
    assert len(probe.norms) == 4
    ratios = [raw / logged for raw, logged in zip(probe.raw, probe.norms, strict=True)]
    assert ratios == pytest.approx([2.0**16 if scaled else 1.0] * 4, rel=1e-3)  # the clip saw unscaled gradients
