"""The run-summary contract: every run writes one flat `summary.json`; later layers only read it.

Change it only by adding keys (bump SCHEMA_VERSION when you do).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from nnopt.errors import NnoptError
from nnopt.metrics import names as N

SCHEMA_VERSION = 1
FILENAME = "summary.json"

STATUS, COMPLETED, FAILED = "status", "completed", "failed"
SEED, CHOICES, ERROR = "seed", "choices", "error"

TEST_ACC = N.key(N.TEST, N.ACC)
TEST_PRECISION = N.key(N.TEST, N.PRECISION)
TEST_RECALL = N.key(N.TEST, N.RECALL)
TEST_F1 = N.key(N.TEST, N.F1)
TEST_LOSS = N.key(N.TEST, N.LOSS)
VAL_ACC_BEST = N.VAL_ACC_BEST

PARAMS = "model/params"
NONZERO_PARAMS = "model/nonzero_params"
SPARSITY = "model/sparsity"
SIZE_BYTES = "model/size_bytes"
SIZE_BYTES_GZIP = "model/size_bytes_gzip"
LATENCY_B1 = "model/latency_ms_b1"
LATENCY_B256 = "model/latency_ms_b256"
#: optional keys (not in REQUIRED_KEYS): whether the measured model is int8; float accuracy beside it
INT8 = "model/int8"
TEST_ACC_FLOAT = N.key(N.TEST, "acc_float")

TRAIN_TIME = "train/time_s"
TRAIN_SAMPLES_PER_S = "train/samples_per_s"
TRAIN_EPOCHS = "train/epochs"
TRAIN_PEAK_MEM = "train/peak_mem_mb"
#: optional keys: number of DDP ranks, and training samples rank 0 itself processed (world_size x this = all)
TRAIN_WORLD_SIZE = "train/world_size"
TRAIN_SAMPLES_RANK0 = "train/samples_rank0"

#: keys every summary has (metrics are null when a run failed before producing them)
REQUIRED_KEYS = (
    STATUS, SEED, CHOICES,
    TEST_ACC, TEST_PRECISION, TEST_RECALL, TEST_F1, TEST_LOSS, VAL_ACC_BEST,
    PARAMS, NONZERO_PARAMS, SPARSITY, SIZE_BYTES, SIZE_BYTES_GZIP, LATENCY_B1, LATENCY_B256,
    TRAIN_TIME, TRAIN_SAMPLES_PER_S, TRAIN_EPOCHS, TRAIN_PEAK_MEM,
)  # fmt: skip


class SummaryError(NnoptError):
    """A summary.json is missing, unreadable or of an older schema."""


def empty_summary() -> dict[str, Any]:
    summary: dict[str, Any] = dict.fromkeys(REQUIRED_KEYS)
    summary.update({"schema_version": SCHEMA_VERSION, STATUS: FAILED, CHOICES: {}, ERROR: None})
    return summary


def _clean(value: Any) -> Any:
    """JSON-safe: tensors/numpy to Python numbers, NaN/inf to null."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_atomic(path: str | Path, text: str) -> None:
    """Write via a temp file in the same dir + rename, so readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_summary(run_dir: str | Path, summary: dict[str, Any]) -> Path:
    path = Path(run_dir) / FILENAME
    write_atomic(path, json.dumps(_clean(summary), indent=2, sort_keys=True) + "\n")
    return path


def read_summary(path: str | Path) -> dict[str, Any]:
    """Read a summary.json (a file or a run dir); SummaryError if unreadable or of another schema."""
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SummaryError(f"{path}: no summary.json") from None
    except (OSError, ValueError) as exc:
        raise SummaryError(f"{path}: unreadable summary ({exc})") from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        found = data.get("schema_version") if isinstance(data, dict) else None
        raise SummaryError(f"{path}: summary schema_version={found!r}, this nnopt reads {SCHEMA_VERSION}")
    return data
