"""pareto.png (accuracy vs size and vs latency, front marked) and curves.png (validation curves per run)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt

from nnopt.io import write_atomic
from nnopt.metrics import names as N
from nnopt.metrics import summary as S
from nnopt.report.collect import read_curves
from nnopt.report.table import Config, smaller_is_better, task_of

MAX_LEGEND = 12


def save_png(fig: plt.Figure, path: str | Path) -> None:
    """Render in memory, then replace the file atomically (an old plot survives a full or read-only disk)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    write_atomic(path, buffer.getvalue())


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (x smaller is better, y larger is better)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best_y = [], float("-inf")
    for i in order:
        if points[i][1] > best_y:
            front.append(i)
            best_y = points[i][1]
    return front


def pareto_png(configs: list[Config], path: str | Path, y_key: str | None = None) -> Path:
    """One panel per cost (size, latency): each config's mean as a point numbered as in report.md.

    `y_key` None: the task's test metric (test/acc; test/mse, lower is better, for regression)."""
    task = task_of([r for c in configs for r in c.runs])
    if y_key is None:
        y_key = task.test_key if any(c.mean(task.test_key) is not None for c in configs) else S.TEST_ACC
    lower = smaller_is_better(y_key, task)
    y_scale, y_unit = (1.0, "") if lower or y_key.endswith("r2") else (100.0, " (%)")
    # gzip size: the stored size that pruning (zeros) and quantization (int8) both shrink
    costs = ((S.SIZE_BYTES_GZIP, "model size, gzip (KiB)", 1 / 1024), (S.LATENCY_B1, "latency, batch 1 (ms)", 1.0))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (x_key, x_label, scale) in zip(axes, costs, strict=True):
        numbered = [(i, c) for i, c in enumerate(configs, 1) if c.mean(x_key) is not None and c.mean(y_key) is not None]
        points = [(c.mean(x_key) * scale, c.mean(y_key) * y_scale) for _, c in numbered]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.scatter(xs, ys, color="tab:blue", alpha=0.7, label="config (mean over seeds)")
            front = pareto_front([(x, -y) for x, y in points] if lower else points)
            ax.step([xs[i] for i in front], [ys[i] for i in front], where="post", color="tab:red", lw=1.2)
            ax.scatter(
                [xs[i] for i in front],
                [ys[i] for i in front],
                s=80,
                facecolors="none",
                edgecolors="tab:red",
                lw=1.5,
                label="Pareto front",
            )
            for (number, _), x, y in zip(numbered, xs, ys, strict=True):
                ax.annotate(str(number), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=8)
            if max(xs) > 20 * max(min(xs), 1e-12):
                ax.set_xscale("log")
            ax.legend(loc="best", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no completed run measured this", ha="center", va="center", transform=ax.transAxes)
        ax.set(xlabel=x_label, ylabel=f"{y_key}{y_unit}", title=f"{y_key} vs {x_label.split(' (')[0]}")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)
    return Path(path)


def curves_png(configs: list[Config], path: str | Path) -> Path:
    """Validation accuracy (regression: MSE) and loss per epoch, one line per completed run, one colour per config."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    cmap = plt.get_cmap("tab10" if len(configs) <= 10 else "tab20")
    plotted = 0
    read = [[read_curves(run) for run in config.done] for config in configs]
    logged = [c for runs in read for c in runs]
    regression = not any(c[N.VAL_ACC] for c in logged) and any(c[N.VAL_MSE] for c in logged)
    keys = (N.VAL_MSE if regression else N.VAL_ACC, N.VAL_LOSS)
    for i, config in enumerate(configs):
        color = cmap(i % cmap.N)
        for j, curves in enumerate(read[i]):
            for ax, key in zip(axes, keys, strict=True):
                if curves[key]:
                    epochs, values = zip(*curves[key], strict=True)
                    label = f"{i + 1}: {config.label}" if j == 0 and i < MAX_LEGEND else None
                    ax.plot(epochs, values, marker=".", color=color, alpha=0.8, label=label)
                    plotted += 1
    for ax, key in zip(axes, keys, strict=True):
        ax.set(xlabel="epoch", ylabel=key, title=f"{key} per epoch")
        ax.grid(alpha=0.3)
    if plotted:
        axes[0].legend(fontsize=7, loc="upper right" if regression else "lower right")
    else:
        axes[0].text(0.5, 0.5, "no CSV-logged curves", ha="center", va="center", transform=axes[0].transAxes)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)
    return Path(path)
