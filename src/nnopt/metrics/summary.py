"""The run-summary contract: every run writes one flat `summary.json`; later layers only read it.

Every key is a constant here. Change the contract only by adding keys, and bump SCHEMA_VERSION when you do:
readers accept every version up to the current one, so older sweeps stay readable.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from nnopt import io as _io
from nnopt.errors import NnoptError
from nnopt.metrics import names as N
from nnopt.secrets import redact

#: 1: the first contract; 2: adds train/threads, train/steps, pruned/interrupted statuses and the keys below;
#: 3: adds the run's task (`task`, `task/best_key`, `task/mode`)
SCHEMA_VERSION = 3
SCHEMA_KEY = "schema_version"
FILENAME = "summary.json"

STATUS, COMPLETED, FAILED = "status", "completed", "failed"
PRUNED = "pruned"  # an Optuna trial its pruner stopped early: not a full run, ranked apart
INTERRUPTED = "interrupted"  # stopped by a signal (SIGTERM/SIGINT/SIGUSR1): resumable, not failed
SEED, CHOICES, ERROR = "seed", "choices", "error"
#: the run's task (nnopt.tasks.spec): its name, the key of its best validation value and that value's direction
TASK, TASK_BEST_KEY, TASK_MODE = "task", "task/best_key", "task/mode"
#: run identity and provenance
TASK_NAME, TAGS, OVERRIDES, RUN_DIR = "task_name", "tags", "overrides", "run_dir"
STARTED_AT, FINISHED_AT = "started_at", "finished_at"
#: the step at which a run diverged (callbacks.divergence)
FAILED_AT_STEP = "failed_at_step"
#: the checkpoint `nnopt-eval` tested (a re-test of a run, not a new run of it)
EVALUATED_CKPT = "evaluated_ckpt"
#: best (by the checkpoint monitor) and last checkpoints of the run
CKPT_BEST, CKPT_LAST = "ckpt/best", "ckpt/last"
#: the first epoch whose model is the delivered one (after pruning reached its target / QAT started): every
#: best-so-far value (`val/<metric>_best`) and the best checkpoint count only epochs from it on
BEST_FROM_EPOCH = "train/best_from_epoch"
#: sparsity reached by compression=prune (logged per epoch by the pruning callback)
PRUNE_SPARSITY = "prune/sparsity"
#: the epoch after which an Optuna pruner stopped the trial (status `pruned`)
PRUNED_AT = "pruned_at_epoch"

TEST_ACC = N.key(N.TEST, N.ACC)
TEST_PRECISION = N.key(N.TEST, N.PRECISION)
TEST_RECALL = N.key(N.TEST, N.RECALL)
TEST_F1 = N.key(N.TEST, N.F1)
TEST_LOSS = N.key(N.TEST, N.LOSS)
VAL_ACC_BEST = N.VAL_ACC_BEST
#: regression (data.task=regression; null for classification, as the classification keys are for regression)
TEST_MSE = N.key(N.TEST, N.MSE)
TEST_MAE = N.key(N.TEST, N.MAE)
TEST_R2 = N.key(N.TEST, N.R2)
VAL_MSE_BEST = N.VAL_MSE_BEST
#: binary classification only (optional key)
TEST_AUROC = N.key(N.TEST, N.AUROC)

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
TRAIN_STEPS = "train/steps"  # optimizer steps (trainer.global_step): equals epochs for full-batch gd/lbfgs
TRAIN_PEAK_MEM = "train/peak_mem_mb"
#: optional keys: number of DDP ranks, and training samples rank 0 itself processed (world_size x this = all)
TRAIN_WORLD_SIZE = "train/world_size"
TRAIN_SAMPLES_RANK0 = "train/samples_rank0"
#: optional key: torch CPU threads the training ran with (`trainer.threads`, see nnopt.threads)
TRAIN_THREADS = "train/threads"

#: keys every summary has (metrics are null when a run failed before producing them)
REQUIRED_KEYS = (
    STATUS,
    SEED,
    CHOICES,
    TEST_ACC,
    TEST_PRECISION,
    TEST_RECALL,
    TEST_F1,
    TEST_LOSS,
    VAL_ACC_BEST,
    TEST_MSE,
    TEST_MAE,
    TEST_R2,
    VAL_MSE_BEST,
    PARAMS,
    NONZERO_PARAMS,
    SPARSITY,
    SIZE_BYTES,
    SIZE_BYTES_GZIP,
    LATENCY_B1,
    LATENCY_B256,
    TRAIN_TIME,
    TRAIN_SAMPLES_PER_S,
    TRAIN_EPOCHS,
    TRAIN_PEAK_MEM,
    TRAIN_STEPS,
)
#: keys a summary may have, depending on the run (compression, DDP, sweeps, eval); readers must not require them
OPTIONAL_KEYS = (
    SCHEMA_KEY,
    ERROR,
    TASK_NAME,
    TAGS,
    OVERRIDES,
    RUN_DIR,
    STARTED_AT,
    FINISHED_AT,
    FAILED_AT_STEP,
    EVALUATED_CKPT,
    CKPT_BEST,
    CKPT_LAST,
    PRUNE_SPARSITY,
    PRUNED_AT,
    INT8,
    TEST_ACC_FLOAT,
    TRAIN_WORLD_SIZE,
    TRAIN_SAMPLES_RANK0,
    TEST_AUROC,
    TRAIN_THREADS,
    TASK,
    TASK_BEST_KEY,
    TASK_MODE,
    BEST_FROM_EPOCH,
)


class SummaryError(NnoptError):
    """A summary.json is missing, unreadable or of an older schema."""


def empty_summary() -> dict[str, Any]:
    summary: dict[str, Any] = dict.fromkeys(REQUIRED_KEYS)
    summary.update({SCHEMA_KEY: SCHEMA_VERSION, STATUS: FAILED, CHOICES: {}, ERROR: None})
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
    """Kept for callers of this module: the one implementation is nnopt.io.write_atomic."""
    _io.write_atomic(path, text)


def write_summary(run_dir: str | Path, summary: dict[str, Any]) -> Path:
    path = Path(run_dir) / FILENAME
    write_atomic(path, json.dumps(_clean(redact(summary)), indent=2, sort_keys=True) + "\n")  # no secret values
    return path


def read_summary(path: str | Path) -> dict[str, Any]:
    """Read a summary.json (a file or a run dir) of any schema version up to the current one.

    Raises:
        SummaryError: missing, unreadable, not a JSON object, or written by a newer nnopt.
    """
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SummaryError(f"{path}: no summary.json") from None
    except (OSError, ValueError) as exc:
        raise SummaryError(f"{path}: unreadable summary ({exc})") from None
    if not isinstance(data, dict):
        raise SummaryError(f"{path}: unreadable summary (not a JSON object)")
    found = data.get(SCHEMA_KEY)
    if not isinstance(found, int) or isinstance(found, bool) or not 1 <= found <= SCHEMA_VERSION:
        raise SummaryError(f"{path}: summary schema_version={found!r}, this nnopt reads 1 to {SCHEMA_VERSION}")
    return data
