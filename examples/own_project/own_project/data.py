"""A plain LightningDataModule over scikit-learn's bundled wine data (178 samples, 13 features, 3 classes).

It owns its split, its transform (standardisation with training statistics, applied per sample) and its
DataLoaders; nnopt only needs `num_classes` and `input_shape`, declared in conf/data/wine.yaml.
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset


class Standardize:
    """x -> (x - mean) / std, with statistics of the training split."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean, self.std = mean, std

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ArrayDataset(Dataset):
    def __init__(self, x: np.ndarray, y: np.ndarray, transform=None) -> None:
        self.x = torch.as_tensor(x, dtype=torch.float32)
        self.y = torch.as_tensor(y, dtype=torch.long)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[i]
        return (self.transform(x) if self.transform else x), self.y[i]


class WineDataModule(pl.LightningDataModule):
    def __init__(
        self,
        batch_size: int = 32,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.split_seed = split_seed
        self.num_workers = num_workers
        self.splits: dict[str, ArrayDataset] | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        from sklearn.datasets import load_wine
        from sklearn.model_selection import train_test_split

        x, y = load_wine(return_X_y=True)
        x_rest, x_test, y_rest, y_test = train_test_split(
            x, y, test_size=self.test_fraction, stratify=y, random_state=self.split_seed
        )
        val_share = self.val_fraction / (1.0 - self.test_fraction)
        x_train, x_val, y_train, y_val = train_test_split(
            x_rest, y_rest, test_size=val_share, stratify=y_rest, random_state=self.split_seed
        )
        train = torch.as_tensor(x_train, dtype=torch.float32)
        transform = Standardize(train.mean(0), train.std(0))
        self.splits = {
            "train": ArrayDataset(x_train, y_train, transform),
            "val": ArrayDataset(x_val, y_val, transform),
            "test": ArrayDataset(x_test, y_test, transform),
        }

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup()
        return DataLoader(self.splits[split], batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
