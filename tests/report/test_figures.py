"""Every PNG a sweep and a search write, rendered at the size users get: legends inside the figure, no clipped
tick labels or titles (matplotlib's tight bounding box of everything drawn lies within the figure), the Pareto axis
is the validation selection metric, and the report's table reads like a report (no plumbing keys, rounded floats),
`--sort-by` leaves the default report alone."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from nnopt.metrics import summary as S
from nnopt.report import plots
from nnopt.report.cli import main
from tests.report.test_report import table_rows

EPOCHS = 15


def job(sweep: Path, number: int, overrides: list[str], status: str = S.COMPLETED, seed: int = 1, **values) -> Path:
    """A job dir as nnopt-train leaves it, with a CSV curve of EPOCHS epochs."""
    run = sweep / str(number)
    (run / ".hydra").mkdir(parents=True)
    summary = S.empty_summary()
    summary.update({S.STATUS: status, S.SEED: seed, "overrides": overrides, "task_name": "train", **values})
    if status == S.PRUNED:
        summary[S.PRUNED_AT] = 3
    S.write_summary(run, summary)
    acc = float(values.get(S.VAL_ACC_BEST, 0.9))
    rows = ["epoch,step,val/acc,val/loss"]
    rows += [f"{e},{10 * e + 9},{acc * (1 - 0.5 / (e + 1)):.4f},{2.0 / (e + 1):.4f}" for e in range(EPOCHS)]
    (run / "csv").mkdir()
    (run / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")
    return run


def numbers(rng: random.Random, acc: float, size: int) -> dict:
    return {
        S.VAL_ACC_BEST: acc,
        S.TEST_ACC: acc - rng.uniform(0.0, 0.03),
        S.TEST_F1: acc - 0.02,
        S.SIZE_BYTES: size,
        S.SIZE_BYTES_GZIP: size * 0.92,
        S.SPARSITY: 0.0,
        S.LATENCY_B1: rng.uniform(0.05, 0.4),  # a loaded 2-core machine: noise, not a difference between configs
        S.TRAIN_TIME: rng.uniform(2, 30),
    }


def search(root: Path, trials: int = 20) -> Path:
    """What `hparams_search=digits_tpe` leaves: lr, weight decay, batch size; the sweeper's trial numbers."""
    rng = random.Random(0)
    root.mkdir(parents=True)
    (root / "multirun.yaml").write_text("hydra: {}\n")
    for n in range(trials):
        overrides = [
            f"optimizer.lr={10 ** rng.uniform(-4, -0.5)!r}",
            f"optimizer.weight_decay={10 ** rng.uniform(-6, -2)!r}",
            f"data.batch_size={rng.randint(16, 256)}",
            f"++callbacks.optuna_pruning.trial_number={n}",
        ]
        status = S.PRUNED if n in (4, 11) else S.COMPLETED
        job(root, n, overrides, status, **numbers(rng, rng.uniform(0.6, 0.98), 1069333))
    return root


