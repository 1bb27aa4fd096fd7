"""Find a sweep's jobs and read what they left on disk: summary.json and the CSV logger's metrics.

Reads files only (never imports training code), so it works on any sweep, finished or not.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnopt.errors import NnoptError
from nnopt.metrics import names as N
from nnopt.metrics import summary as S

MISSING = "missing"  # a job dir without summary.json: still running, or killed
UNREADABLE = "unreadable"  # a summary.json that cannot be read or has ill-typed fields: listed, never ranked
#: summary key that marks an `nnopt-eval` re-test of a checkpoint (not a new training run)
EVALUATED_CKPT = "evaluated_ckpt"
#: the file Hydra writes at the root of every sweep dir: job dirs below it belong to that sweep
SWEEP_MARKER = "multirun.yaml"
#: override keys that never tell two configurations apart
NOT_A_CHOICE = ("seed", "resume", "ckpt_path")
#: override keys a sweeper adds to tell its jobs apart (the Optuna sweeper's trial number): never a swept choice
SWEEPER_KEYS = ("callbacks.optuna_pruning.trial_number",)
#: folders where trackers keep their own copies of a run's files (W&B `wandb/offline-run-*/files/`, MLflow
#: `mlruns/<experiment>/<run>/artifacts/`): a summary.json in them is a copy, never a job of its own
TRACKER_DIRS = ("wandb", "mlruns")


class ReportError(NnoptError):
    """The sweep dir or a report option is unusable."""


@dataclass
class Run:
    job: str  # path of the job dir relative to the sweep dir ("3", "trial/12", ...)
    dir: Path
    summary: dict[str, Any] | None
    params: dict[str, str] = field(default_factory=dict)  # override key -> value
    sweep: str = ""  # the sweep dir it belongs to, relative to the reported dir ("" for single runs)

    @property
    def status(self) -> str:
        return self.summary.get(S.STATUS, MISSING) if self.summary else MISSING

    @property
    def seed(self) -> Any:
        return self.summary.get(S.SEED) if self.summary else self.params.get("seed")

    def value(self, key: str) -> float | None:
        value = (self.summary or {}).get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        return float(value)


def _natural(text: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _overrides_file(job_dir: Path) -> list[str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    # one "- key=value" per line, as Hydra writes it; avoids a YAML dependency for a flat list
    lines = [ln[2:].strip() for ln in path.read_text().splitlines() if ln.startswith("- ")]
    return [ln.strip("'\"") for ln in lines]


def _params(overrides: list[str]) -> dict[str, str]:
    params = {}
    for item in overrides:
        if "=" in item:
            key, value = item.split("=", 1)
            params[key.lstrip("+~")] = value
    return params


#: summary values a report ranks or shows: numbers (a string or a bool there is a damaged or foreign file);
#: `model/int8` is the one flag among them
NUMERIC_PREFIXES = (f"{N.VAL}/", f"{N.TEST}/", "model/", "train/")
NUMERIC_KEYS = (S.PRUNE_SPARSITY, S.PRUNED_AT, S.FAILED_AT_STEP)
#: of those, what is never below zero (sizes, counts, times, latencies, memory)
NON_NEGATIVE_KEYS = (
    S.PARAMS,
    S.NONZERO_PARAMS,
    S.SPARSITY,
    S.SIZE_BYTES,
    S.SIZE_BYTES_GZIP,
    S.LATENCY_B1,
    S.LATENCY_B256,
    S.TRAIN_TIME,
    S.TRAIN_SAMPLES_PER_S,
    S.TRAIN_EPOCHS,
    S.TRAIN_STEPS,
    S.TRAIN_PEAK_MEM,
)


def summary_problem(summary: dict[str, Any]) -> str | None:
    """What makes a parsed summary unusable for the report (fields of the wrong type), or None."""
    expected = {S.STATUS: str, "overrides": list, S.CHOICES: dict, "task_name": str, S.ERROR: str}
    for key, kind in expected.items():
        value = summary.get(key)
        if value is not None and not isinstance(value, kind):
            return f"{key}={value!r} is not a {kind.__name__}"
    if not isinstance(summary.get(S.STATUS), str):
        return "it has no status"
    if any(not isinstance(item, str) for item in summary.get("overrides") or []):
        return "overrides must be strings"
    seed = summary.get(S.SEED)
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        return f"{S.SEED}={seed!r} is not an integer"
    for key, value in summary.items():
        if value is None or key == S.INT8 or key not in NUMERIC_KEYS and not key.startswith(NUMERIC_PREFIXES):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{key}={value!r} is not a number"
        if key in NON_NEGATIVE_KEYS and value < 0:
            return f"{key}={value!r} is negative"
    return None


def _read(job_dir: Path) -> dict[str, Any] | None:
    """The job's summary; an unreadable or ill-typed one becomes a stand-in with status `unreadable`."""
    if not (job_dir / S.FILENAME).is_file():
        return None
    try:
        summary = S.read_summary(job_dir)
    except S.SummaryError as exc:
        return {S.STATUS: UNREADABLE, S.ERROR: str(exc)}
    problem = summary_problem(summary)
    if problem:
        return {S.STATUS: UNREADABLE, S.ERROR: f"{job_dir / S.FILENAME}: ill-typed summary ({problem})"}
    return summary


