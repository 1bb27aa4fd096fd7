"""`nnopt-report <sweep_dir>`: compare a sweep's runs from their files (summary.json + CSV metrics).

Never imports training code: it works on any finished, partial or foreign-shaped sweep dir.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nnopt.metrics import summary as S
from nnopt.report.collect import ReportError, Run, collect
from nnopt.report.table import Config, check_key, default_sort_key, group, markdown, per_run_csv, rank

__all__ = ["Report", "ReportError", "build_report", "write_report"]
OUTPUTS = ("report.md", "report.csv", "pareto.png", "curves.png")


@dataclass
class Report:
    sweep_dir: Path
    runs: list[Run]
    configs: list[Config]  # ranked, best first
    keys: list[str]  # swept override keys
    sort_by: str

    @property
    def failed(self) -> list[Run]:
        return [r for r in self.runs if r.status != S.COMPLETED]


def build_report(sweep_dir: str | Path, sort_by: str | None = None, ascending: bool | None = None) -> Report:
    """Read and rank everything first: bad input raises before any file is written.

    `sort_by` None: the validation metric the runs have (val/acc_best, val/mse_best), so the best configuration
    is chosen on validation data and test is only reported."""
    runs = collect(sweep_dir)
    sort_by = sort_by or default_sort_key(runs)
    check_key(runs, sort_by)
    configs, keys = group(runs)
    return Report(Path(sweep_dir), runs, rank(configs, sort_by, ascending), keys, sort_by)


def write_report(report: Report) -> list[Path]:
    from nnopt.report.plots import curves_png, pareto_png

    out = report.sweep_dir
    name = out.resolve().name
    S.write_atomic(out / "report.md", markdown(name, report.runs, report.configs, report.keys, report.sort_by))
    S.write_atomic(out / "report.csv", per_run_csv(report.runs, report.keys))
    pareto_png(report.configs, out / "pareto.png")
    curves_png(report.configs, out / "curves.png")
    from nnopt.report.batch_size import batch_size_png

    extra = batch_size_png(report.configs, out / "batch_size.png")  # only for sweeps over data.batch_size
    return [out / f for f in OUTPUTS] + ([extra] if extra is not None else [])
