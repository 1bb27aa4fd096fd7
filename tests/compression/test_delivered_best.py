"""A best-so-far value is the delivered model's: `val/acc_best` of a compressed run (and the best checkpoint) count
only epochs from the one where the model became final (pruning at its target), the summary says from which epoch
on, and the value equals the delivered model's validation score — also as the objective of `acc_vs_size`."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nnopt import train
from nnopt.metrics import summary as S
from nnopt.tasks.classification import Classifier
from tests.helpers import QUIET, ROOT, cli_env, make_cfg

#: a run whose dense epochs validate best: dense for epochs 0-3, pruned to 99 % at epochs 4-5, two more epochs
PRUNED = [
    *QUIET,
    "compression=prune",
    "compression.sparsity=0.99",
    "compression.start_epoch=4",
    "compression.end_epoch=5",
    "trainer.max_epochs=7",
    "optimizer.lr=0.01",
    "callbacks.early_stopping=null",
    "model.hidden=[32]",
    "logger=csv",
]


def val_acc_per_epoch(run_dir: Path) -> dict[int, float]:
    rows = list(csv.DictReader((run_dir / "csv" / "metrics.csv").open()))
    return {int(r["epoch"]): float(r["val/acc"]) for r in rows if r.get("val/acc")}


@torch.no_grad()
def delivered_val_acc(run_dir: Path, summary: dict) -> float:
    """The validation accuracy of the model the run delivers (its best checkpoint), computed here."""
    from nnopt import build

    module = Classifier.load_from_checkpoint(summary[S.CKPT_BEST])
    dm = build.build_datamodule(make_cfg(run_dir.parent / "probe", "model.hidden=[32]"))
    x, y = dm.tensors["val"]
    return float((module(x).argmax(1) == y).float().mean())


@pytest.fixture(scope="module")
def pruned(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("delivered") / "run"
    summary = train.run(make_cfg(out, *PRUNED))
    assert summary[S.STATUS] == S.COMPLETED
    return out, summary


def test_best_counts_only_epochs_of_the_final_model(pruned) -> None:
    out, summary = pruned
    per_epoch = val_acc_per_epoch(out)
    assert summary[S.BEST_FROM_EPOCH] == 5  # the pruning schedule's last step
    final = [acc for epoch, acc in per_epoch.items() if epoch >= 5]
    assert summary[S.VAL_ACC_BEST] == pytest.approx(max(final), abs=1e-6)
    # the run's densest epochs validated higher: a running maximum over all epochs would report more
    assert max(per_epoch.values()) > max(final)


def test_best_is_the_delivered_models_validation_score(pruned) -> None:
    out, summary = pruned
    ckpt = torch.load(summary[S.CKPT_BEST], weights_only=True)
    assert ckpt["epoch"] >= summary[S.BEST_FROM_EPOCH]
    assert delivered_val_acc(out, summary) == pytest.approx(summary[S.VAL_ACC_BEST], abs=1e-6)


@pytest.mark.slow  # a 2-trial Optuna search of 7-epoch jobs, ~50 s
def test_acc_vs_size_objective_is_the_delivered_models_validation_score(tmp_path) -> None:
    args = [
        "hparams_search=acc_vs_size",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=1",
        *PRUNED[:-1],
        "logger=csv",
        f"paths.log_dir={tmp_path}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "nnopt.train", *args], capture_output=True, text=True, env=cli_env(), cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in sorted((tmp_path / "sweep").glob("*/summary.json"))]
    assert len(summaries) == 2
    for summary in summaries:
        run_dir = Path(summary[S.RUN_DIR])
        assert summary[S.BEST_FROM_EPOCH] == 5
        assert delivered_val_acc(run_dir, summary) == pytest.approx(summary[S.VAL_ACC_BEST], abs=1e-6)
