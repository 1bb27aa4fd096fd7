"""Aggregate runs into configurations (mean ± std over seeds) and render report.md / report.csv.

Length: one table model (runs, configs, groups, columns, ranking) that the md and csv writers share.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from nnopt.metrics import summary as S
from nnopt.report.collect import MISSING, UNREADABLE, ReportError, Run, varying_keys
from nnopt.tasks import spec as tasks


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    scale: float = 1.0
    fmt: str = ".4g"


#: the comparison table's columns (summary keys); --sort-by adds its key when it is not one of these
COLUMNS = (
    Column(S.TEST_ACC, "acc %", 100, ".2f"),
    Column(S.TEST_F1, "F1 %", 100, ".2f"),
    Column(S.SIZE_BYTES, "size KiB", 1 / 1024, ".1f"),
    Column(S.SIZE_BYTES_GZIP, "gzip KiB", 1 / 1024, ".1f"),
    Column(S.SPARSITY, "sparsity %", 100, ".1f"),
    Column(S.LATENCY_B1, "latency b1 ms", 1, ".3f"),
    Column(S.TRAIN_TIME, "train s", 1, ".2f"),
)
#: keys where smaller is better (the sort and the Pareto fronts follow this)
_SMALLER_BETTER = ("loss", "size", "latency", "time", "params", "mem", "bytes", "mse", "mae")


def task_of(runs: list[Run]) -> tasks.Task:
    """The task of a group of runs (a report section holds one task), from the first summary that says."""
    return tasks.of_summary(next((r.summary for r in runs if r.summary), {}))


def default_sort_key(runs: list[Run]) -> str:
    """The task's best validation value (a sweep is ranked on validation data); its test metric for old sweeps."""
    task = task_of(runs)
    return next((k for k in (task.best_key, task.test_key) if any(r.value(k) is not None for r in runs)), S.TEST_ACC)


def reported_test_key(key: str) -> str | None:
    """The test metric reported beside a validation selection key: val/acc_best -> test/acc."""
    if not key.startswith("val/"):
        return None
    return "test/" + key.removeprefix("val/").removesuffix("_best")


def smaller_is_better(key: str, task: tasks.Task | None = None) -> bool:
    """Whether smaller values of `key` are better: the task says for its own metrics, the key's name otherwise."""
    if task is not None and key in (task.best_key, task.test_key, task.monitor):
        return not task.larger_is_better
    return any(word in key for word in _SMALLER_BETTER) and "per_s" not in key


@dataclass
class Config:
    """One configuration of the sweep: the runs that differ only in seed."""

    label: str
    params: dict[str, str]
    runs: list[Run] = field(default_factory=list)

    @property
    def done(self) -> list[Run]:
        return [r for r in self.runs if r.status == S.COMPLETED]

    def stats(self, key: str) -> tuple[float, float] | None:
        values = [v for v in (r.value(key) for r in self.done) if v is not None]
        if not values:
            return None
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    def mean(self, key: str) -> float | None:
        stats = self.stats(key)
        return stats[0] if stats else None


def shown(value: str) -> str:
    """A swept value as the report prints it: floats to 4 significant digits (a search's 0.0012345678901234567 is
    0.001235); everything else as given (report.csv keeps the exact values)."""
    try:
        number = float(value)
    except ValueError:
        return value
    if not any(c in value for c in ".eE") or not math.isfinite(number):
        return value  # integers, inf/nan, words float() happens to read
    return format(number, ".4g")


def label_of(run: Run, keys: list[str]) -> str:
    return " ".join(f"{k}={shown(run.params[k])}" for k in keys if k in run.params) or "(single config)"


def group(runs: list[Run]) -> tuple[list[Config], list[str]]:
    """Runs that differ only in seed form one config (by their exact values; the label shows them rounded)."""
    keys = varying_keys(runs)
    configs: dict[tuple, Config] = {}
    for run in runs:
        exact = tuple((k, run.params[k]) for k in keys if k in run.params)
        config = configs.setdefault(exact, Config(label_of(run, keys), dict(exact)))
        config.runs.append(run)
    return list(configs.values()), keys


