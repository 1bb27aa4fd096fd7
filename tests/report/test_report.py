"""nnopt-report on hand-made sweep dirs: table numbers, failures, partial sweeps, plots, bad input."""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
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
    return {
        S.TEST_ACC: acc,
        S.TEST_F1: acc - 0.01,
        S.SIZE_BYTES: size,
        S.SIZE_BYTES_GZIP: size // 2,
        S.SPARSITY: 0.0,
        S.LATENCY_B1: latency,
        S.TRAIN_TIME: 3.0,
    }


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """optimizer x seed (2 x 2) plus one failed job and one job still running (no summary)."""
    root = tmp_path / "multiruns" / "stamp"
    accs = {("sgd", 1): 0.80, ("sgd", 2): 0.84, ("adam", 1): 0.90, ("adam", 2): 0.94}
    for job, ((opt, seed), acc) in enumerate(accs.items()):
        fake_job(
            root,
            job,
            seed=seed,
            overrides=[f"optimizer={opt}", f"seed={seed}", "paths.log_dir=/x"],
            **metrics(acc, 4000 if opt == "sgd" else 8000, 0.05),
        )
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
    assert "6 jobs: 4 completed, 1 failed, 0 interrupted, 1 without summary" in md
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
    rows = table_rows((sweep / "report_model_size_bytes.md").read_text())
    assert [r[1] for r in rows][:2] == ["optimizer=sgd", "optimizer=adam"]  # smaller size first


def test_best_per_group_with_two_swept_keys(tmp_path: Path) -> None:
    for job, (opt, comp, acc) in enumerate(
        [("sgd", "none", 0.8), ("sgd", "prune", 0.85), ("adam", "none", 0.9), ("adam", "prune", 0.7)]
    ):
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
    assert main([str(tmp_path / "nowhere")]) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln]
    assert len(errors) == 3 and all(ln.startswith("nnopt-report: error: ") for ln in errors)
    assert "no summary.json" in errors[0] and "test/nope" in errors[1] and "no such directory" in errors[2]


@pytest.fixture
def read_only(tmp_path: Path):
    """Make a dir read-only for real: chmod does not stop root, so root gets a read-only bind mount."""
    mounted: list[Path] = []

    def make(folder: Path) -> None:
        if os.geteuid() != 0:
            folder.chmod(0o555)
            return
        ok = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode == 0
        if ok:
            mounted.append(folder)
            ok = subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True).returncode == 0
        if not ok:
            pytest.skip("cannot make a read-only mount here (root ignores chmod)")

    yield make
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=False)


def test_read_only_sweep_dir_is_one_line_exit_2(sweep: Path, read_only, capsys) -> None:
    (sweep / "report.md").write_text("old report")
    read_only(sweep)
    before = sorted(p.name for p in sweep.iterdir())
    assert main([str(sweep)]) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln]
    assert errors == [
        f"nnopt-report: error: cannot write {sweep}/report.md: "
        f"{'Read-only file system' if os.geteuid() == 0 else 'Permission denied'}"
    ]
    assert (sweep / "report.md").read_text() == "old report"
    assert sorted(p.name for p in sweep.iterdir()) == before


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"status": "compl', "unreadable summary"),
        ("[1, 2]", "not a JSON object"),
        ('{"schema_version": 99, "status": "completed"}', "schema_version=99"),
        ({S.STATUS: 5}, "status=5 is not a str"),
        ({"overrides": "seed=1"}, "overrides='seed=1' is not a list"),
        ({S.TEST_ACC: "0.99"}, "test/acc='0.99' is not a number"),
        ({S.VAL_ACC_BEST: True}, "val/acc_best=True is not a number"),
        ({S.SEED: [1, 2]}, "seed=[1, 2] is not an integer"),
        ({S.TRAIN_TIME: -3.0}, "train/time_s=-3.0 is negative"),
        ({S.LATENCY_B1: -0.5}, "model/latency_ms_b1=-0.5 is negative"),
    ],
)
def test_one_unreadable_summary_is_listed_and_the_rest_reported(sweep: Path, capsys, content, problem) -> None:
    path = sweep / "0" / S.FILENAME
    if isinstance(content, dict):  # a well-formed summary with one damaged value
        summary = json.loads(path.read_text())
        summary.update(content)
        content = json.dumps(summary)
    path.write_text(content)
    assert main([str(sweep)]) == 1
    md = (sweep / "report.md").read_text()
    rows = table_rows(md)
    assert [r[1] for r in rows][:2] == ["optimizer=adam", "optimizer=sgd"]
    assert [r[2] for r in rows] == ["2/2", "1/1", "0/2"]  # job 0 (sgd) is listed below, not ranked
    unreadable = [ln for ln in md.splitlines() if ln.startswith("| 0 |")]
    assert len(unreadable) == 1 and "| unreadable |" in unreadable[0] and problem in unreadable[0]
    assert "; 1 unreadable." in md
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln]
    assert len(err) == 1 and err[0].startswith("nnopt-report: 1 unreadable summary.json (job 0: ")


