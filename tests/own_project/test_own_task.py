"""Your own task: a researcher's TaskModule subclass (its own loss, metrics and predictions) in one file of their own
package, chosen with `task=<name>` from their own conf/, gets what nnopt's tasks get: optimizer and schedule,
pruning and QAT, fused steps, the summary, the report and the export.

The user project (written into tmp_path, outside the checkout): digits with three multi-hot labels (is even, is > 4,
is prime) and a multi-label task: BCE-with-logits, macro F1 / per-label accuracy, sigmoid predictions.
"""

from __future__ import annotations

import json
import math
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from nnopt import build
from nnopt.metrics import summary as S
from nnopt.tasks import spec
from nnopt.train import run
from tests.helpers import make_cfg

PACKAGE = "multilabelproject"

TASK_FILE = '''\
"""Multi-label digits: three yes/no questions about each digit, trained with BCE."""

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MultilabelAccuracy, MultilabelF1Score

from nnopt.data.base import Arrays, InMemoryDataModule
from nnopt.tasks.module import TaskModule
from nnopt.tasks.spec import MAX, Task, register

PRIMES = (2, 3, 5, 7)


def multi_hot(digit: np.ndarray) -> np.ndarray:
    """is even, is > 4, is prime."""
    return np.stack([digit % 2 == 0, digit > 4, np.isin(digit, PRIMES)], axis=1).astype(np.int64)


class MultiHotDigits(InMemoryDataModule):
    """sklearn's 8x8 digits with multi-hot targets (float, one column per label)."""

    def load_arrays(self) -> Arrays:
        from sklearn.datasets import load_digits

        digits = load_digits()
        return Arrays(digits.images.astype(np.float32) / 16.0, multi_hot(digits.target))

    @property
    def num_labels(self) -> int:
        return self.num_classes  # one output unit per label

    def prepare(self) -> None:
        super().prepare()
        self.tensors = {k: (x, y.float()) for k, (x, y) in self.tensors.items()}


def label_metrics(num_labels: int) -> MetricCollection:
    return MetricCollection(
        {
            "f1": MultilabelF1Score(num_labels=num_labels, average="macro"),
            "label_acc": MultilabelAccuracy(num_labels=num_labels, average="micro"),
        }
    )


class MultiLabel(TaskModule):
    """Independent yes/no per label: BCE with logits; macro F1 ranks epochs and runs."""

    task = register(Task(name="multilabel", module="", metrics=("f1", "label_acc"), best="f1", mode=MAX))

    def __init__(self, net: nn.Module, optimizer: Any, num_labels: int, pos_weight: float = 1.0, **kwargs: Any):
        super().__init__(net, optimizer, **kwargs)
        self.num_labels = num_labels
        self.pos_weight = pos_weight
        self.stage_metrics = nn.ModuleDict({"val": label_metrics(num_labels), "test": label_metrics(num_labels)})

    @classmethod
    def config_kwargs(cls, cfg: Any, shapes: Any) -> dict[str, Any]:
        return {"num_labels": int(shapes.num_classes)}

    def criterion(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        weight = torch.full((self.num_labels,), self.pos_weight, device=outputs.device)
        return F.binary_cross_entropy_with_logits(outputs, y.float(), pos_weight=weight)

    def metric_inputs(self, outputs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return outputs.sigmoid(), y.long()

    def predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.sigmoid()
'''

FILES = {
    f"{PACKAGE}/__init__.py": "",
    f"{PACKAGE}/multilabel.py": TASK_FILE,
    "conf/task/multilabel.yaml": f"""\
        _target_: {PACKAGE}.multilabel.MultiLabel
        pos_weight: 1.0
        monitor: val/f1   # what checkpointing and early stopping watch
        mode: max
        """,
    "conf/data/multihot_digits.yaml": f"""\
        _target_: {PACKAGE}.multilabel.MultiHotDigits
        name: multihot_digits
        num_classes: 3      # labels: one output unit each
        batch_size: 64
        eval_batch_size: 1024
        val_fraction: 0.15
        test_fraction: 0.15
        """,
}

