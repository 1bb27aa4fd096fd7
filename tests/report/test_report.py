"""nnopt-report on hand-made sweep dirs: table numbers, failures, partial sweeps, plots, bad input."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from nnopt.metrics import summary as S
from nnopt.report import OUTPUTS
from nnopt.report.cli import main
from nnopt.report.plots import pareto_front


def fake_job(sweep: Path, job: int, status: str = S.COMPLETED, curve: bool = True, **values) -> Path:
    """A job dir as nnopt-train leaves it: summary.json (+ the CSV logger's metrics.csv)."""
    run = sweep / str(job)
    (run / ".hydra").mkdir(parents=True)
    overrides = values.pop("overrides")
    summary = S.empty_summary()
    summary.update({S.STATUS: status, S.SEED: values.pop("seed", 1), "overrides": overrides, **values})
    if status == S.FAILED:
        summary[S.ERROR] = "TrainingDiverged: loss is nan at step 3"
    S.write_summary(run, summary)
    if curve and status == S.COMPLETED:
        (run / "csv").mkdir()
        rows = ["epoch,step,val/acc,val/loss,train/loss", "0,9,,,2.0", "0,9,0.5,1.5,", "1,19,0.7,1.0,"]
        (run / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")
    return run


def metrics(acc: float, size: int, latency: float) -> dict:
    return {S.TEST_ACC: acc, S.TEST_F1: acc - 0.01, S.SIZE_BYTES: size, S.SIZE_BYTES_GZIP: size // 2,
            S.SPARSITY: 0.0, S.LATENCY_B1: latency, S.TRAIN_TIME: 3.0}  # fmt: skip


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """optimizer x seed (2 x 2) plus one failed job and one job still running (no summary)."""
    root = tmp_path / "multiruns" / "stamp"
    accs = {("sgd", 1): 0.80, ("sgd", 2): 0.84, ("adam", 1): 0.90, ("adam", 2): 0.94}
    for job, ((opt, seed), acc) in enumerate(accs.items()):
        fake_job(root, job, seed=seed, overrides=[f"optimizer={opt}", f"seed={seed}", "paths.log_dir=/x"],
                 **metrics(acc, 4000 if opt == "sgd" else 8000, 0.05))  # fmt: skip
    fake_job(root, 4, S.FAILED, seed=1, overrides=["optimizer=rmsprop", "seed=1", "paths.log_dir=/x"])
    (root / "5" / ".hydra").mkdir(parents=True)
    (root / "5" / ".hydra" / "overrides.yaml").write_text("- optimizer=rmsprop\n- seed=2\n- paths.log_dir=/x\n")
    return root


def table_rows(md: str) -> list[list[str]]:
    lines = md.split("\n\n")[2].splitlines()[2:]  # the first table, header and rule skipped
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]


def test_report_mean_std_failed_and_running(sweep: Path, capsys) -> None:
    assert main([str(sweep)]) == 0
    md = (sweep / "report.md").read_text()
    rows = table_rows(md)
    assert [r[1] for r in rows] == ["optimizer=adam", "optimizer=sgd", "optimizer=rmsprop"]  # best first
    adam = rows[0]
    assert adam[2] == "2/2"
    std = statistics.stdev([90.0, 94.0])
    assert adam[3] == f"92.00 ± {std:.2f}"
    assert adam[5] == "7.8 ± 0.0"  # 8000 B in KiB
    assert rows[2][2] == "0/2" and rows[2][3] == "–"
    assert "| 4 | optimizer=rmsprop | 1 | failed | TrainingDiverged: loss is nan at step 3 |" in md
    assert "| 5 | optimizer=rmsprop | 2 | missing | no summary.json yet |" in md
    assert "6 jobs: 4 completed, 1 failed, 1 without summary" in md
    with (sweep / "report.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [r["job"] for r in table] == ["0", "1", "2", "3", "4", "5"]
    assert float(table[2][S.TEST_ACC]) == 0.90 and table[2]["optimizer"] == "adam" and table[2]["seed"] == "1"
    assert table[4]["status"] == "failed" and table[5]["status"] == "missing"
    out = capsys.readouterr().out
    assert "optimizer=adam" in out and "92.00" in out


def test_plots_are_valid_images(sweep: Path) -> None:
    assert main([str(sweep), "--quiet"]) == 0
    for name in ("pareto.png", "curves.png"):
        data = (sweep / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        image = mpimg.imread(sweep / name)
        assert image.shape[0] > 200 and image.shape[1] > 400 and image.std() > 0.01  # not blank


def test_pareto_front() -> None:
    # (cost, accuracy): point 2 is dominated by 0 (cheaper and better), point 3 is the costly best
    points = [(1.0, 0.8), (0.5, 0.6), (2.0, 0.7), (3.0, 0.9)]
    assert sorted(pareto_front(points)) == [0, 1, 3]


def test_sort_by_other_key_ascending(sweep: Path) -> None:
    assert main([str(sweep), "--sort-by", S.SIZE_BYTES, "--quiet"]) == 0
    rows = table_rows((sweep / "report.md").read_text())
    assert [r[1] for r in rows][:2] == ["optimizer=sgd", "optimizer=adam"]  # smaller size first


def test_best_per_group_with_two_swept_keys(tmp_path: Path) -> None:
    for job, (opt, comp, acc) in enumerate([("sgd", "none", 0.8), ("sgd", "prune", 0.85),
                                            ("adam", "none", 0.9), ("adam", "prune", 0.7)]):  # fmt: skip
        fake_job(tmp_path, job, overrides=[f"optimizer={opt}", f"compression={comp}"], **metrics(acc, 100, 0.1))
    assert main([str(tmp_path), "--quiet"]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "- `compression=prune`: **optimizer=sgd compression=prune**" in md
    assert "- `optimizer=adam`: **optimizer=adam compression=none**" in md


def test_bad_inputs_one_line_exit_2_nothing_written(sweep: Path, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty)]) == 2
    assert list(empty.iterdir()) == []
    assert main([str(sweep), "--sort-by", "test/nope"]) == 2
    assert not any((sweep / f).exists() for f in OUTPUTS)
    (sweep / "report.md").write_text("old report")
    old = json.loads((sweep / "0" / S.FILENAME).read_text())
    old["schema_version"] = 0
    (sweep / "0" / S.FILENAME).write_text(json.dumps(old))
    assert main([str(sweep)]) == 2
    assert (sweep / "report.md").read_text() == "old report"
    assert main([str(tmp_path / "nowhere")]) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln]
    assert len(errors) == 4 and all(ln.startswith("nnopt-report: error: ") for ln in errors)
    assert "no summary.json" in errors[0] and "test/nope" in errors[1] and "schema_version=0" in errors[2]
