"""Regularisation, precision, compile, LR/batch-size finders and weight averaging: each does what it says."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from nnopt import train
from nnopt.metrics import summary as S
from nnopt.tasks.classification import Classifier
from tests.helpers import make_cfg
from tests.helpers.recording import RecordWeights
from tests.optim.test_schedules import rows

SHORT = [
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=1",
    "callbacks.early_stopping=null",
    "test=false",
    "seed=3",
]


def last_weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def near_zero_fraction(out: Path) -> float:
    weights = torch.cat([v.flatten() for k, v in last_weights(out).items() if k.startswith("net.") and v.dim() > 1])
    return float((weights.abs() < 1e-3).float().mean())


def test_l1_makes_weights_sparser(tmp_path):
    common = ["trainer.max_epochs=3", "callbacks.early_stopping=null", "test=false"]
    train.run(make_cfg(tmp_path / "l1", "l1=1e-4", *common))
    train.run(make_cfg(tmp_path / "none", *common))
    assert near_zero_fraction(tmp_path / "l1") > 2 * near_zero_fraction(tmp_path / "none")
    assert any(r.get("train/loss_l1") for r in rows(tmp_path / "l1"))


def test_label_smoothing_changes_the_loss_as_defined():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    lit = Classifier(net, torch.optim.SGD, num_classes=3, label_smoothing=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log outside a Trainer
        loss = lit.training_step((x, y), 0)
        val_loss = lit.validation_step((x, y), 0)
    log_p = F.log_softmax(net(x), dim=1)
    expected = 0.8 * F.nll_loss(log_p, y) + 0.2 * (-log_p.mean(dim=1)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert val_loss.item() == pytest.approx(F.cross_entropy(net(x), y).item())  # eval reports plain CE


def test_bf16_mixed_on_cpu_completes_and_writes_summary(tmp_path):
    summary = train.run(make_cfg(tmp_path, "trainer.precision=bf16-mixed", "trainer.max_epochs=2"))
    assert summary[S.STATUS] == S.COMPLETED and summary[S.TEST_ACC] > 0.5
    assert json.loads((tmp_path / S.FILENAME).read_text())[S.TEST_ACC] == pytest.approx(summary[S.TEST_ACC])


def test_compile_falls_back_with_a_warning(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler found\nmore detail")

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(UserWarning, match=r"compile=true: torch.compile is unavailable here \(no C\+\+ compiler found"):
        summary = train.run(make_cfg(tmp_path, "compile=true", *SHORT))
    assert summary[S.STATUS] == S.COMPLETED


@pytest.mark.slow
def test_compile_trains_the_compiled_inner_net(tmp_path):
    calls = []
    real_compile = torch.compile

    def spy(model, *args, **kwargs):
        calls.append(type(model).__name__)
        return real_compile(model, *args, **kwargs)

    with warnings.catch_warnings(record=True) as caught, pytest.MonkeyPatch.context() as mp:
        warnings.simplefilter("always")
        mp.setattr(torch, "compile", spy)
        summary = train.run(make_cfg(tmp_path, "compile=true", *SHORT))
    assert summary[S.STATUS] == S.COMPLETED
    assert calls == ["MLP"]  # the inner network, not the LightningModule
    assert not [w for w in caught if "compile=true" in str(w.message)]  # compiled, no eager fallback
    assert all(k.startswith(("net.", "stage_metrics", "val_acc_best", "confusion")) for k in last_weights(tmp_path))


def test_lr_finder_writes_plot_and_applies_suggestion(tmp_path):
    finder = ["callbacks.lr_finder.enabled=true", "callbacks.lr_finder.num_training_steps=25"]
    summary = train.run(
        make_cfg(
            tmp_path,
            *finder,
            "data.batch_size=32",
            "trainer.max_epochs=1",
            "test=false",
            "trainer.log_every_n_steps=1",
            "schedule=cosine",
        )
    )
    assert summary[S.STATUS] == S.COMPLETED
    assert (tmp_path / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    found = json.loads((tmp_path / "lr_find.json").read_text())
    assert 1e-6 <= found["suggestion"] <= 1.0 and len(found["lr"]) == len(found["loss"]) >= 10
    first_lr = float(next(r["train/lr"] for r in rows(tmp_path) if r.get("train/lr")))
    assert first_lr == pytest.approx(found["suggestion"], rel=0.05)  # the schedule starts from the suggested lr


def test_batch_size_finder_scales_data_batch_size(tmp_path):
    finder = [
        "callbacks.batch_size_finder.enabled=true",
        "callbacks.batch_size_finder.max_trials=3",
        "callbacks.batch_size_finder.steps_per_trial=1",
    ]
    summary = train.run(make_cfg(tmp_path, *finder, "data.batch_size=32", *SHORT))
    assert summary[S.STATUS] == S.COMPLETED
    found = json.loads((tmp_path / "batch_size_find.json").read_text())["batch_size"]
    assert found == 32 * 2 ** (3 - 1)  # three trials (32, 64, 128); nothing runs out of memory on CPU


def recorded_run(out: Path, *overrides: str) -> dict:
    """Train with tests.helpers.recording.RecordWeights; its record (epoch-start, per-step and final weights)."""
    record = [
        f"+callbacks.record._target_={RecordWeights.__module__}.RecordWeights",
        f"+callbacks.record.path={out}/w.pt",
    ]
    train.run(make_cfg(out, *overrides, *record))
    return torch.load(out / "w.pt", weights_only=True)


def test_ema_weights_are_the_moving_average_of_the_steps(tmp_path):
    record = recorded_run(tmp_path, "callbacks.ema.enabled=true", "callbacks.ema.decay=0.9", *SHORT)
    assert len(record["steps"]) == 8  # 2 epochs x 4 batches
    expected = dict(record["steps"][0])  # torch's AveragedModel: the first update copies the weights
    for step in record["steps"][1:]:
        expected = {name: 0.9 * expected[name] + 0.1 * w for name, w in step.items()}
    saved = last_weights(tmp_path)
    for name, w in expected.items():
        torch.testing.assert_close(record["final"][name], w, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(saved[name], w, rtol=1e-5, atol=1e-7)  # last.ckpt holds the average too
    assert not torch.allclose(record["final"]["net.classifier.weight"], record["steps"][-1]["net.classifier.weight"])


def test_swa_weights_are_the_mean_over_the_swa_epochs(tmp_path):
    short = [o for o in SHORT if not o.startswith("trainer.max_epochs")]
    record = recorded_run(tmp_path, "callbacks.swa.enabled=true", "callbacks.swa.swa_epoch_start=2",
                          "trainer.max_epochs=3", *short)  # fmt: skip
    starts = record["epoch_starts"]
    assert len(starts) == 3
    # Lightning 2.6 averages the weights each SWA epoch (the 2nd and 3rd, 1-based) starts from
    for name, final in record["final"].items():
        torch.testing.assert_close(final, (starts[1][name] + starts[2][name]) / 2, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(record["final"]["net.classifier.weight"], record["steps"][-1]["net.classifier.weight"])
