"""In-memory data path: whole data set as tensors, batches sliced by index.

Per-sample ``Dataset`` + collate costs ~0.1 ms per sample on CPU; slicing a resident tensor costs almost
nothing, so small-model epochs are bound by the model, not the loader.
Length: the in-memory path (checks, split, scaling, DDP-sharded batches with resumable position) is one mechanism
shared by every source.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from nnopt.errors import DataError

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
def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.3g}"


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> int | None:
    """Bytes this process can still allocate: the kernel's MemAvailable, or less under a cgroup memory limit;
    None when unknown (then only `data.max_gb` limits a data set)."""
    found: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),  # v1
    ):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:
            found.append(max(0, limit - usage))
    return min(found) if found else None


def check_fits(need: int, what: str, max_gb: float | None = None) -> None:
    """Refuse a data set needing `need` bytes of memory when that is more than `data.max_gb` or than the memory
    available; `what` names the file (or source) and its declared size."""
    limits = []
    if max_gb is not None:
        limits.append((max_gb * 1e9, f"data.max_gb={max_gb}"))
    free = available_memory()
    if free is not None:
        limits.append((free, f"the {_gb(free)} GB of memory available"))
    if not limits:
        return
    limit, text = min(limits, key=lambda item: item[0])
    if need > limit:
        raise DataError(
            f"{what}; the data set needs {_gb(need)} GB in memory (decoded data and float32 tensors), more than "
            f"{text}; use fewer samples or a machine with more memory"
            + (" (or raise data.max_gb)" if text.startswith("data.max_gb") else "")
        )


def memory_need(x: np.ndarray, y: np.ndarray | None = None) -> int:
    """Bytes a split costs while its tensors are made: the source's arrays plus float32 inputs and 8-byte targets."""
    need = x.nbytes + x.size * 4
    if y is not None:
        need += y.nbytes + len(y) * 8
    return need


_ROWS_CHUNK = 1 << 24  # elements converted at a time: the temporary copy of a chunk stays small


def _float_tensor(x: np.ndarray, index: np.ndarray | None, factor: float | None) -> torch.Tensor:
    """Rows `index` of `x` (all when None) as one new float32 tensor, converted chunk by chunk: no full-size float64
    or uint8 intermediate, and the source array keeps its compact dtype."""
    n = len(x) if index is None else len(index)
    out = torch.empty((n, *x.shape[1:]), dtype=torch.float32)
    dest = out.numpy()
    step = max(1, _ROWS_CHUNK // max(1, math.prod(x.shape[1:])))
    for start in range(0, n, step):
        stop = min(start + step, n)
        rows = x[start:stop] if index is None else x[index[start:stop]]
        if factor is None:
            dest[start:stop] = rows
        else:
            np.multiply(rows, factor, out=dest[start:stop], dtype=np.float32)
    return out


class DeferredBatch:
    """One batch of resident tensors, gathered when its optimizer step runs (`trainer.fused_steps`).

    A fused `training_step` receives K batches at once; gathered up front they are K x batch bytes away from their
    step and out of the core's cache by then (~2 % of a small model's step at K=16, ~8 % at K=64). Lightning's
    batch transfer calls `to(device)`, which only records where `gather` puts the batch.
    """

    __slots__ = ("x", "y", "index", "device")

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor | slice, device: torch.device | None = None
    ) -> None:
        self.x, self.y, self.index, self.device = x, y, index, device

    @property
    def num_samples(self) -> int:
        return len(self.index) if isinstance(self.index, torch.Tensor) else self.index.stop - self.index.start

    def to(self, device: torch.device | str, *args: Any, **kwargs: Any) -> DeferredBatch:
        return DeferredBatch(self.x, self.y, self.index, torch.device(device))

    def gather(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.x[self.index], self.y[self.index]
        if self.device is not None and x.device != self.device:
            x, y = x.to(self.device), y.to(self.device)
        return x, y


class TensorBatches:
    """Iterable of (x, y) batches sliced from resident tensors.

    `batch_size` is the *global* batch: under DDP each rank takes its contiguous share of every global
    batch, so N processes see the same samples per step as one process does. Shuffled (training) batches
    are split into equal shares, so DDP's gradient average equals the one-process batch mean; the last
    batch drops its remainder (< world_size samples) for that. Evaluation batches keep every sample
    (metrics are summed across ranks) and a rank skips a batch whose share is empty.
    The shuffle order depends on `seed` and the epoch returned by `epoch_fn`, so a resumed run sees the
    same order as an uninterrupted one; `state_dict` holds how many batches of the epoch were handed out,
    so Lightning resumes a mid-epoch checkpoint at the next batch instead of the first.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        epoch_fn: Callable[[], int] = lambda: 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch_fn = epoch_fn
        self.rank, self.world_size = rank, world_size
        self._epoch, self._served = -1, 0  # progress of the current epoch (resume state)
        self._resume: tuple[int, int] | None = None

    def _slices(self) -> list[tuple[int, int]]:
        """(start, stop) of this rank's share of every global batch, in batch order."""
        n, bs, world = len(self.x), self.batch_size, self.world_size
        out = []
        for start in range(0, n, bs):
            stop = min(start + bs, n)
            if world > 1:
                if self.shuffle:
                    per = (stop - start) // world
                    start, stop = start + self.rank * per, start + (self.rank + 1) * per
                else:
                    per = math.ceil((stop - start) / world)
                    start, stop = start + self.rank * per, min(start + (self.rank + 1) * per, stop)
                if stop <= start:
                    continue
            out.append((start, stop))
        return out

    def __len__(self) -> int:
        return len(self._slices())

    def _indices(self) -> Iterator[torch.Tensor | slice]:
        """This epoch's batches as row indices into `x`/`y` (after the batches a mid-epoch resume skips)."""
        epoch = self.epoch_fn()
        skip = 0
        if self._resume is not None and self._resume[0] == epoch:
            skip = self._resume[1]
        self._resume = None
        self._epoch, self._served = epoch, skip
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            order = torch.randperm(len(self.x), generator=gen).to(self.x.device)
        for i, (start, stop) in enumerate(self._slices()):
            if i < skip:
                continue
            self._served = i + 1
            yield order[start:stop] if self.shuffle else slice(start, stop)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for index in self._indices():
            yield self.x[index], self.y[index]

    def deferred(self) -> Iterator[DeferredBatch]:
        """The same batches (and resume state) as iteration, each gathered only when its step runs."""
        for index in self._indices():
            yield DeferredBatch(self.x, self.y, index)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._epoch, "batches": self._served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume inside an epoch: the next iteration of that epoch starts after the batches already trained."""
        epoch, served = int(state.get("epoch", -1)), int(state.get("batches", 0))
        self._resume = (epoch, served) if 0 < served < len(self) else None


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
            split: (_float_tensor(x, index, arrays.x_factor), torch.as_tensor(y, dtype=y_dtype))
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
    step = max(1, _ROWS_CHUNK // max(1, flat.shape[1]))
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