def test_pruned_trial_is_ranked_apart(sweep: Path) -> None:
    fake_job(
        sweep,
        6,
        S.PRUNED,
        seed=1,
        overrides=["optimizer=lion", "seed=1", "paths.log_dir=/x"],
        **{**metrics(0.99, 100, 0.01), S.VAL_ACC_BEST: 0.99, S.PRUNED_AT: 1},
    )
    assert main([str(sweep), "--sort-by", S.TEST_ACC, "--quiet"]) == 0
    md = (sweep / "report_test_acc.md").read_text()  # val/acc_best is the default ranking: test/acc goes beside it
    rows = table_rows(md)
    assert rows[0][1] == "optimizer=adam"  # the pruned 0.99 is not a full run: it is not ranked first
    lion = next(r for r in rows if r[1] == "optimizer=lion")
    assert lion[2] == "0/1" and lion[3] == "–"
    assert "## Pruned trials (stopped early by the pruner; not ranked)" in md
    assert "| 6 | optimizer=lion | 1 | 1 | 0.99 |" in md
    assert "| 6 |" not in md.split("## Failed or unfinished runs")[1].split("## Pruned")[0]
    from nnopt.report import build_report

    assert [r.job for r in build_report(sweep).failed] == ["4", "5"]


def test_parent_dir_keeps_sweeps_tasks_data_and_retests_apart(tmp_path: Path) -> None:
    def sweep_of(name: str, data: str, task: str, accs: dict[str, float]) -> Path:
        root = tmp_path / name
        root.mkdir()
        (root / "multirun.yaml").write_text("hydra: {}\n")
        for job, (opt, acc) in enumerate(accs.items()):
            fake_job(
                root,
                job,
                overrides=[f"optimizer={opt}"],
                task_name=task,
                choices={"data": data},
                **metrics(acc, 100, 0.1),
            )
        return root

    a = sweep_of("a", "digits", "train", {"adam": 0.9, "sgd": 0.8})
    sweep_of("b", "mnist", "train", {"adam": 0.5, "sgd": 0.99})
    sweep_of("c", "digits", "other", {"adam": 0.1})
    fake_job(
        a / "0",
        "retest",
        overrides=["optimizer=adam"],
        task_name="train",
        choices={"data": "digits"},
        evaluated_ckpt=str(a / "0" / "checkpoints" / "last.ckpt"),
        **metrics(0.3, 100, 0.1),
    )
    assert main([str(tmp_path), "--sort-by", S.TEST_ACC, "--quiet"]) == 0
    md = (tmp_path / "report.md").read_text()
    titles = [ln for ln in md.splitlines() if ln.startswith("## ")]
    assert titles == [
        "## 1. sweep a, task train, data digits",
        "## 2. sweep a, task train, data digits, nnopt-eval re-tests",
        "## 3. sweep b, task train, data mnist",
        "## 4. sweep c, task other, data digits",
    ]
    sections = md.split("\n## ")[1:]
    first = [[c.strip() for c in ln.strip("|").split("|")] for ln in sections[0].splitlines() if ln.startswith("| 1")]
    assert first[0][1:4] == ["optimizer=adam", "1/1", "90.00"]  # the re-test (30 %) is not a second seed
    assert "| 1 | optimizer=sgd | 1/1 | 99.00 |" in sections[2]  # mnist ranked on its own
    for i in range(1, 5):
        assert (tmp_path / f"pareto-{i}.png").read_bytes()[:4] == b"\x89PNG"
    with (tmp_path / "report.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 6 and {r["group"] for r in table} == {t[6:] for t in titles}
