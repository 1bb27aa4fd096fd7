"""Models of a user's own for tests: constructors that take all, some or none of nnopt's shape arguments."""

from __future__ import annotations

import math

from torch import nn


class ClassesOnly(nn.Module):
    """Knows its input width itself: takes `num_classes`, not `in_shape`."""

    def __init__(self, num_classes: int, in_features: int = 784) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(in_features, num_classes))

    def forward(self, x):
        return self.layers(x)


class NoShapes(nn.Module):
    """Takes neither `in_shape` nor `num_classes` (a fixed 784 -> 10 model)."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(784, width), nn.ReLU(), nn.Linear(width, 10))

    def forward(self, x):
        return self.layers(x)


class AnyKwargs(nn.Module):
    """Takes **kwargs: nnopt passes both shapes."""

    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.received = dict(kwargs)
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(kwargs["in_shape"]), kwargs["num_classes"]))

    def forward(self, x):
        return self.layers(x)


class EvenWidth(nn.Module):
    def __init__(self, width: int = 3) -> None:
        super().__init__()
        if width % 2:
            raise ValueError(f"width must be even, got {width}")


class Broken(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        raise RuntimeError("weights file missing on this machine")


def not_a_module(num_classes: int) -> dict:
    return {"num_classes": num_classes}


class Conv1dNet(nn.Module):
    """A user's Conv1d model whose `channels` is one integer and whose `dropout` it judges itself."""

    def __init__(self, in_shape, num_classes: int, channels: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= dropout <= 0.9:
            raise ValueError(f"Conv1dNet: dropout={dropout} must be in [0, 0.9]")
        self.channels = channels
        self.layers = nn.Sequential(
            nn.Flatten(1),
            nn.Unflatten(1, (1, math.prod(in_shape))),
            nn.Conv1d(1, channels, 5, stride=4),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.AdaptiveAvgPool1d(4),
            nn.Flatten(),
            nn.Linear(channels * 4, num_classes),
        )

    def forward(self, x):
        return self.layers(x)
