"""batch_size.png: final test metric and training time against the batch size, for sweeps over `data.batch_size`."""

from __future__ import annotations

from pathlib import Path

from nnopt.metrics import summary as S
from nnopt.report.table import Config

BATCH_KEY = "data.batch_size"


def batch_size_png(configs: list[Config], path: str | Path, key: str = BATCH_KEY) -> Path | None:
    """One line per combination of the other swept values; mean ± std over seeds. None (nothing written) when the
    sweep does not vary `key` over at least two values."""
    sized = [(int(c.params[key]), c) for c in configs if str(c.params.get(key, "")).isdigit()]
    if len({size for size, _ in sized}) < 2:
        return None
    import matplotlib.pyplot as plt

    metric = S.TEST_ACC if any(c.mean(S.TEST_ACC) is not None for _, c in sized) else S.TEST_MSE
    lines: dict[str, list[tuple[int, Config]]] = {}
    for size, config in sorted(sized, key=lambda item: item[0]):
        rest = " ".join(f"{k}={v}" for k, v in config.params.items() if k != key) or "all runs"
        lines.setdefault(rest, []).append((size, config))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (y_key, label) in zip(axes, ((metric, metric), (S.TRAIN_TIME, "training time (s)")), strict=True):
        for rest, points in lines.items():
            stats = [(size, c.stats(y_key)) for size, c in points if c.stats(y_key) is not None]
            if stats:
                xs = [size for size, _ in stats]
                ax.errorbar(
                    xs, [m for _, (m, _) in stats], yerr=[s for _, (_, s) in stats], marker="o", capsize=3, label=rest
                )
        ax.set_xscale("log", base=2)
        ax.set(
            xlabel=f"batch size ({key}; the largest may be the full training split)",
            ylabel=label,
            title=f"{label} vs batch size",
        )
        ax.grid(alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
