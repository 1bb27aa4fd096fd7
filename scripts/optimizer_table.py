"""Optimizer x schedule table (Markdown) from the `experiment=optimizer_shootout` preset, run for real.

    .venv/bin/python scripts/optimizer_table.py [--data digits] [--model mlp] [--epochs 10] \
        [--out docs/optimizer_shootout.md] [extra nnopt-train overrides ...]

One `nnopt-train experiment=optimizer_shootout` multirun (the preset's own grid, sequential, basic launcher) into
a temporary folder; each cell is read back from that job's summary.json (test accuracy of the last epoch's
weights, and the training wall time).
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from nnopt.config import CONFIG_DIR
from nnopt.metrics import summary as S
from nnopt.report.collect import collect

ROOT = Path(__file__).resolve().parents[1]


def preset_grid() -> tuple[list[str], list[str]]:
    """The optimizers and schedules the preset sweeps (read from its YAML, so the two never drift apart)."""
    params = OmegaConf.load(Path(CONFIG_DIR) / "experiment" / "optimizer_shootout.yaml").hydra.sweeper.params
    return params.optimizer.split(","), params.schedule.split(",")


def run_sweep(sweep_dir: Path, overrides: list[str]) -> None:
    cmd = [
        sys.executable,
        "-m",
        "nnopt.train",
        "experiment=optimizer_shootout",
        *overrides,
        f"paths.log_dir={sweep_dir.parent}",
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.callbacks.sweep.report=false",
    ]
    print("+", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=False)  # a failed job is recorded in its summary and shown as "failed"


def markdown(
    grid: dict[tuple[str, str], dict | None], optimizers: list[str], schedules: list[str], title: str, command: str
) -> str:
    lines = [
        f"# {title}",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}.",
        "",
        "Each cell: test accuracy of the last epoch's weights, training seconds in brackets; the best schedule "
        "per optimizer in bold. Default lr of each optimizer (`conf/optimizer/`), default schedule options "
        "(`conf/schedule/`), one seed.",
        "",
        "| optimizer | " + " | ".join(schedules) + " |",
        "|---|" + "---|" * len(schedules),
    ]
    for opt in optimizers:
        accs = [(grid.get((opt, s)) or {}).get(S.TEST_ACC) for s in schedules]
        best = max((a for a in accs if a is not None), default=None)
        cells = []
        for sched, acc in zip(schedules, accs, strict=True):
            summary = grid.get((opt, sched)) or {}
            if acc is None:
                cells.append(summary.get(S.STATUS, "missing"))
                continue
            text = f"{acc:.4f}"
            cells.append(f"{f'**{text}**' if acc == best else text} ({summary.get(S.TRAIN_TIME) or 0:.1f}s)")
        lines.append(f"| {opt} | " + " | ".join(cells) + " |")
    notes = []
    for o in optimizers:
        for sch in schedules:
            summary = grid.get((o, sch)) or {}
            if summary.get(S.STATUS) == S.FAILED:
                notes.append(f"{o} + {sch}: {str(summary.get(S.ERROR) or 'no error recorded').splitlines()[0]}")
            elif (summary.get(S.TEST_ACC) or 1.0) < 0.2:
                notes.append(f"{o} + {sch}: near chance level (training diverged without a non-finite loss)")
    if notes:
        lines += ["", "Failed or diverged:", "", *[f"- {n}" for n in notes]]
    lines += [
        "",
        "Times are wall-clock seconds of the training loop on a shared machine: other jobs running at the "
        "same time inflate some of them; compare accuracies, and re-run for timings you rely on.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default="docs/optimizer_shootout.md")
    parser.add_argument("overrides", nargs="*", help="extra nnopt-train overrides, e.g. seed=1")
    args = parser.parse_args()
    optimizers, schedules = preset_grid()
    overrides = [
        f"data={args.data}",
        f"model={args.model}",
        f"trainer.max_epochs={args.epochs}",
        "test_ckpt=last",
        "logger=none",
        "callbacks.model_checkpoint=null",
        *args.overrides,
    ]
    with tempfile.TemporaryDirectory() as tmp:
        sweep_dir = Path(tmp) / "sweep"
        run_sweep(sweep_dir, overrides)
        runs = collect(sweep_dir)
    grid = {(r.params.get("optimizer"), r.params.get("schedule")): r.summary for r in runs}
    out_arg = [f"--out {args.out}"] if args.out != parser.get_default("out") else []
    command = " ".join(
        [
            "python scripts/optimizer_table.py",
            f"--data {args.data}",
            f"--model {args.model}",
            f"--epochs {args.epochs}",
            *out_arg,
            *args.overrides,
        ]
    )
    title = f"Optimizer x schedule: {args.model} on {args.data}, {args.epochs} epochs"
    text = markdown(grid, optimizers, schedules, title, command)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
