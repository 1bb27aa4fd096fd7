"""The results model: summary statistics, the run's metadata, and `<out>/results.json` on disk.

results.json is the bench's one product: RESULTS.md is rendered from the file (never from the in-memory
figures), so re-rendering a committed results.json reproduces its RESULTS.md.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nnopt.metrics import summary as S
from nnopt_bench.config import TARGETS, Mode

FILENAME = "results.json"


def stats(values: list[float]) -> dict[str, float]:
    """Median with min, max and count: how every repeated figure is stored."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def measured(epochs: list[float]) -> list[float]:
    """Drop each repetition's first (warm-up) epoch when there is more than one."""
    return epochs[1:] if len(epochs) > 1 else epochs


def ratio(a: dict[str, float], b: dict[str, float]) -> float:
    return a["median"] / b["median"]


def error_record(exc: BaseException) -> dict[str, str]:
    """A failed section or variant: its first error line, shown in the table in place of figures."""
    return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}


def machine(threads: int) -> dict[str, Any]:
    import pytorch_lightning as pl
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": threads,
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def meta(
    command: str, mode: Mode, elapsed_s: float, threads: int, load_start: tuple[float, ...], work_dir: str | None
) -> dict[str, Any]:
    """What produced the figures: command, mode, date, machine, load and targets."""
    return {
        "command": command,
        "mode": mode.name,
        "mode_settings": asdict(mode),
        "data": mode.data,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_s": elapsed_s,
        "machine": machine(threads),
        "load_start": " ".join(f"{v:.2f}" for v in load_start),
        "load_end": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "targets": TARGETS,
        "work_dir": work_dir,
    }


def carry_over(results: dict[str, Any], previous: Path) -> None:
    """`--only`: keep the other sections of the last run's results.json, each labelled with where it came from."""
    if not previous.is_file():
        return
    try:
        old = json.loads(previous.read_text())
    except ValueError:
        old = {}
    origin = f"{old.get('meta', {}).get('date', '?')}, `{old.get('meta', {}).get('command', '?')}`"
    for name, section in old.items():
        if name != "meta" and name not in results and isinstance(section, dict):
            results[name] = {**section, "carried_from": section.get("carried_from", origin)}


def write(out: Path, results: dict[str, Any]) -> Path:
    """`<out>/results.json`: JSON-safe (NaN -> null), keys sorted (stable diffs of the committed file)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / FILENAME
    S.write_atomic(path, json.dumps(S._clean(results), indent=2, sort_keys=True) + "\n")
    return path


def load(out: Path) -> dict[str, Any]:
    return json.loads((out / FILENAME).read_text())