def _sweep_of(job_dir: Path, root: Path) -> str:
    """The nearest dir from `job_dir` up to `root` holding Hydra's multirun.yaml, relative to `root`."""
    for folder in (job_dir, *job_dir.parents):
        if (folder / SWEEP_MARKER).is_file():
            return str(folder.relative_to(root)) if folder.is_relative_to(root) else "."
        if folder == root:
            break
    return ""


def _is_copy(folder: Path, root: Path) -> bool:
    """Whether `folder` is inside Hydra's/submitit's bookkeeping or a tracker's store (relative to `root`)."""
    parts = folder.relative_to(root).parts
    return any(part in (".hydra", ".submitit", *TRACKER_DIRS) for part in parts)


def collect(sweep_dir: str | Path) -> list[Run]:
    """Every job under `sweep_dir`: those with a summary.json and Hydra job dirs that have none yet.

    An unreadable or ill-typed summary.json is kept as a run with status `unreadable` (the report lists it and
    the exit status says so). Raises ReportError when there is no summary at all.
    """
    root = Path(sweep_dir)
    if not root.is_dir():
        raise ReportError(f"{root}: no such directory")
    job_dirs = {p.parent for p in root.rglob(S.FILENAME)} | {p.parent for p in root.rglob(".hydra")}
    job_dirs = {d for d in job_dirs if not _is_copy(d, root)}  # an `nnopt-eval` re-test inside a job dir stays
    runs = []
    for job_dir in sorted(job_dirs, key=lambda d: _natural(str(d.relative_to(root)))):
        summary = _read(job_dir)
        overrides = (summary or {}).get("overrides") or _overrides_file(job_dir)
        job = str(job_dir.relative_to(root)) or "."
        runs.append(Run(job, job_dir, summary, _params(overrides), _sweep_of(job_dir, root)))
    if not any(r.summary for r in runs):
        raise ReportError(f"{root}: no summary.json in it or below (not a sweep or run dir, or no job finished yet)")
    return runs


def varying_keys(runs: list[Run]) -> list[str]:
    """Override keys whose value differs between runs (what the sweep swept), seed excluded."""
    keys: dict[str, set[str | None]] = {}
    for run in runs:
        for key in run.params:
            keys.setdefault(key, set())
    for run in runs:
        for key in keys:
            keys[key].add(run.params.get(key))
    plumbing = (*NOT_A_CHOICE, *SWEEPER_KEYS)
    return [k for k, values in keys.items() if len(values) > 1 and k not in plumbing and not k.startswith("hydra")]


def read_curves(run: Run) -> dict[str, list[tuple[int, float]]]:
    """Per-epoch validation accuracy (regression: MSE) and loss from the CSV logger's metrics.csv (empty if not
    logged)."""
    curves: dict[str, list[tuple[int, float]]] = {N.VAL_ACC: [], N.VAL_MSE: [], N.VAL_LOSS: []}
    for path in sorted(run.dir.glob("csv*/**/metrics.csv")):
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                for key, points in curves.items():
                    text = row.get(key) or ""
                    if text and row.get("epoch", "").isdigit():
                        try:
                            points.append((int(row["epoch"]), float(text)))
                        except ValueError:
                            continue
        break  # one metrics.csv per run; a resumed run appends to the same one
    return curves


def group_label(run: Run) -> str:
    """What may be ranked together: one sweep dir, one task, one data set; `nnopt-eval` re-tests apart."""
    summary = run.summary or {}
    choices = summary.get(S.CHOICES) if isinstance(summary.get(S.CHOICES), dict) else {}
    parts = [{"": "single runs", ".": "this sweep"}.get(run.sweep, f"sweep {run.sweep}")]
    if summary.get("task_name"):
        parts.append(f"task {summary['task_name']}")
    if choices.get("data"):
        parts.append(f"data {choices['data']}")
    if summary.get(EVALUATED_CKPT):
        parts.append("nnopt-eval re-tests")
    return ", ".join(parts)


def partition(runs: list[Run]) -> list[tuple[str, list[Run]]]:
    """Runs grouped by :func:`group_label`; a job without a (readable) summary joins its sweep's group."""
    groups: dict[str, list[Run]] = {}
    by_sweep: dict[str, str] = {}
    for run in runs:
        if run.summary and run.status != UNREADABLE:
            label = group_label(run)
            groups.setdefault(label, []).append(run)
            by_sweep.setdefault(run.sweep, label)
    for run in runs:
        if not run.summary or run.status == UNREADABLE:
            label = by_sweep.get(run.sweep) or next(iter(groups), group_label(run))
            groups.setdefault(label, []).append(run)
    order = {id(r): i for i, r in enumerate(runs)}
    return [(label, sorted(members, key=lambda r: order[id(r)])) for label, members in groups.items()]
