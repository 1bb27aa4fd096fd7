"""scikit-learn's bundled digits (ships inside the package: no download)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nnopt.data.base import Arrays, InMemoryDataModule


class DigitsDataModule(InMemoryDataModule):
    """1797 8x8 grey digits, optionally upsampled (bilinear) to `size` x `size`."""

    def __init__(self, size: int = 28, **kwargs) -> None:
        super().__init__(**kwargs)
        self.size = size

    def load_arrays(self) -> Arrays:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
        if self.size != 8:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return Arrays(x.numpy(), digits.target.astype(np.int64))