BASE = [
    "data=multihot_digits",
    "task=multilabel",
    "model.hidden=[32]",
    "callbacks.early_stopping=null",
    "trainer.threads=1",
]
COMPRESSED = [*BASE, "compression=prune_qat", "schedule=onecycle", "trainer.max_epochs=4", "test_ckpt=last"]


#: the MLP for 8x8 inputs, 3 outputs: Linear(64, 32) and Linear(32, 3)
WEIGHTS, BIASES = 64 * 32 + 32 * 3, 32 + 3


def write_project(root: Path) -> Path:
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text) if rel.endswith(".yaml") else text)
    return root / "conf"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The user's project dir on sys.path (module scope: one import of their task for every test)."""
    root = tmp_path_factory.mktemp("own_task") / "project"
    conf = write_project(root)
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(root))
    yield conf
    mp.undo()
    # the rest of the session sees nnopt's tasks only (error messages list the registered ones)
    spec._REGISTRY.pop("multilabel", None)
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]


def searchpath(conf: Path) -> str:
    return f"hydra.searchpath=[file://{conf}]"


def trivial_f1(y: np.ndarray) -> float:
    """The better macro F1 of two data-blind predictors: each label's majority value, or 'yes' for every label."""

    def macro_f1(pred: np.ndarray) -> float:
        scores = []
        for j in range(y.shape[1]):
            tp = float(((pred[:, j] == 1) & (y[:, j] == 1)).sum())
            fp = float(((pred[:, j] == 1) & (y[:, j] == 0)).sum())
            fn = float(((pred[:, j] == 0) & (y[:, j] == 1)).sum())
            scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        return float(np.mean(scores))

    majority = np.broadcast_to((y.mean(axis=0) >= 0.5).astype(int), y.shape)
    return max(macro_f1(majority), macro_f1(np.ones_like(y)))


