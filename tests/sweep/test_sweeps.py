"""Multiruns end to end (subprocess): grid + report, failure isolation + exit status, resume, launchers."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from nnopt.metrics import summary as S
from tests.helpers import TINY, run_cli


def sweep_dir(log_dir: Path) -> Path:
    dirs = list(log_dir.glob("*/multiruns/*"))
    assert len(dirs) == 1, dirs
    return dirs[0]


def summaries(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: S.read_summary(p) for p in sorted(sweep.glob("*/summary.json"))}


def report_rows(sweep: Path) -> dict[str, list[str]]:
    md = (sweep / "report.md").read_text()
    table = md.split("\n\n")[2].splitlines()[2:]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in table]
    return {r[1]: r for r in rows}


def test_grid_2x2_report_has_4_correct_rows(tmp_path: Path) -> None:
    res = run_cli("train", "-m", *TINY, "optimizer=sgd,adam", "optimizer.lr=0.05,0.1", log_dir=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    sweep = sweep_dir(tmp_path)
    runs = summaries(sweep)
    assert sorted(runs) == ["0", "1", "2", "3"] and all(s[S.STATUS] == S.COMPLETED for s in runs.values())
    rows = report_rows(sweep)
    assert len(rows) == 4
    for summary in runs.values():
        label = " ".join(o for o in summary["overrides"] if o.startswith("optimizer"))
        assert rows[label][2] == "1/1"
        assert rows[label][3] == f"{summary[S.VAL_ACC_BEST]:.4g}"  # ranked on validation data
        assert rows[label][4] == f"{summary[S.TEST_ACC] * 100:.2f}"  # test reported beside it
        assert rows[label][5] == f"{summary[S.TEST_F1] * 100:.2f}"
    vals = [float(r[3]) for r in sorted(rows.values(), key=lambda r: int(r[0]))]
    assert vals == sorted(vals, reverse=True)
    assert all((sweep / f).stat().st_size > 0 for f in ("report.csv", "pareto.png", "curves.png"))


def test_failing_job_isolated_counted_and_resumed(tmp_path: Path) -> None:
    args = ["-m", *TINY, "optimizer=sgd", "optimizer.lr=0.05,-1"]
    res = run_cli("train", *args, log_dir=tmp_path)
    assert res.returncode == 1, res.stderr[-2000:]  # exit status = number of failed jobs
    assert "1 of 2 jobs failed" in res.stderr and "optimizer.lr=-1" in res.stderr
    sweep = sweep_dir(tmp_path)
    runs = summaries(sweep)
    assert runs["0"][S.STATUS] == S.COMPLETED and runs["1"][S.STATUS] == S.FAILED
    assert "optimizer.lr=-1" in runs["1"][S.ERROR]
    md = (sweep / "report.md").read_text()
    assert "## Failed or unfinished runs" in md and "| 1 | optimizer.lr=-1 | 42 | failed | ConfigError:" in md

    # resume=true: same sweep dir, the completed job is skipped (its summary untouched), the failed one re-runs
    before = (sweep / "0" / S.FILENAME).read_text()
    res = run_cli("train", *args, "resume=true", log_dir=tmp_path)
    assert res.returncode == 1, res.stderr[-2000:]
    assert sweep_dir(tmp_path) == sweep
    assert "already completed, skipped" in res.stdout + res.stderr
    assert (sweep / "0" / S.FILENAME).read_text() == before
    assert summaries(sweep)["1"]["started_at"] >= runs["1"]["started_at"]


def test_empty_grid_is_refused(tmp_path: Path) -> None:
    res = run_cli("train", "-m", *TINY, "seed=range(0)", log_dir=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("nnopt: error: empty grid: seed=range(0)")
    assert not list(tmp_path.rglob("*"))  # nothing written (pytest creates tmp_path itself)


@pytest.mark.slow  # ~25 s each unloaded: every worker imports torch afresh
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_parallel_launchers_two_jobs(tmp_path: Path, launcher: str) -> None:
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else ["hydra.launcher.cpus_per_task=1"]
    res = run_cli("train", "-m", *TINY, f"hydra/launcher={launcher}", *extra, "optimizer=sgd,adam", log_dir=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    sweep = sweep_dir(tmp_path)  # one sweep dir: workers inherited the run stamp
    runs = summaries(sweep)
    assert sorted(runs) == ["0", "1"] and all(s[S.STATUS] == S.COMPLETED for s in runs.values())
    assert {s[S.CHOICES]["optimizer"] for s in runs.values()} == {"sgd", "adam"}
    logs = "".join(p.read_text() for p in sweep.rglob("*.log")) + "".join(
        p.read_text() for p in sweep.rglob("*_log.err")
    )
    assert "torch threads = 1" in logs  # each job limited to its share of the cores
    with (sweep / "report.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 2
