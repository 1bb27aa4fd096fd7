"""LeNet-5, Caffe variant (20/50 channels, 500 hidden: 431K weights), as in Han et al. 2015."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nnopt.models.blocks import conv_block, dense_block, flat_features


class LeNet5(nn.Module):
    image_input = True  # conv stack: inputs must be (C, H, W); checked before building

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (20, 50),
        hidden: int = 500,
        batch_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            *conv_block(in_shape[0], c1, 5, 0, batch_norm),
            *conv_block(c1, c2, 5, 0, batch_norm),
            nn.Flatten(),
        )
        flat = flat_features(self.features, in_shape, "lenet5")
        self.classifier = nn.Sequential(*dense_block(flat, hidden, False, dropout), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
