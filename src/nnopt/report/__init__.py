"""`nnopt-report <sweep_dir>`: compare a sweep's runs from their files (summary.json + CSV metrics).

Never imports training code: it works on any finished, partial or foreign-shaped sweep dir.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from nnopt.io import WriteError
from nnopt.metrics import summary as S
from nnopt.report.collect import UNREADABLE, ReportError, Run, collect, partition
from nnopt.report.table import Config, check_key, default_sort_key, group, markdown, per_run_csv, rank

__all__ = ["Report", "ReportError", "build_report", "write_report"]
OUTPUTS = ("report.md", "report.csv", "pareto.png", "curves.png")


@dataclass
class Group:
    """Runs that may be ranked together: one sweep dir, task and data set (nnopt-eval re-tests apart)."""

    label: str
    runs: list[Run]
    configs: list[Config]  # ranked, best first
    keys: list[str]  # swept override keys


@dataclass
class Report:
    sweep_dir: Path
    runs: list[Run]
    configs: list[Config]  # ranked, best first (within each group, groups one after another)
    keys: list[str]  # swept override keys
    sort_by: str
    groups: list[Group] = field(default_factory=list)

    @property
    def failed(self) -> list[Run]:
        """Runs that did not finish as planned (a pruned trial did: its pruner stopped it on purpose)."""
        return [r for r in self.runs if r.status not in (S.COMPLETED, S.PRUNED)]

    @property
    def unreadable(self) -> list[Run]:
        return [r for r in self.runs if r.status == UNREADABLE]


def build_report(sweep_dir: str | Path, sort_by: str | None = None, ascending: bool | None = None) -> Report:
    """Read and rank everything first: bad input raises before any file is written.

    `sort_by` None: the best validation value of the runs' task (val/acc_best, val/mse_best, ...), so the best
    configuration is chosen on validation data and test is only reported."""
    runs = collect(sweep_dir)
    sort_by = sort_by or default_sort_key(runs)
    check_key(runs, sort_by)
    groups = []
    for label, members in partition(runs):
        configs, keys = group([r for r in members if r.status != UNREADABLE])  # listed, never ranked
        groups.append(Group(label, members, rank(configs, sort_by, ascending), keys))
    configs = [c for g in groups for c in g.configs]
    keys = list(dict.fromkeys(k for g in groups for k in g.keys))
    return Report(Path(sweep_dir), runs, configs, keys, sort_by, groups)


def write_report(report: Report) -> list[Path]:
    """Write every output atomically; a read-only or full disk is one ReportError naming the file and cause."""
    try:
        if len(report.groups) > 1:
            return _write_grouped(report)
        return _write_single(report)
    except OSError as exc:
        if isinstance(exc, WriteError):
            raise ReportError(str(exc)) from None
        raise ReportError(f"cannot write the report into {report.sweep_dir}: {exc.strerror or exc}") from None


def _write_grouped(report: Report) -> list[Path]:
    """One section (own ranking, own plots) per group: unrelated sweeps, tasks or data sets are never pooled."""
    from nnopt.report.plots import curves_png, pareto_png

    out = report.sweep_dir
    parts = [
        f"# Report: `{out.resolve().name}`: {len(report.groups)} groups, each ranked on its own",
        "",
        "Runs of different sweeps, tasks or data sets (and `nnopt-eval` re-tests) are never ranked together.",
    ]
    rows: list[dict[str, str]] = []
    header: dict[str, None] = {"group": None}
    paths = [out / "report.md", out / "report.csv"]
    for i, g in enumerate(report.groups, 1):
        md = markdown(g.label, g.runs, g.configs, g.keys, report.sort_by)
        md = md.replace("](pareto.png)", f"](pareto-{i}.png)").replace("](curves.png)", f"](curves-{i}.png)")
        lines = md.splitlines()
        lines[0] = f"## {i}. {g.label}"
        parts += ["", *(f"#{ln}" if ln.startswith("## ") and j else ln for j, ln in enumerate(lines))]
        for row in csv.DictReader(io.StringIO(per_run_csv(g.runs, g.keys))):
            header.update(dict.fromkeys(row))
            rows.append({"group": g.label, **row})
        paths += [pareto_png(g.configs, out / f"pareto-{i}.png"), curves_png(g.configs, out / f"curves-{i}.png")]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(header), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    S.write_atomic(out / "report.md", "\n".join(parts) + "\n")
    S.write_atomic(out / "report.csv", text.getvalue())
    return paths


def _write_single(report: Report) -> list[Path]:
    from nnopt.report.plots import curves_png, pareto_png

    out = report.sweep_dir
    name = out.resolve().name
    S.write_atomic(out / "report.md", markdown(name, report.runs, report.configs, report.keys, report.sort_by))
    S.write_atomic(out / "report.csv", per_run_csv(report.runs, report.keys))
    pareto_png(report.configs, out / "pareto.png")
    curves_png(report.configs, out / "curves.png")
    from nnopt.report.batch_size import batch_size_png

    extra = batch_size_png(report.configs, out / "batch_size.png")  # only for sweeps over data.batch_size
    if extra is not None:
        md = (out / "report.md").read_text() + "![Accuracy and training time vs batch size](batch_size.png)\n"
        S.write_atomic(out / "report.md", md)
    return [out / f for f in OUTPUTS] + ([extra] if extra is not None else [])
