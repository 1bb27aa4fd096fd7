"""Consecutive training batches in groups of K, for `trainer.fused_steps` (one Lightning step per group).

The grouping keeps the plain loader's order and resume state; from nnopt's resident tensors each batch of a group is
a `DeferredBatch`, gathered only when its step runs (so it is still in cache when the step reads it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

from nnopt.data.batches import DeferredBatch


class BatchGroup(list):
    """The consecutive batches of one fused `training_step` (plain batches, or DeferredBatches of resident data)."""

    @property
    def num_samples(self) -> int:
        return sum(batch_samples(batch) for batch in self)


def batch_samples(batch: Any) -> int:
    """Training samples in a batch as Lightning hands it to callbacks (a plain or deferred batch, or a BatchGroup)."""
    if isinstance(batch, BatchGroup | DeferredBatch):
        return batch.num_samples
    return len(batch[0])


def gathered(batch: Any) -> Any:
    """A group's batch ready for its step: DeferredBatches are gathered now, plain batches are as they came."""
    return batch.gather() if isinstance(batch, DeferredBatch) else batch


class GroupedBatches:
    """Yields BatchGroups of `size` consecutive batches of `inner` (the last one may be shorter), at most `limit`
    batches per epoch. An inner loader with `deferred()` (nnopt's TensorBatches) gives DeferredBatches, gathered
    one at a time by `training_step`.

    The state (for mid-epoch resume) is the inner loader's: checkpoints fall between groups, so the inner loader
    resumes at the first batch of the next group.
    """

    def __init__(self, inner: Iterable[Any], size: int, limit: int | None = None) -> None:
        self.inner, self.size, self.limit = inner, size, limit

    @property
    def num_batches(self) -> int:
        """Plain batches per epoch."""
        n = len(self.inner)  # type: ignore[arg-type]
        return n if self.limit is None else min(n, self.limit)

    def __len__(self) -> int:
        return math.ceil(self.num_batches / self.size)

    def __iter__(self) -> Iterator[BatchGroup]:
        group = BatchGroup()
        batches = self.inner.deferred() if hasattr(self.inner, "deferred") else self.inner
        for i, batch in enumerate(batches):
            if self.limit is not None and i >= self.limit:
                break
            group.append(batch)
            if len(group) == self.size:
                yield group
                group = BatchGroup()
        if group:
            yield group

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict() if hasattr(self.inner, "state_dict") else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if hasattr(self.inner, "load_state_dict"):
            self.inner.load_state_dict(state)


def plain_batches(loader: Iterable[Any]) -> Iterator[Any]:
    """A training loader's batches one at a time, whether or not fused steps group them (e.g. for calibration)."""
    if isinstance(loader, GroupedBatches):
        for group in loader:
            yield from (gathered(batch) for batch in group)
    else:
        yield from loader
