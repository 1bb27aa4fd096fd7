"""A plain torch model. nnopt passes `num_classes` (and `in_shape`) because the constructor names them."""

from __future__ import annotations

import math

import torch
from torch import nn


class ResidualMLP(nn.Module):
    """Input projection, `depth` residual blocks (LayerNorm -> Linear -> GELU), linear head."""

    def __init__(
        self, in_shape: list[int], num_classes: int, width: int = 64, depth: int = 2, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(in_shape), width))
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Dropout(dropout))
            for _ in range(depth)
        )
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)
