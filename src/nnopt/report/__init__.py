"""`nnopt-report <sweep_dir>`: compare a sweep's runs from their files (summary.json + CSV metrics).

Never imports training code: it works on any finished, partial or foreign-shaped sweep dir.
"""

from __future__ import annotations

import csv
import io
import re
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
    selection_key: str = ""  # what the sweep is ranked on by default (the task's validation key)

    @property
    def suffix(self) -> str:
        """ "" for the default ranking; `_<key>` for another `--sort-by` (its files sit beside the default report)."""
        if not self.selection_key or self.sort_by == self.selection_key:
            return ""
        return "_" + re.sub(r"[^A-Za-z0-9]+", "_", self.sort_by).strip("_")

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
    selection = default_sort_key(runs)
    sort_by = sort_by or selection
    check_key(runs, sort_by)
    groups = []
    for label, members in partition(runs):
        configs, keys = group([r for r in members if r.status != UNREADABLE])  # listed, never ranked
        groups.append(Group(label, members, rank(configs, sort_by, ascending), keys))
    configs = [c for g in groups for c in g.configs]
    keys = list(dict.fromkeys(k for g in groups for k in g.keys))
    return Report(Path(sweep_dir), runs, configs, keys, sort_by, groups, selection)


def write_report(report: Report, out: str | Path | None = None) -> list[Path]:
    """Write every output atomically; a read-only or full disk is one ReportError naming the file and cause.

    Into `out` (created) when given; else into the sweep dir: the default ranking as report.md, csv and plots, a
    ranking by another key beside it (`report_<key>.md`, ... : the default report is never overwritten)."""
    where = Path(out) if out is not None else report.sweep_dir
    suffix = "" if out is not None else report.suffix
    try:
        where.mkdir(parents=True, exist_ok=True)
        if len(report.groups) > 1:
            return _write_grouped(report, where, suffix)
        return _write_single(report, where, suffix)
    except OSError as exc:
        if isinstance(exc, WriteError):
            raise ReportError(str(exc)) from None
        raise ReportError(f"cannot write the report into {where}: {exc.strerror or exc}") from None


def _named(md: str, names: dict[str, str]) -> str:
    """report.md's image links pointing at the files as written (`pareto.png` -> `pareto_<key>.png`, ...)."""
    for old, new in names.items():
        md = md.replace(f"]({old})", f"]({new})")
    return md


def _write_grouped(report: Report, out: Path, suffix: str) -> list[Path]:
    """One section (own ranking, own plots) per group: unrelated sweeps, tasks or data sets are never pooled."""
    from nnopt.report.plots import curves_png, pareto_png

    parts = [
        f"# Report: `{report.sweep_dir.resolve().name}`: {len(report.groups)} groups, each ranked on its own",
        "",
        "Runs of different sweeps, tasks or data sets (and `nnopt-eval` re-tests) are never ranked together.",
    ]
    rows: list[dict[str, str]] = []
    header: dict[str, None] = {"group": None}
    paths = [out / f"report{suffix}.md", out / f"report{suffix}.csv"]
    for i, g in enumerate(report.groups, 1):
        md = markdown(g.label, g.runs, g.configs, g.keys, report.sort_by, report.selection_key)
        md = _named(md, {"pareto.png": f"pareto-{i}{suffix}.png", "curves.png": f"curves-{i}{suffix}.png"})
        lines = md.splitlines()
        lines[0] = f"## {i}. {g.label}"
        parts += ["", *(f"#{ln}" if ln.startswith("## ") and j else ln for j, ln in enumerate(lines))]
        for row in csv.DictReader(io.StringIO(per_run_csv(g.runs, g.keys))):
            header.update(dict.fromkeys(row))
            rows.append({"group": g.label, **row})
        paths += [
            pareto_png(g.configs, out / f"pareto-{i}{suffix}.png"),
            curves_png(g.configs, out / f"curves-{i}{suffix}.png"),
        ]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(header), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    S.write_atomic(paths[0], "\n".join(parts) + "\n")
    S.write_atomic(paths[1], text.getvalue())
    return paths


def _write_single(report: Report, out: Path, suffix: str) -> list[Path]:
    from nnopt.report.batch_size import batch_size_png
    from nnopt.report.plots import curves_png, pareto_png

    names = {f: f.replace(".", f"{suffix}.", 1) for f in (*OUTPUTS, "batch_size.png")}
    name = report.sweep_dir.resolve().name
    md = markdown(name, report.runs, report.configs, report.keys, report.sort_by, report.selection_key)
    S.write_atomic(out / names["report.md"], _named(md, names))
    S.write_atomic(out / names["report.csv"], per_run_csv(report.runs, report.keys))
    pareto_png(report.configs, out / names["pareto.png"])
    curves_png(report.configs, out / names["curves.png"])
    extra = batch_size_png(report.configs, out / names["batch_size.png"])  # only for sweeps over data.batch_size
    if extra is not None:
        md += "![Accuracy and training time vs batch size](batch_size.png)\n"
        S.write_atomic(out / names["report.md"], _named(md, names))
    return [out / names[f] for f in OUTPUTS] + ([extra] if extra is not None else [])
