"""A model of the user's own, outside nnopt: a plain torch module as a model target."""

from __future__ import annotations

import math

from torch import nn


class MyNet(nn.Sequential):
    """Flatten -> Linear -> ReLU -> Linear, with no nnopt code in it."""

    def __init__(self, in_shape: list[int], num_classes: int, hidden: int = 16) -> None:
        super().__init__(
            nn.Flatten(), nn.Linear(math.prod(in_shape), hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )
