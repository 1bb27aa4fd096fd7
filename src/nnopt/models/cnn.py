"""Small conv net with batch norm and dropout."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nnopt.models.blocks import conv_block, dense_block, flat_features


class SmallCNN(nn.Module):
    image_input = True  # conv stack: inputs must be (C, H, W); checked before building

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (32, 64),
        hidden: int = 128,
        batch_norm: bool = True,
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = in_shape[0]
        for ch in channels:
            layers += conv_block(in_ch, ch, 3, 1, batch_norm)
            in_ch = ch
        layers.append(nn.Flatten())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        self.features = nn.Sequential(*layers)
        flat = flat_features(self.features, in_shape, "cnn")
        self.classifier = nn.Sequential(*dense_block(flat, hidden, False, dropout), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
