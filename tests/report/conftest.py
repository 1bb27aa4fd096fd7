"""A real 2-job `logger=many` sweep (CSV, TensorBoard, W&B offline, MLflow), shared by the report and tracker
tests of this folder: every tracker leaves its own copy of summary.json in or beside the job dirs."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import TINY, run_cli


@dataclass
class Sweep:
    dir: Path  # the sweep dir (holds multirun.yaml)
    result: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def many_sweep(tmp_path_factory) -> Sweep:
    """`nnopt-train -m logger=many optimizer=sgd,adam` (a few batches each)."""
    log_dir = tmp_path_factory.mktemp("many_sweep")
    result = run_cli("train", "-m", "logger=many", "optimizer=sgd,adam", *TINY, log_dir=log_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    (marker,) = log_dir.rglob("multirun.yaml")
    return Sweep(marker.parent, result)
