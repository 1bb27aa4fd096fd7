"""Generated class clusters in image shape: learnable, instant, deterministic (for tests)."""

from __future__ import annotations

import numpy as np

from nnopt.data.base import Arrays, InMemoryDataModule


class SyntheticDataModule(InMemoryDataModule):
    def __init__(
        self,
        num_samples: int = 1200,
        num_classes: int = 10,
        shape: tuple[int, ...] = (1, 28, 28),
        noise: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.num_samples, self.num_classes, self.shape, self.noise = (
            num_samples,
            num_classes,
            tuple(shape),
            noise,
        )

    def load_arrays(self) -> Arrays:
        rng = np.random.default_rng(self.split_seed)
        means = rng.normal(0.0, 1.0, size=(self.num_classes, *self.shape)).astype(np.float32)
        y = rng.integers(0, self.num_classes, size=self.num_samples)
        x = means[y] + self.noise * rng.normal(size=(self.num_samples, *self.shape)).astype(np.float32)
        return Arrays(x.astype(np.float32), y.astype(np.int64))