#: a regression sweep's test metrics, in place of accuracy and F1
REGRESSION_COLUMNS = (
    Column(S.TEST_MSE, "MSE", 1, ".4g"),
    Column(S.TEST_MAE, "MAE", 1, ".4g"),
    Column(S.TEST_R2, "R²", 1, ".3f"),
)


def columns_for(sort_by: str, task: tasks.Task | None = None, keep: str | None = None) -> list[Column]:
    """The report's columns: a regression sweep's test metrics replace accuracy and F1; a task of the user's own
    gets its test metric; the ranking key is always shown, and `keep` (the validation selection key, when ranking
    by another key) beside it."""
    columns = list(COLUMNS)
    if task is not None and task.name not in (tasks.CLASSIFICATION.name, tasks.REGRESSION.name):
        own = [Column(task.test_key, task.test_key, 1, ".4g")]
        columns = [*own, *(c for c in columns if c.key not in (S.TEST_ACC, S.TEST_F1))]
    elif task is tasks.REGRESSION or any(word in sort_by for word in ("mse", "mae", "r2")):
        columns = [*REGRESSION_COLUMNS, *(c for c in columns if c.key not in (S.TEST_ACC, S.TEST_F1))]
    for key in dict.fromkeys(k for k in (keep, sort_by) if k):  # sort_by ends up first, keep second
        if key not in {c.key for c in columns}:
            columns.insert(0, Column(key, key))
    return columns


def check_key(runs: list[Run], key: str) -> None:
    if not any(r.value(key) is not None for r in runs):
        have = sorted({k for r in runs for k in (r.summary or {}) if r.value(k) is not None})
        raise ReportError(f"--sort-by {key}: no run has a value for it; available: {', '.join(have) or 'none'}")


def rank(configs: list[Config], sort_by: str, ascending: bool | None = None) -> list[Config]:
    """Configs with a value first, best first; those with none (all failed / still running) last."""
    task = task_of([r for c in configs for r in c.runs])
    ascending = smaller_is_better(sort_by, task) if ascending is None else ascending
    scored = [c for c in configs if c.mean(sort_by) is not None]
    rest = [c for c in configs if c.mean(sort_by) is None]
    return sorted(scored, key=lambda c: c.mean(sort_by), reverse=not ascending) + rest


def cell(config: Config, column: Column) -> str:
    stats = config.stats(column.key)
    if stats is None:
        return "–"
    mean, std = (v * column.scale for v in stats)
    text = format(mean, column.fmt)
    return f"{text} ± {format(std, column.fmt)}" if len(config.done) > 1 else text


def rows(configs: list[Config], columns: list[Column]) -> tuple[list[str], list[list[str]]]:
    header = ["#", "config", "runs", *[c.header for c in columns]]
    body = []
    for i, config in enumerate(configs, 1):
        n_done, n_all = len(config.done), len(config.runs)
        body.append([str(i), config.label, f"{n_done}/{n_all}", *[cell(config, c) for c in columns]])
    return header, body


def _md_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    return "\n".join(lines)


def best_per_group(configs: list[Config], keys: list[str], sort_by: str) -> list[str]:
    """For every swept key and value, the best configuration having that value (needs >= 2 swept keys)."""
    if len(keys) < 2:
        return []
    lines = []
    for key in keys:
        for value in dict.fromkeys(c.params.get(key) for c in configs):
            best = next((c for c in configs if c.params.get(key) == value and c.mean(sort_by) is not None), None)
            if best is not None:
                lines.append(f"- `{key}={shown(value or '')}`: **{best.label}** ({sort_by} = {best.mean(sort_by):.4g})")
    return lines


