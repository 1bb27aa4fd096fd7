"""batch_size.png: final test metric and training time against the batch size, for sweeps over `data.batch_size`."""

from __future__ import annotations

from pathlib import Path

from nnopt.metrics import summary as S
from nnopt.report.table import Config, shown

BATCH_KEY = "data.batch_size"
#: more line series than this (or series of one point each, as in a search): one scatter of every config instead
MAX_LINES = 8


def batch_size_png(configs: list[Config], path: str | Path, key: str = BATCH_KEY) -> Path | None:
    """One line per combination of the other swept values; mean ± std over seeds. None (nothing written) when the
    sweep does not vary `key` over at least two values. A search (every trial its own combination) is one scatter."""
    sized = [(int(c.params[key]), c) for c in configs if str(c.params.get(key, "")).isdigit()]
    if len({size for size, _ in sized}) < 2:
        return None
    import matplotlib.pyplot as plt

    from nnopt.report import plots

    metric = S.TEST_ACC if any(c.mean(S.TEST_ACC) is not None for _, c in sized) else S.TEST_MSE
    lines: dict[str, list[tuple[int, Config]]] = {}
    for size, config in sorted(sized, key=lambda item: item[0]):
        rest = " ".join(f"{k}={shown(v)}" for k, v in config.params.items() if k != key) or "all runs"
        lines.setdefault(rest, []).append((size, config))
    scatter = len(lines) > MAX_LINES or all(len(points) < 2 for points in lines.values())
    if scatter:
        lines = {"config (mean ± std over seeds)": sorted(sized, key=lambda item: item[0])}
    legend = len(lines) > 1
    height = 4.2 + (plots.legend_rows(len(lines)) if legend else 0.0)
    fig, axes = plt.subplots(1, 2, figsize=(plots.WIDTH, height), layout="constrained")
    handles, labels = [], []
    for ax, (y_key, label) in zip(axes, ((metric, metric), (S.TRAIN_TIME, "training time (s)")), strict=True):
        for rest, points in lines.items():
            stats = [(size, c.stats(y_key)) for size, c in points if c.stats(y_key) is not None]
            if stats:
                xs = [size for size, _ in stats]
                drawn = ax.errorbar(
                    xs,
                    [m for _, (m, _) in stats],
                    yerr=[s for _, (_, s) in stats],
                    marker="o",
                    capsize=3,
                    linestyle="none" if scatter else "-",
                    alpha=0.7 if scatter else 1.0,
                )
                if ax is axes[0]:
                    handles.append(drawn)
                    labels.append(plots.short(rest))
        ax.set_xscale("log", base=2)
        ax.set(xlabel=f"batch size ({key})", ylabel=label, title=f"{label} vs batch size")
        ax.grid(alpha=0.3)
    if legend:
        plots.legend_below(fig, handles, labels)
    fig.suptitle("the largest batch size may be the full training split (full-batch)", fontsize=9)
    plots.save_png(fig, path)
    plt.close(fig)
    return Path(path)
