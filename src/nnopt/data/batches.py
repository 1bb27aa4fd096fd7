"""Batches sliced from resident tensors: the global batch shared out over DDP ranks, a shuffle order that a
resumed run repeats, and mid-epoch resume at the next batch."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch


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
