"""In-memory data path: whole data set as tensors, batches sliced by index.

Per-sample ``Dataset`` + collate costs ~0.1 ms per sample on CPU; slicing a resident tensor costs almost
nothing, so small-model epochs are bound by the model, not the loader.
The batches themselves are :mod:`nnopt.data.batches`; the memory budget and the compact conversion to float32 are
:mod:`nnopt.data.memory`. Length: one data module for every source (checks, split, scaling, set-up per stage).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from nnopt.data.batches import DeferredBatch, TensorBatches
from nnopt.data.memory import ROWS_CHUNK, available_memory, check_fits, float_tensor, memory_need
from nnopt.errors import DataError

__all__ = [
    "CLASSIFICATION",
    "REGRESSION",
    "TASKS",
    "Arrays",
    "DeferredBatch",
    "InMemoryDataModule",
    "TensorBatches",
    "available_memory",
    "check_fits",
    "check_labels",
]

#: what a data set asks of the model (data config key `task`)
CLASSIFICATION, REGRESSION = "classification", "regression"
TASKS = (CLASSIFICATION, REGRESSION)


@dataclass
class Arrays:
    """Raw arrays from a source: images (N, C, H, W) or (N, H, W), or tabular (N, F); integer labels
    (classification) or real targets (regression)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    #: inputs are multiplied by this when the float32 tensors are made (e.g. 1/255: 8-bit images kept as uint8
    #: until then, scaled to [0, 1]); None: the values as they are
    x_factor: float | None = None


