"""`nnopt-sensitivity <run dir | checkpoint>`: per-layer pruning sensitivity of a trained model (no retraining).
The analysis itself is :mod:`nnopt.compression.sensitivity`; this module finds the checkpoint, rebuilds the model
through the one rebuild path, writes the files and prints the table.

Each prunable layer (Linear/Conv weights) is pruned alone by L1 magnitude to each sparsity, the model is evaluated,
the weights are restored. The curves show which layers tolerate pruning (distiller's sensitivity analysis); from them
a per-layer allocation for a requested overall sparsity is proposed (a layer is pruned up to where its metric has
lost no more than a common tolerance, the tolerance chosen so the weighted sparsity meets the target) and printed
as a ready `compression=prune compression.layer_sparsity={...}` override. Writes sensitivity.csv and
sensitivity.png next to the evaluated checkpoint's run (or to --out).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnopt.compression.sensitivity import (
    DEFAULT_SPARSITIES,
    Loaded,
    SensitivityError,
    curves_of,
    evaluate_pruned,
    override,
    propose,
    sweep,
)
from nnopt.errors import BAD_INPUT_EXIT, NnoptError, error_line, fail
from nnopt.metrics import names as N
from nnopt.metrics import summary as S

SPLITS = (N.VAL, N.TEST)
CSV_NAME, PNG_NAME = "sensitivity.csv", "sensitivity.png"


@dataclass
class Target:
    """What to analyse: a checkpoint, the split, and where the outputs go."""

    ckpt: Path
    split: str
    out_dir: Path
    reported: float | None = None  # the run summary's value of the metric, when it reports this checkpoint/split


def parse_sparsities(text: str) -> list[float]:
    """'0,0.5,0.9' -> [0.0, 0.5, 0.9]: each in [0, 1), ascending, 0 included (the dense reference)."""
    allowed = "expected comma-separated numbers in [0, 1)"
    try:
        values = sorted({float(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise SensitivityError(f"--sparsities={text!r} is not allowed; {allowed}") from None
    if not values or any(not 0.0 <= v < 1.0 for v in values):
        raise SensitivityError(f"--sparsities={text!r} is out of range; {allowed}")
    return values if values[0] == 0.0 else [0.0, *values]


def resolve(path: str | Path, split: str | None) -> Target:
    """A run dir: the checkpoint and split its summary reports (`evaluated_ckpt`, else `ckpt/best`), so sparsity 0
    reproduces its test metric. A checkpoint file: that checkpoint, test split unless `split` is given."""
    path = Path(path)
    if path.is_dir():
        summary = S.read_summary(path)
        ckpt = summary.get(S.EVALUATED_CKPT) or summary.get(S.CKPT_BEST) or summary.get(S.CKPT_LAST)
        if not ckpt:
            raise SensitivityError(f"{path}: its summary.json names no checkpoint (ckpt/best, evaluated_ckpt)")
        if not summary.get(S.EVALUATED_CKPT) and summary.get(S.CKPT_LAST) and _tested_last(Path(ckpt)):
            ckpt = summary[S.CKPT_LAST]  # test_ckpt=last: the run tested its final weights
        split = split or N.TEST
        metric = summary.get(N.key(split, N.ACC)) if summary.get(S.TEST_MSE) is None else summary.get(S.TEST_MSE)
        return Target(Path(ckpt), split, path, metric if split == N.TEST else None)
    if path.is_file():
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        return Target(path, split or N.TEST, run_dir)
    raise SensitivityError(f"{path}: no such run dir or checkpoint")


def _tested_last(ckpt: Path) -> bool:
    from nnopt import checkpoint

    return checkpoint.load(ckpt, "checkpoint")[checkpoint.CONFIG_KEY].get("test_ckpt") == "last"


def load(target: Target) -> Loaded:
    """Rebuild the data module and LightningModule the checkpoint was trained with, weights loaded."""
    from nnopt import build
    from nnopt.tasks import rebuild

    ckpt, cfg = rebuild.read(target.ckpt, "checkpoint")
    dm = build.build_datamodule(cfg)
    module = rebuild.restore(cfg, dm, ckpt, target.ckpt, "checkpoint")
    if getattr(dm, "tensors", None) is None:  # a LightningDataModule of the user's own: Lightning's set-up order
        dm.prepare_data()
        dm.setup("test" if target.split == N.TEST else "validate")
    batches = dm.test_dataloader() if target.split == N.TEST else dm.val_dataloader()
    if len(batches) == 0:
        raise SensitivityError(f"--split={target.split}: the {target.split} split of this data set is empty")
    return Loaded(module, batches, module.task.best, module.task.larger_is_better)


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    from nnopt.io import write_atomic

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["layer", "parameters", "sparsity", "metric"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, out.getvalue())
    return path


def plot(rows: list[dict[str, Any]], metric: str, path: Path, title: str = "") -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, (params, xs, ys) in curves_of(rows).items():
        ax.plot([x * 100 for x in xs], ys, marker="o", ms=3, label=f"{name} ({params:,} w)")
    ax.set(xlabel="sparsity of the layer (%)", ylabel=metric, title=title or f"pruning sensitivity ({metric})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def print_table(rows: list[dict[str, Any]], metric: str) -> None:
    from rich.console import Console
    from rich.table import Table

    curves = curves_of(rows)
    sparsities = next(iter(curves.values()))[1] if curves else []
    table = Table(title=f"pruning sensitivity: {metric} per layer and sparsity (layer pruned alone, no retraining)")
    table.add_column("layer")
    table.add_column("weights", justify="right")
    for s in sparsities:
        table.add_column(f"{s:g}", justify="right")
    for name, (params, _, ys) in curves.items():
        table.add_row(name, f"{params:,}", *[f"{y:.4g}" for y in ys])
    Console(width=max(100, 40 + 8 * len(sparsities))).print(table)  # full width in pipes and logs too


def analyse(target: Target, sparsities: Sequence[float], overall: float | None) -> dict[str, Any]:
    """Run the sweep, write the files; returns rows, the proposal and its check against uniform pruning."""
    loaded = load(target)
    rows = sweep(loaded, sparsities)
    target.out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(rows, target.out_dir / CSV_NAME)
    plot(rows, f"{target.split}/{loaded.metric}", target.out_dir / PNG_NAME)
    result: dict[str, Any] = {"rows": rows, "metric": f"{target.split}/{loaded.metric}", "dense": rows[0]["metric"]}
    if overall is not None:
        plan = propose(rows, overall, loaded.larger_is_better)
        result["proposal"] = plan
        result["proposal_metric"] = evaluate_pruned(loaded, plan)
        result["uniform_metric"] = evaluate_pruned(loaded, dict.fromkeys(plan, overall))
    return result


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage on two)
        fail(message)


def main(argv: list[str] | None = None) -> int:
    from nnopt import runtime

    runtime.configure()
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="nnopt-sensitivity", description=__doc__, formatter_class=formatter)
    parser.add_argument("path", help="a run dir (with summary.json) or a checkpoint file")
    parser.add_argument(
        "--sparsities",
        default=",".join(f"{s:g}" for s in DEFAULT_SPARSITIES),
        help="comma-separated sparsities in [0, 1) (default: 0,0.1,...,0.9,0.95)",
    )
    parser.add_argument("--split", choices=SPLITS, default=None, help="split to evaluate (default: test, as reported)")
    parser.add_argument("--target", type=float, default=None, help="overall sparsity to propose per-layer values for")
    parser.add_argument("--out", default=None, help="folder for sensitivity.csv/png (default: the run dir)")
    args = parser.parse_args(argv)
    try:
        sparsities = parse_sparsities(args.sparsities)
        if args.target is not None and not 0 < args.target < 1:
            raise SensitivityError(f"--target={args.target} is out of range; allowed: a number in (0, 1)")
        target = resolve(args.path, args.split)
        if args.out:
            target.out_dir = Path(args.out)
        result = analyse(target, sparsities, args.target)
    except NnoptError as exc:
        print(error_line(str(exc)), file=sys.stderr)
        return BAD_INPUT_EXIT
    print_table(result["rows"], result["metric"])
    dense = result["dense"]
    note = ""
    if target.reported is not None:
        note = " (= the run's summary)" if dense == target.reported else f" (the run's summary says {target.reported})"
    print(f"dense {result['metric']} = {dense:.6g}{note}; checkpoint {target.ckpt}")
    print(f"wrote {target.out_dir / CSV_NAME}, {target.out_dir / PNG_NAME}")
    if "proposal" in result:
        print(
            f"proposal for overall sparsity {args.target:g}: {result['metric']} = {result['proposal_metric']:.4g} "
            f"(uniform {args.target:g} per layer: {result['uniform_metric']:.4g}), no retraining; fine-tune with:"
        )
        print(f"  nnopt-train <the run's overrides> {override(result['proposal'], args.target)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
