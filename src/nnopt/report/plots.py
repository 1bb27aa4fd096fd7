"""pareto.png (the validation selection metric vs size and vs latency, front marked) and curves.png (validation
curves per run).

Figures are laid out by matplotlib's constrained layout, legends outside the axes (below them), long config labels
shortened: a figure of a 20-trial search reads like one of a 2-job sweep."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt

from nnopt.io import write_atomic
from nnopt.metrics import names as N
from nnopt.metrics import summary as S
from nnopt.report.collect import read_curves
from nnopt.report.table import Config, shown, smaller_is_better, task_of

#: configs named in a legend (the rest are drawn, and numbered as in report.md)
MAX_LEGEND = 12
#: characters of a config label in a legend
LEGEND_CHARS = 60
#: latency differences below this fraction are measurement noise (a loaded CPU): the latency front ignores them
LATENCY_NOISE = 0.25
#: gzip sizes of one architecture differ by ~1 % with the trained weights: smaller differences are not a trade-off
SIZE_NOISE = 0.02
WIDTH = 11.0  # inches, at 100 dpi: 1100 pixels


def save_png(fig: plt.Figure, path: str | Path) -> None:
    """Render in memory, then replace the file atomically (an old plot survives a full or read-only disk)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    write_atomic(path, buffer.getvalue())


def short(text: str, limit: int = LEGEND_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def legend_label(config: Config) -> str:
    """A config for a legend: its swept values by the keys' last parts where those are unique (`lr=0.01`, not
    `optimizer.lr=0.01`), shortened to LEGEND_CHARS."""
    tails = [k.rsplit(".", 1)[-1] for k in config.params]
    if not config.params or len(set(tails)) < len(tails):
        return short(config.label)
    return short(" ".join(f"{t}={shown(v)}" for t, v in zip(tails, config.params.values(), strict=True)))


def legend_below(fig: plt.Figure, handles: list, labels: list[str], more: int = 0) -> None:
    """One legend for the figure, below the axes (constrained layout makes room for it)."""
    if more:
        handles = [*handles, plt.Line2D([], [], linestyle="none")]
        labels = [*labels, f"… and {more} more (numbered as in report.md)"]
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=2 if len(labels) > 3 else len(labels), fontsize=8)


def legend_rows(entries: int) -> float:
    """Inches a legend below the axes takes (two columns)."""
    return 0.2 * ((entries + 1) // 2) + 0.3 if entries else 0.0


def pareto_front(points: list[tuple[float, float]], noise: float = 0.0) -> list[int]:
    """Indices of the points no other point beats (x smaller is better, y larger is better).

    `noise`: x differences below this fraction do not count (a point 10 % slower but more accurate beats a faster
    one when latencies within 25 % are noise), so the front is not drawn through measurement noise."""
    front = []
    for i, (x, y) in enumerate(points):
        beaten = any(
            yj >= y and xj <= x * (1 + noise) and (yj > y or xj < x) for j, (xj, yj) in enumerate(points) if j != i
        )
        if not beaten:
            front.append(i)
    return front


def pareto_figure(configs: list[Config], y_key: str | None = None) -> plt.Figure:
    """One panel per cost (size, latency): each config's mean as a point numbered as in report.md.

    `y_key` None: the task's validation selection metric (val/acc_best; val/mse_best, lower is better, for
    regression), what the sweep is ranked on; the test metric only for old sweeps without it."""
    task = task_of([r for c in configs for r in c.runs])
    if y_key is None:
        candidates = (task.best_key, task.test_key, S.TEST_ACC)
        y_key = next((k for k in candidates if any(c.mean(k) is not None for c in configs)), S.TEST_ACC)
    lower = smaller_is_better(y_key, task)
    y_scale, y_unit = (1.0, "") if lower or y_key.endswith("r2") else (100.0, " (%)")
    # gzip size: the stored size that pruning (zeros) and quantization (int8) both shrink
    costs = (
        (S.SIZE_BYTES_GZIP, "model size, gzip (KiB)", 1 / 1024, SIZE_NOISE),
        (S.LATENCY_B1, "latency, batch 1 (ms)", 1.0, LATENCY_NOISE),
    )
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 4.6), layout="constrained")
    handles: dict[str, object] = {}
    for ax, (x_key, x_label, scale, noise) in zip(axes, costs, strict=True):
        numbered = [(i, c) for i, c in enumerate(configs, 1) if c.mean(x_key) is not None and c.mean(y_key) is not None]
        points = [(c.mean(x_key) * scale, c.mean(y_key) * y_scale) for _, c in numbered]
        title = f"{y_key} vs {x_label.split(' (')[0]}"
        if points:
            xs, ys = zip(*points, strict=True)
            x_err = [c.stats(x_key)[1] * scale for _, c in numbered]
            handles["config (mean over seeds)"] = ax.errorbar(
                xs, ys, xerr=x_err if any(x_err) else None, fmt="o", color="tab:blue", alpha=0.7, capsize=2
            )
            front = sorted(pareto_front([(x, -y) for x, y in points] if lower else points, noise), key=lambda i: xs[i])
            ax.step([xs[i] for i in front], [ys[i] for i in front], where="post", color="tab:red", lw=1.2)
            handles["Pareto front"] = ax.scatter(
                [xs[i] for i in front], [ys[i] for i in front], s=80, facecolors="none", edgecolors="tab:red", lw=1.5
            )
            for (number, _), x, y in zip(numbered, xs, ys, strict=True):
                ax.annotate(str(number), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=8)
            if max(xs) > 20 * max(min(xs), 1e-12):
                ax.set_xscale("log")
            title += f"\n(front ignores differences under {noise:.0%})"
        else:
            ax.text(0.5, 0.5, "no completed run measured this", ha="center", va="center", transform=ax.transAxes)
        ax.set(xlabel=x_label, ylabel=f"{y_key}{y_unit}", title=title)
        ax.grid(alpha=0.3)
    legend_below(fig, list(handles.values()), list(handles))
    return fig