# -- memory ------------------------------------------------------------------------------------------------
class InMemoryDataModule(pl.LightningDataModule):
    """Shared DataModule: a source implements :meth:`load_arrays`; splitting, scaling and batching live here."""

    #: declared number of classes (a source's default; `data.num_classes` overrides it): labels must lie in
    #: [0, num_classes), so one stray label is refused instead of silently widening the model
    num_classes: int = 10
    #: target mean/std of the training split (regression): metrics are reported in the target's original units
    target_mean: float = 0.0
    target_std: float = 1.0
    #: train-split input statistics (set by `prepare`) and the raw-value scale (255 for 8-bit images, else 1)
    input_mean: torch.Tensor | None = None
    input_std: torch.Tensor | None = None
    input_scale: float = 1.0

    def __init__(
        self,
        batch_size: int = 128,
        eval_batch_size: int = 1024,
        val_fraction: float = 0.1,
        test_fraction: float = 0.15,
        on_device: bool = True,
        split_seed: int = 0,
        seed: int = 0,
        name: str | None = None,
        task: str = CLASSIFICATION,
        num_classes: int | None = None,
        max_gb: float | None = None,
    ) -> None:
        super().__init__()
        self.max_gb = max_gb  # refuse a data set needing more memory than this (GB); None: the memory available
        if num_classes is not None:
            self.num_classes = num_classes
        if task not in TASKS:
            raise DataError(f"data.task={task!r} is not allowed; choose one of: {', '.join(TASKS)}")
        self.task = task
        self.batch_size = batch_size  # attribute name expected by Lightning's BatchSizeFinder
        self.eval_batch_size = eval_batch_size
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.on_device = on_device
        self.split_seed = split_seed
        self.seed = seed
        self.name = name or type(self).__name__
        self.tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None

    # -- implemented by each source -------------------------------------------------------------
    def load_arrays(self) -> Arrays:
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Load, check, split and scale once (idempotent); shapes are known afterwards."""
        if self.tensors is not None:
            return
        arrays = self.load_arrays()
        x_tr, y_tr = _checked(arrays.x_train, arrays.y_train, "train", self.task)
        need = memory_need(x_tr, y_tr) + (memory_need(arrays.x_test, arrays.y_test) if arrays.x_test is not None else 0)
        check_fits(need, f"data.name={self.name}: inputs of shape {x_tr.shape}", self.max_gb)
        rng = np.random.default_rng(self.split_seed)
        perm = rng.permutation(len(x_tr))
        if arrays.x_test is None:
            n_test = int(round(len(x_tr) * self.test_fraction))
            test_idx, perm = perm[:n_test], perm[n_test:]
            x_te, y_te = x_tr, y_tr[test_idx]
        else:
            test_idx = None
            x_te, y_te = _checked(arrays.x_test, arrays.y_test, "test", self.task)
            if x_te.shape[1:] != x_tr.shape[1:]:
                raise DataError(
                    f"data.name={self.name}: test inputs have shape {x_te.shape[1:]} per sample but train inputs "
                    f"{x_tr.shape[1:]}; both splits must come from the same kind of data"
                )
        if self.task == CLASSIFICATION:
            for split, y in (("train", y_tr), ("test", y_te)):
                check_labels(y, self.num_classes, f"data.name={self.name}: {split} split")
        n_val = int(round(len(x_tr) * self.val_fraction))
        val_idx, train_idx = perm[:n_val], perm[n_val:]
        # (inputs, row indices into them, targets): the rows are gathered straight into the float32 tensors
        splits = {
            "train": (x_tr, train_idx, y_tr[train_idx]),
            "val": (x_tr, val_idx, y_tr[val_idx]),
            "test": (x_te, test_idx, y_te),
        }
        for split, (x, index, _) in splits.items():
            if (len(x) if index is None else len(index)) == 0 and not (split == "val" and self.val_fraction == 0):
                raise DataError(f"data.name={self.name}: the {split} split is empty; check the fractions/files")
        regression = self.task == REGRESSION
        if regression:
            self.num_classes = 1  # one output unit
        # Scale with train statistics only, so nothing leaks from val/test (torch: multi-threaded, no extra copies).
        # Inputs keep the source's dtype (uint8 images) until here: each split becomes float32 once, chunk by chunk.
        y_dtype = torch.float32 if regression else torch.int64
        raw_uint8 = arrays.x_train.dtype == np.uint8 and arrays.x_factor is None
        tensors = {
            split: (float_tensor(x, index, arrays.x_factor), torch.as_tensor(y, dtype=y_dtype))
            for split, (x, index, y) in splits.items()
        }
        del arrays, x_tr, x_te, splits
        x_train = tensors["train"][0]
        if x_train.dim() == 2:  # tabular: features have unrelated units, so each gets its own scale
            std, mean = torch.std_mean(x_train, dim=0)
            std = torch.where(std > 0, std, torch.ones_like(std))
        else:
            std, mean = torch.std_mean(x_train)
            std = std if float(std) > 0 else torch.ones(())
        for x, _ in tensors.values():
            x.sub_(mean).div_(std)
        # the input contract of exported models (nnopt.export): raw values scaled to [0, 1] (8-bit images / 255),
        # standardised inside the model with these train statistics
        self.input_mean, self.input_std = mean, std
        self.input_scale = 255.0 if raw_uint8 else 1.0
        if regression:  # standardised targets train well with default learning rates; metrics undo it
            y_std, y_mean = torch.std_mean(tensors["train"][1])
            self.target_mean, self.target_std = float(y_mean), float(y_std) if float(y_std) > 0 else 1.0
            for _, y in tensors.values():
                y.sub_(self.target_mean).div_(self.target_std)
        self.tensors = {k: (x.contiguous(), y) for k, (x, y) in tensors.items()}

    @property
    def input_shape(self) -> tuple[int, ...]:
        self.prepare()
        return tuple(self.tensors["train"][0].shape[1:])

    def split_sizes(self) -> dict[str, int]:
        self.prepare()
        return {k: len(v[0]) for k, v in self.tensors.items()}

    def setup(self, stage: str | None = None) -> None:
        self.prepare()
        trainer = self.trainer
        if self.on_device and trainer is not None and trainer.strategy.root_device.type == "cuda":
            device = trainer.strategy.root_device
            self.tensors = {k: (x.to(device), y.to(device)) for k, (x, y) in self.tensors.items()}

    def _batches(self, split: str, batch_size: int, shuffle: bool) -> TensorBatches:
        self.prepare()
        x, y = self.tensors[split]
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return TensorBatches(
            x,
            y,
            batch_size,
            shuffle=shuffle,
            seed=self.seed,
            epoch_fn=(lambda: trainer.current_epoch) if trainer is not None else (lambda: 0),
            rank=rank,
            world_size=world,
        )

    #: set by nnopt.build for trainer.fused_steps > 1: wraps the training batches into groups (nnopt.fused)
    train_grouping: Callable[[TensorBatches], Any] | None = None

    def train_dataloader(self) -> Any:
        batches = self._batches("train", self.batch_size, shuffle=True)
        return batches if self.train_grouping is None else self.train_grouping(batches)

    def val_dataloader(self) -> TensorBatches:
        return self._batches("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> TensorBatches:
        return self._batches("test", self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> TensorBatches:
        return self.test_dataloader()


def _checked(
    x: np.ndarray, y: np.ndarray | None, split: str, task: str = CLASSIFICATION
) -> tuple[np.ndarray, np.ndarray]:
    if y is None or len(x) != len(y):
        raise DataError(f"{split} split: {len(x)} images but {0 if y is None else len(y)} labels")
    if len(x) == 0:
        raise DataError(f"{split} split is empty")
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim not in (2, 4):
        raise DataError(f"{split} inputs must have shape (N, H, W), (N, C, H, W) or (N, F), got {x.shape}")
    for what, values in (("inputs", x), ("targets", y)):
        if values.dtype.kind in "fc":
            bad = _non_finite_rows(values)
            if len(bad):
                raise DataError(
                    f"{split} split: {len(bad)} samples have NaN/Inf {what} (first: sample {int(bad[0])}); "
                    "clean or drop them before training"
                )
    integral = y.dtype.kind in "iub" or (y.dtype.kind == "f" and np.array_equal(y, np.round(y)))
    if task == CLASSIFICATION and not integral:
        raise DataError(f"{split} split: class labels must be integers, got {y.dtype} values")
    return x, y


def _non_finite_rows(values: np.ndarray) -> np.ndarray:
    """Indices of the rows of `values` holding NaN/Inf, checked a chunk of rows at a time (no full-size mask)."""
    flat = values.reshape(len(values), -1)
    step = max(1, ROWS_CHUNK // max(1, flat.shape[1]))
    bad = [
        start + np.flatnonzero(~np.isfinite(flat[start : start + step]).all(axis=1))
        for start in range(0, len(flat), step)
    ]
    return np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)


def _label_text(value: Any) -> str:
    value = float(value)
    return "NaN" if math.isnan(value) else ("Inf" if value > 0 else "-Inf") if math.isinf(value) else repr(value)


def check_labels(y: np.ndarray, num_classes: int, where: str) -> None:
    """Refuse labels outside [0, num_classes), NaN/Inf or fractional labels, naming the first offending value
    (`where`: split or file)."""
    if len(y) == 0:
        return
    if y.dtype.kind in "fc":
        for defect, bad in (
            ("is not a number", ~np.isfinite(y)),
            ("is not an integer", np.isfinite(y) & (y != np.round(y))),
        ):
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                raise DataError(
                    f"{where}: label {_label_text(y[first])} (sample {first}) {defect} ({int(bad.sum())} such labels); "
                    f"class labels are integers in [0, {num_classes}) (real-valued targets: data.task=regression)"
                )
    low, high = y.min(), y.max()
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise DataError(
            f"{where}: label {int(bad)} is outside [0, {num_classes}) ({int(((y < 0) | (y >= num_classes)).sum())} "
            f"such labels); fix the labels or set data.num_classes"
        )
