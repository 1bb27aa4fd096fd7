"""Command line of `nnopt-report`.

Exit status: 0 report written; 1 report written but some summary.json is unreadable (listed in it);
2 nothing written (bad input: no such dir, no summary, unknown --sort-by, read-only or full disk).
"""

from __future__ import annotations

import argparse
import sys

from nnopt.errors import BAD_INPUT_EXIT, NnoptError, error_line
from nnopt.metrics import summary as S
from nnopt.report import Report, build_report, write_report
from nnopt.report.table import columns_for, rows, task_of


def print_table(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)  # pipes and logs: no wrapped cells
    many = len(report.groups) > 1
    for group in report.groups or []:  # unrelated sweeps/tasks/data sets: one table (ranking) each
        columns = columns_for(report.sort_by, task_of(group.runs), report.selection_key)
        header, body = rows(group.configs, columns)
        where = f"{report.sweep_dir}: {group.label}" if many else str(report.sweep_dir)
        table = Table(title=f"{where}  (sorted by {report.sort_by})")
        for i, name in enumerate(header):
            table.add_column(name, justify="left" if i == 1 else "right")
        for row in body:
            table.add_row(*row)
        console.print(table)
    for run in report.failed:
        console.print(f"[red]{run.status}[/red] job {run.job}: {(run.summary or {}).get(S.ERROR) or 'no summary yet'}")


def main(argv: list[str] | None = None) -> int:
    from nnopt import runtime

    runtime.configure()
    parser = argparse.ArgumentParser(prog="nnopt-report", description=__doc__)
    parser.add_argument("sweep_dir", help="a multirun dir (logs/<task>/multiruns/<stamp>) or a single run dir")
    parser.add_argument(
        "--sort-by",
        default=None,
        help="summary key to rank configs by (default: val/acc_best, or val/mse_best for regression)",
    )
    order = parser.add_mutually_exclusive_group()
    order.add_argument("--ascending", dest="ascending", action="store_true", default=None, help="smaller is better")
    order.add_argument("--descending", dest="ascending", action="store_false", help="larger is better")
    parser.add_argument(
        "--out",
        default=None,
        help="folder to write the report into (default: the sweep dir; a --sort-by other than the default ranking "
        "writes report_<key>.md/.csv and its plots there, beside the default report)",
    )
    parser.add_argument("--quiet", action="store_true", help="write the files, print nothing")
    args = parser.parse_args(argv)
    try:
        report = build_report(args.sweep_dir, args.sort_by, args.ascending)
        paths = write_report(report, args.out)
    except NnoptError as exc:
        print(error_line(str(exc), "nnopt-report"), file=sys.stderr)
        return BAD_INPUT_EXIT
    if not args.quiet:
        print_table(report)
        print(f"wrote {', '.join(str(p) for p in paths)}")
    if report.unreadable:  # the report lists them; the exit status says the sweep is not fully reported
        first = report.unreadable[0]
        print(
            f"nnopt-report: {len(report.unreadable)} unreadable summary.json (job {first.job}: "
            f"{(first.summary or {}).get(S.ERROR)})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