def batch_grid(root: Path) -> Path:
    """`experiment=batch_size_study`-like: batch size x optimizer x seed."""
    rng = random.Random(1)
    root.mkdir(parents=True)
    (root / "multirun.yaml").write_text("hydra: {}\n")
    n = 0
    for size in (16, 64, 256, 1257):
        for opt in ("sgd", "momentum", "adam"):
            for seed in (1, 2):
                acc = 0.97 - size / 1e4 - (0.02 if opt == "sgd" else 0)
                job(
                    root,
                    n,
                    [f"data.batch_size={size}", f"optimizer={opt}", f"seed={seed}"],
                    seed=seed,
                    **numbers(rng, acc, 1069333 // (1 + (opt == "adam"))),
                )
                n += 1
    return root


@pytest.fixture
def saved(monkeypatch) -> dict[str, object]:
    """Every figure the report saves, by file name, checked as it is saved."""
    figures: dict[str, object] = {}
    real = plots.save_png

    def check_then_save(fig, path):
        figures[Path(path).name] = layout_problems(fig)
        real(fig, path)

    monkeypatch.setattr(plots, "save_png", check_then_save)
    return figures


def layout_problems(fig) -> list[str]:
    """What is drawn outside the figure: the tight box of all artists, each legend."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box, tol = fig.bbox, 1.0  # pixels
    problems = []
    tight = fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans)
    if tight.x0 < -tol or tight.y0 < -tol or tight.x1 > box.x1 + tol or tight.y1 > box.y1 + tol:
        problems.append(f"drawn outside the figure: {tight.bounds} vs {box.bounds}")
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]
    for legend in legends:
        lb = legend.get_window_extent(renderer)
        if lb.x0 < -tol or lb.y0 < -tol or lb.x1 > box.x1 + tol or lb.y1 > box.y1 + tol:
            problems.append(f"legend outside the figure: {lb.bounds} vs {box.bounds}")
    for ax in fig.axes:  # axes must not overlap each other's tick labels
        for other in fig.axes:
            if other is not ax and ax.get_tightbbox(renderer).overlaps(other.get_window_extent(renderer)):
                problems.append(f"{ax.get_title()!r} runs into {other.get_title()!r}")
    fig.pareto_ylabels = [ax.get_ylabel() for ax in fig.axes]
    return problems


def test_search_pngs_fit_and_pareto_is_on_validation(tmp_path: Path, saved) -> None:
    sweep = search(tmp_path / "search")
    assert main([str(sweep), "--quiet"]) == 0
    assert set(saved) == {"pareto.png", "curves.png", "batch_size.png"}
    assert {name: problems for name, problems in saved.items() if problems} == {}


def test_batch_size_sweep_pngs_fit(tmp_path: Path, saved) -> None:
    sweep = batch_grid(tmp_path / "grid")
    assert main([str(sweep), "--quiet"]) == 0
    assert set(saved) == {"pareto.png", "curves.png", "batch_size.png"}
    assert {name: problems for name, problems in saved.items() if problems} == {}


def test_parent_dir_pngs_fit(tmp_path: Path, saved) -> None:
    search(tmp_path / "search")
    batch_grid(tmp_path / "grid")
    assert main([str(tmp_path), "--quiet"]) == 0
    assert set(saved) == {"pareto-1.png", "curves-1.png", "pareto-2.png", "curves-2.png"}
    assert {name: problems for name, problems in saved.items() if problems} == {}


def test_pareto_y_is_the_validation_selection_metric(tmp_path: Path, monkeypatch) -> None:
    labels: list[str] = []
    real = plots.save_png

    def record(fig, path):
        if Path(path).name == "pareto.png":
            labels.extend(ax.get_ylabel() for ax in fig.axes)
        real(fig, path)

    monkeypatch.setattr(plots, "save_png", record)
    assert main([str(search(tmp_path / "search")), "--quiet"]) == 0
    assert labels and all(label.startswith(S.VAL_ACC_BEST) for label in labels)


def test_latency_front_ignores_differences_within_noise() -> None:
    # (latency ms, accuracy): 0 and 1 are as fast as 2 within the noise and worse: only 2 and the truly fast 3 remain
    points = [(0.10, 0.90), (0.11, 0.91), (0.12, 0.95), (0.02, 0.80)]
    assert sorted(plots.pareto_front(points)) == [0, 1, 2, 3]  # no noise allowance: every point looks optimal
    assert sorted(plots.pareto_front(points, noise=plots.LATENCY_NOISE)) == [2, 3]


def test_search_report_lists_only_searched_keys_with_rounded_values(tmp_path: Path) -> None:
    sweep = search(tmp_path / "search")
    assert main([str(sweep), "--quiet"]) == 0
    md = (sweep / "report.md").read_text()
    swept = md.split("Swept: ", 1)[1].split(". Sorted", 1)[0]
    assert swept == "`optimizer.lr`, `optimizer.weight_decay`, `data.batch_size`"
    label = table_rows(md)[0][1]
    lr = label.split("optimizer.lr=", 1)[1].split(" ", 1)[0]
    assert len(lr.replace("0.", "", 1).lstrip("0")) <= 4  # 4 significant digits, not 0.0012345678901234567
    values = re.findall(r"=(-?[\d.]+)(?:e-?\d+)?\b", md)  # swept values anywhere in report.md (best per group too)
    assert values and [v for v in values if len(v.replace(".", "").lstrip("-0")) > 4] == []
    with (sweep / "report.csv").open() as fh:  # the CSV keeps the exact values
        assert "optimizer.lr=" not in fh.readline() and len(fh.readline().split(",")[3]) > 12


def test_sort_by_writes_beside_the_default_report_and_keeps_validation(tmp_path: Path) -> None:
    sweep = batch_grid(tmp_path / "grid")
    assert main([str(sweep), "--quiet"]) == 0
    default = (sweep / "report.md").read_bytes()
    assert main([str(sweep), "--sort-by", S.SIZE_BYTES_GZIP, "--quiet"]) == 0
    assert (sweep / "report.md").read_bytes() == default
    md = (sweep / "report_model_size_bytes_gzip.md").read_text()
    header = md.split("\n\n")[2].splitlines()[0]
    assert S.VAL_ACC_BEST in header and "gzip KiB" in header
    assert "Sorted by `model/size_bytes_gzip` (ascending)" in md
    out = tmp_path / "elsewhere"
    assert main([str(sweep), "--sort-by", S.TRAIN_TIME, "--out", str(out), "--quiet"]) == 0
    assert (out / "report.md").is_file() and (out / "report.csv").is_file() and (out / "pareto.png").is_file()
    assert (sweep / "report.md").read_bytes() == default
