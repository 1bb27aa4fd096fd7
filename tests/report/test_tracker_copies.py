"""One job = one row, whatever loggers ran: W&B and MLflow keep copies of summary.json (`wandb/offline-run-*/files/`,
`mlruns/<experiment>/<run>/artifacts/`) that nnopt-report must not count as jobs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nnopt.metrics import summary as S
from nnopt.report import build_report
from nnopt.report.cli import main
from nnopt.report.collect import collect
from tests.report.test_report import fake_job, metrics, table_rows


def _copy_like_the_trackers(run: Path) -> None:
    """The files W&B and MLflow leave in a run dir (at the paths they use)."""
    wandb_files = run / "wandb" / "offline-run-20261204_034331-39719bfa" / "files"
    mlflow_artifacts = run / "mlruns" / "823953701316861061" / "cae1d992fcbd4c9fa5913ca402a9f0dd" / "artifacts"
    for folder in (wandb_files, mlflow_artifacts):
        folder.mkdir(parents=True)
        shutil.copy(run / S.FILENAME, folder / S.FILENAME)
    (wandb_files / ".hydra").mkdir()  # W&B keeps the run's .hydra/*.yaml too
    (wandb_files / ".hydra" / "overrides.yaml").write_text("- optimizer=sgd\n")


def test_tracker_copies_of_summaries_are_not_jobs(tmp_path: Path) -> None:
    sweep = tmp_path / "multiruns" / "stamp"
    for job, opt in enumerate(("sgd", "adam")):
        run = fake_job(sweep, job, overrides=[f"optimizer={opt}"], **metrics(0.8 + job / 10, 4000, 0.05))
        _copy_like_the_trackers(run)
    (sweep / "multirun.yaml").write_text("{}\n")
    # a sweep-level MLflow store (one experiment for the whole sweep) holds copies as well
    sweep_store = sweep / "mlruns" / "1" / "abc" / "artifacts"
    sweep_store.mkdir(parents=True)
    shutil.copy(sweep / "0" / S.FILENAME, sweep_store / S.FILENAME)
    assert [r.job for r in collect(sweep)] == ["0", "1"]
    assert [r.job for r in collect(tmp_path)] == ["multiruns/stamp/0", "multiruns/stamp/1"]
    single = fake_job(tmp_path / "runs", 7, overrides=[], **metrics(0.9, 4000, 0.05))
    _copy_like_the_trackers(single)
    assert [r.job for r in collect(single)] == ["."]


def _jobs_line(md: str) -> str:
    return md.split("\n\n")[1]


def test_many_loggers_sweep_reports_each_job_once(many_sweep) -> None:
    sweep = many_sweep.dir
    copies = [p for p in sweep.rglob(S.FILENAME) if "wandb" in p.parts or "mlruns" in p.parts]
    assert len(copies) >= 2  # the trackers did keep copies (what made the report count jobs 2-3 times)
    md = (sweep / "report.md").read_text()  # written at the end of the sweep
    assert _jobs_line(md).startswith("2 jobs: 2 completed"), _jobs_line(md)
    assert [r[2] for r in table_rows(md)] == ["1/1", "1/1"]
    report = build_report(sweep.parent)  # `nnopt-report <parent>`: same jobs, one group
    assert [r.job for r in report.runs] == [f"{sweep.name}/0", f"{sweep.name}/1"]
    assert main([str(sweep.parent), "--quiet"]) == 0
    assert _jobs_line((sweep.parent / "report.md").read_text()).startswith("2 jobs: 2 completed")
    single = sweep / "0"  # `nnopt-report <job dir>` of one logger=many run
    assert main([str(single), "--quiet"]) == 0
    md = (single / "report.md").read_text()
    assert _jobs_line(md).startswith("1 jobs: 1 completed"), _jobs_line(md)
    assert [r[2] for r in table_rows(md)] == ["1/1"]
    assert json.loads((single / S.FILENAME).read_text())[S.STATUS] == S.COMPLETED


def test_many_loggers_sweep_prints_no_library_chatter(many_sweep) -> None:
    from tests.packaging.test_noise import NOISE

    output = many_sweep.result.stdout + many_sweep.result.stderr
    assert [needle for needle in NOISE if needle in output] == []