def pareto_png(configs: list[Config], path: str | Path, y_key: str | None = None) -> Path:
    fig = pareto_figure(configs, y_key)
    save_png(fig, path)
    plt.close(fig)
    return Path(path)


def curves_figure(configs: list[Config]) -> plt.Figure:
    """Validation accuracy (regression: MSE) and loss per epoch, one line per completed run, one colour per config."""
    read = [[read_curves(run) for run in config.done] for config in configs]
    logged = [c for runs in read for c in runs]
    regression = not any(c[N.VAL_ACC] for c in logged) and any(c[N.VAL_MSE] for c in logged)
    keys = (N.VAL_MSE if regression else N.VAL_ACC, N.VAL_LOSS)
    drawn = [i for i, runs in enumerate(read) if any(c[k] for c in runs for k in keys)]
    named = drawn[:MAX_LEGEND]
    fig, axes = plt.subplots(
        1, 2, figsize=(WIDTH, 4.2 + legend_rows(len(named) + (len(drawn) > len(named)))), layout="constrained"
    )
    cmap = plt.get_cmap("tab10" if len(configs) <= 10 else "tab20")
    handles, labels = [], []
    for i, config in enumerate(configs):
        color = cmap(i % cmap.N)
        for j, curves in enumerate(read[i]):
            for ax, key in zip(axes, keys, strict=True):
                if curves[key]:
                    epochs, values = zip(*curves[key], strict=True)
                    (line,) = ax.plot(epochs, values, marker=".", color=color, alpha=0.8)
                    if j == 0 and ax is axes[0] and i in named:
                        handles.append(line)
                        labels.append(f"{i + 1}: {legend_label(config)}")
    for ax, key in zip(axes, keys, strict=True):
        ax.set(xlabel="epoch", ylabel=key, title=f"{key} per epoch")
        ax.grid(alpha=0.3)
    if drawn:
        legend_below(fig, handles, labels, more=len(drawn) - len(named))
    else:
        axes[0].text(0.5, 0.5, "no CSV-logged curves", ha="center", va="center", transform=axes[0].transAxes)
    return fig


def curves_png(configs: list[Config], path: str | Path) -> Path:
    fig = curves_figure(configs)
    save_png(fig, path)
    plt.close(fig)
    return Path(path)
