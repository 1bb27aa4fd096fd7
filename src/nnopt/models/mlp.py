"""LeNet-300-100 style multi-layer perceptron."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from nnopt.models.blocks import as_list, dense_block


class MLP(nn.Module):
    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        hidden: int | Sequence[int] = (300, 100),
        batch_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
        for h in as_list(hidden):
            layers += dense_block(width, h, batch_norm, dropout)
            width = h
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
