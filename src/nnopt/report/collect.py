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
#: override keys that never tell two configurations apart
NOT_A_CHOICE = ("seed", "resume", "ckpt_path")


class ReportError(NnoptError):
    """The sweep dir or a report option is unusable."""


@dataclass
class Run:
    job: str  # path of the job dir relative to the sweep dir ("3", "trial/12", ...)
    dir: Path
    summary: dict[str, Any] | None
    params: dict[str, str] = field(default_factory=dict)  # override key -> value

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


def collect(sweep_dir: str | Path) -> list[Run]:
    """Every job under `sweep_dir`: those with a summary.json and Hydra job dirs that have none yet.

    Raises ReportError when there is no summary at all, SummaryError on an unreadable or older summary.
    """
    root = Path(sweep_dir)
    if not root.is_dir():
        raise ReportError(f"{root}: no such directory")
    job_dirs = {p.parent for p in root.rglob(S.FILENAME)} | {p.parent for p in root.rglob(".hydra")}
    job_dirs = {d for d in job_dirs if ".hydra" not in d.parts and ".submitit" not in d.parts}
    runs = []
    for job_dir in sorted(job_dirs, key=lambda d: _natural(str(d.relative_to(root)))):
        summary = S.read_summary(job_dir) if (job_dir / S.FILENAME).is_file() else None
        overrides = (summary or {}).get("overrides") or _overrides_file(job_dir)
        runs.append(Run(str(job_dir.relative_to(root)) or ".", job_dir, summary, _params(overrides)))
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
    return [k for k, values in keys.items() if len(values) > 1 and k not in NOT_A_CHOICE and not k.startswith("hydra")]


def read_curves(run: Run) -> dict[str, list[tuple[int, float]]]:
    """Per-epoch validation accuracy and loss from the CSV logger's metrics.csv (empty if not logged)."""
    curves: dict[str, list[tuple[int, float]]] = {N.VAL_ACC: [], N.VAL_LOSS: []}
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