def markdown(
    sweep: str, runs: list[Run], configs: list[Config], keys: list[str], sort_by: str, keep: str | None = None
) -> str:
    columns = columns_for(sort_by, task_of(runs), keep)
    header, body = rows(configs, columns)
    order = "ascending" if smaller_is_better(sort_by, task_of(runs)) else "descending"
    n = {s: sum(r.status == s for r in runs) for s in (S.COMPLETED, S.FAILED, S.INTERRUPTED, MISSING)}
    other = ", ".join(f"{v} {k}" for k in (S.PRUNED, UNREADABLE) if (v := sum(r.status == k for r in runs)))
    other = f"; {other}" if other else ""
    parts = [
        f"# Sweep report: `{sweep}`",
        "",
        f"{len(runs)} jobs: {n[S.COMPLETED]} completed, {n[S.FAILED]} failed, {n[S.INTERRUPTED]} interrupted, "
        f"{n[MISSING]} without summary (running or killed){other}. "
        f"Swept: {', '.join(f'`{k}`' for k in keys) or 'nothing'}. "
        f"Sorted by `{sort_by}` ({order}); mean ± std over the completed runs (seeds) of each config.",
        "",
        _md_table(header, body),
    ]
    chosen = next((c for c in configs if c.mean(sort_by) is not None), None)
    beside = reported_test_key(sort_by)
    if chosen is not None and beside is not None:
        test = chosen.mean(beside)
        parts += [
            "",
            "## Best configuration",
            "",
            f"**{chosen.label}**: chosen by `{sort_by}` = {chosen.mean(sort_by):.4g} (validation); "
            f"`{beside}` = {'–' if test is None else format(test, '.4g')} (test data, reported only: "
            "selecting on it would make it an optimistic estimate).",
        ]
    best = best_per_group(configs, keys, sort_by)
    if best:
        parts += ["", f"## Best per group (by `{sort_by}`)", "", *best]
    stopped = [r for r in runs if r.status == S.INTERRUPTED]  # a signal stopped them: resume=true continues them
    bad = [r for r in runs if r.status not in (S.COMPLETED, S.INTERRUPTED, S.PRUNED)]
    sections = (("Interrupted runs (resume=true continues them)", stopped), ("Failed or unfinished runs", bad))
    for title, group in sections:
        if not group:
            continue
        parts += ["", f"## {title}", "", "| job | config | seed | status | error |", "|" + "---|" * 5]
        for r in group:
            error = (r.summary or {}).get(S.ERROR) or ("no summary.json yet" if r.status == MISSING else "")
            parts.append(f"| {r.job} | {label_of(r, keys)} | {r.seed} | {r.status} | {str(error).replace('|', '/')} |")
    parts += pruned_section(runs, keys, sort_by)
    parts += ["", "![Pareto fronts](pareto.png)", "", "![Validation curves](curves.png)", ""]
    return "\n".join(parts)


def _num(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if value.is_integer() else repr(value)


def per_run_csv(runs: list[Run], keys: list[str]) -> str:
    """One row per job: its swept values, status, seed, every numeric summary key, error."""
    skip = (S.SEED, "schema_version")
    numeric = sorted({k for r in runs for k in (r.summary or {}) if r.value(k) is not None and k not in skip})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["job", "status", "config", *keys, "seed", *numeric, "error"])
    for r in runs:
        values: list[Any] = [r.value(k) for k in numeric]
        error = (r.summary or {}).get(S.ERROR) or ""
        writer.writerow(
            [
                r.job,
                r.status,
                label_of(r, keys),
                *[r.params.get(k, "") for k in keys],
                r.seed,
                *[_num(v) for v in values],
                error,
            ]
        )
    return out.getvalue()


def pruned_section(runs: list[Run], keys: list[str], sort_by: str) -> list[str]:
    """Optuna trials its pruner stopped early: listed with their last value, never ranked beside full runs."""
    pruned = [r for r in runs if r.status == S.PRUNED]
    if not pruned:
        return []
    lines = [
        "",
        "## Pruned trials (stopped early by the pruner; not ranked)",
        "",
        f"| job | config | seed | pruned after epoch | {sort_by} |",
        "|" + "---|" * 5,
    ]
    for r in pruned:
        value = r.value(sort_by)
        shown = "–" if value is None else format(value, ".4g")
        lines.append(f"| {r.job} | {label_of(r, keys)} | {r.seed} | {(r.summary or {}).get(S.PRUNED_AT)} | {shown} |")
    return lines
