"""Figures written into run dirs (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import torch


def confusion_matrix_png(matrix: torch.Tensor, path: str | Path, title: str = "test confusion matrix") -> Path:
    matrix = matrix.detach().cpu()
    n = matrix.shape[0]
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * n, 0.8 + 0.45 * n))
    ax.imshow(matrix, cmap="Blues")
    for i in range(n):
        for j in range(n):
            value = int(matrix[i, j])
            if value:
                color = "white" if value > matrix.max() / 2 else "black"
                ax.text(j, i, str(value), ha="center", va="center", fontsize=7, color=color)
    ax.set(xlabel="predicted", ylabel="true", title=title, xticks=range(n), yticks=range(n))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