@pytest.fixture(scope="module")
def compressed_run(project, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("own_task_run") / "run"
    summary = run(make_cfg(out, *COMPRESSED, "logger=csv", searchpath(project)))
    return out, summary


def test_own_task_trains_with_prune_qat_and_onecycle(project, compressed_run):
    out, summary = compressed_run
    assert summary[S.STATUS] == S.COMPLETED, summary.get(S.ERROR)
    assert summary[S.TASK] == "multilabel" and summary[S.TASK_MODE] == "max"
    assert summary[S.TASK_BEST_KEY] == "val/f1_best"
    best = summary["val/f1_best"]
    assert isinstance(best, float) and math.isfinite(best) and 0.0 < best <= 1.0
    assert summary["choices"]["task"] == "multilabel" and summary["choices"]["schedule"] == "onecycle"
    # pruning reached its target on the weight matrices (biases stay dense, so the whole model is a little below)
    assert summary[S.PARAMS] == WEIGHTS + BIASES
    zeros = summary[S.PARAMS] - summary[S.NONZERO_PARAMS]
    assert zeros / WEIGHTS >= 0.9 - 2e-3 and summary[S.SPARSITY] >= 0.9 * WEIGHTS / (WEIGHTS + BIASES) - 2e-3
    assert summary[S.INT8] is True and (out / "checkpoints" / "model_int8.pt").is_file()
    # the int8 model beats any predictor that ignores the image, on the test split the summary reports
    dm = build.build_datamodule(make_cfg(out.parent / "probe", *BASE, searchpath(project)))
    y_test = dm.tensors["test"][1].numpy().astype(int)
    baseline = trivial_f1(y_test)
    assert 0.5 < baseline < 0.75  # the three labels are roughly balanced
    assert summary["test/f1"] > baseline + 0.1, (summary["test/f1"], baseline)
    assert 0.0 < summary["test/label_acc"] <= 1.0
    # the task's metrics reached the CSV logger per epoch
    header = (out / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"val/f1", "val/f1_best", "val/label_acc", "train/loss"} <= set(header)
    assert {"summary/test/f1", "summary/val/f1_best"} <= set(header)  # the final numbers, as for nnopt's tasks


def test_final_table_shows_the_tasks_keys(compressed_run, capsys):
    from nnopt.pipeline import report_summary

    _, summary = compressed_run
    capsys.readouterr()
    report_summary(summary, [])
    table = capsys.readouterr().err
    assert "val/f1_best" in table and "test/f1" in table
    assert "val/acc_best" not in table and "test/acc " not in table


def test_report_ranks_by_the_tasks_best_key(compressed_run):
    from nnopt.report.cli import main as report_main

    out, summary = compressed_run
    assert report_main([str(out), "--quiet"]) == 0
    md = (out / "report.md").read_text()
    assert "Sorted by `val/f1_best` (descending)" in md, md  # the task's best key and mode, not val/acc_best
    assert f"{summary['val/f1_best']:.4g}" in md and f"{summary['test/f1']:.4g}" in md, md
    rows = (out / "report.csv").read_text().splitlines()
    assert "val/f1_best" in rows[0].split(",")


def test_export_verifies_the_tasks_metric(project, compressed_run):
    from nnopt.export import main as export_main

    out, summary = compressed_run
    export_main([str(out), "--config-dir", str(project)])
    report = json.loads((out / "onnx" / "export.json").read_text())
    models = report["models"]
    assert (out / "onnx" / "model_int8.onnx").is_file()
    float_entry = models["float"]
    assert "skipped" in float_entry or (out / "onnx" / "model.onnx").is_file()
    checked = [entry for entry in models.values() if "skipped" not in entry]
    assert checked and "int8" in models and "skipped" not in models["int8"]
    for entry in checked:
        assert entry["metric"] == "f1"
        assert 0.0 < entry["f1_torch"] <= 1.0
        assert entry["f1_onnx"] == pytest.approx(entry["f1_torch"], abs=0.01)
    assert models["int8"]["f1_torch"] == pytest.approx(summary["test/f1"], abs=1e-6)


def fit(project: Path, tmp: Path, k: int) -> tuple[dict[str, torch.Tensor], pl.Trainer]:
    """Build and fit as `nnopt.train.run` does (see tests/test_fused.py); the final float weights, the trainer."""
    cfg = make_cfg(
        tmp / f"k{k}", *BASE, "logger=none", "trainer.max_epochs=2", f"trainer.fused_steps={k}", searchpath(project)
    )
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = build.build_datamodule(cfg)
    lit = build.build_module(cfg, dm)
    assert type(lit).__name__ == "MultiLabel" and lit.fusion.steps == k
    trainer = build.build_trainer(cfg, build.build_callbacks(cfg), [])
    lit.train()
    trainer.fit(lit, datamodule=dm)
    assert trainer.global_step > 0 and lit.automatic_optimization is (k == 1)
    weights = {n: v.detach().float().clone() for n, v in lit.net.state_dict().items() if v.is_floating_point()}
    return weights, trainer


def test_progress_bar_shows_the_tasks_monitored_metric(project, tmp_path):
    from nnopt.callbacks.terminal import CompactProgressBar

    bar = "callbacks.progress_bar={_target_:nnopt.callbacks.terminal.CompactProgressBar}"
    cfg = make_cfg(
        tmp_path,
        *BASE,
        "logger=none",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        bar,
        searchpath(project),
    )
    dm = build.build_datamodule(cfg)
    lit = build.build_module(cfg, dm)
    trainer = build.build_trainer(cfg, build.build_callbacks(cfg), [])
    lit.train()
    trainer.fit(lit, datamodule=dm)
    (progress,) = [cb for cb in trainer.callbacks if isinstance(cb, CompactProgressBar)]
    assert set(progress.get_metrics(trainer, lit)) == {"loss", "val/f1"}


def test_own_task_fused_steps_give_the_same_weights(project, tmp_path):
    (plain, t1), (fused4, t4) = fit(project, tmp_path, 1), fit(project, tmp_path, 4)
    assert t4.num_training_batches < t1.num_training_batches and t4.global_step == t1.global_step  # it fused
    assert plain.keys() == fused4.keys() and plain
    for name in plain:
        torch.testing.assert_close(fused4[name], plain[name], atol=1e-6, rtol=0, msg=name)
