"""Tabular sources, shape (N, F): scikit-learn's bundled sets (no download) and a generated linear regression.

The base module scales each feature with training statistics and, for regression, standardises the target
(kept as `target_mean`/`target_std` so metrics come back in the target's units).
"""

from __future__ import annotations

import numpy as np

from nnopt.data.base import CLASSIFICATION, REGRESSION, Arrays, InMemoryDataModule
from nnopt.errors import DataError

#: data set -> (scikit-learn loader, task it is meant for)
SKLEARN_SETS = {
    "diabetes": ("load_diabetes", REGRESSION),
    "breast_cancer": ("load_breast_cancer", CLASSIFICATION),
}


class SklearnTabularDataModule(InMemoryDataModule):
    """diabetes (442 x 10, regression) or breast_cancer (569 x 30, two classes), from scikit-learn's package."""

    def __init__(self, dataset: str, task: str = CLASSIFICATION, num_classes: int | None = None, **kwargs) -> None:
        if dataset not in SKLEARN_SETS:
            raise DataError(f"data.dataset={dataset!r} is not allowed; choose one of: {', '.join(SKLEARN_SETS)}")
        expected = SKLEARN_SETS[dataset][1]
        if task != expected:
            raise DataError(f"data.task={task!r} does not fit data.dataset={dataset}; it is a {expected} set")
        kwargs.setdefault("name", dataset)
        super().__init__(task=task, **kwargs)
        self.dataset = dataset
        # classification: at least `num_classes` outputs (the base raises it to the labels' max + 1)
        self.num_classes = (num_classes or 2) if task == CLASSIFICATION else 1

    def load_arrays(self) -> Arrays:
        from sklearn import datasets

        bunch = getattr(datasets, SKLEARN_SETS[self.dataset][0])()
        y_dtype = np.float32 if self.task == REGRESSION else np.int64
        return Arrays(bunch.data.astype(np.float32), bunch.target.astype(y_dtype))


class SyntheticRegressionDataModule(InMemoryDataModule):
    """y = X w + b + noise * e with X, e ~ N(0, 1): the best linear fit is known, so tests can check metrics
    against closed-form least squares (the irreducible test MSE is noise^2)."""

    def __init__(
        self, num_samples: int = 1000, num_features: int = 8, noise: float = 0.5, task: str = REGRESSION, **kwargs
    ) -> None:
        if task != REGRESSION:
            raise DataError(f"data.task={task!r} does not fit data.name=synthetic_regression; it is a regression set")
        super().__init__(task=task, **kwargs)
        self.num_samples, self.num_features, self.noise = num_samples, num_features, noise
        rng = np.random.default_rng(self.split_seed + 1)
        self.weights = rng.normal(0.0, 2.0, size=num_features).astype(np.float32)
        self.bias = 3.0

    def load_arrays(self) -> Arrays:
        rng = np.random.default_rng(self.split_seed)
        x = rng.normal(size=(self.num_samples, self.num_features)).astype(np.float32)
        y = x @ self.weights + self.bias + self.noise * rng.normal(size=self.num_samples).astype(np.float32)
        return Arrays(x, y.astype(np.float32))
