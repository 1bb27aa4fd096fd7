"""The hand-written training loop nnopt is compared with in `scripts/bench.py`."""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch
import torch.nn.functional as F


class BareLoop:
    """Forward, cross-entropy, backward and optimizer step on shuffled batches sliced from resident tensors: the
    least a training loop does. It keeps its net, optimizer and shuffling generator across `epoch()` calls.

    Args:
        net: the network (trained in place).
        optimizer: its optimizer.
        x: training inputs; y: their labels.
        batch_size: samples per step.
        seed: seeds the shuffling generator.
        max_batches: steps per epoch at most (None: the whole split).
    """

    def __init__(
        self,
        net: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        seed: int,
        max_batches: int | None = None,
    ) -> None:
        self.net, self.optimizer, self.x, self.y = net, optimizer, x, y
        self.batch_size, self.max_batches = batch_size, max_batches
        self.generator = torch.Generator().manual_seed(seed)

    def epoch(
        self, loader: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None, val: tuple | None = None
    ) -> dict[str, float]:
        """One training pass (over `loader`'s batches instead of resident slices when given), then the accuracy on
        `val` = (x, y) when given. Returns `train_s`, `train_cpu_s`, `epoch_s` (and `val_acc`)."""
        start, cpu_start = time.perf_counter(), time.process_time()
        self.net.train()
        if loader is None:
            bs, n = self.batch_size, len(self.x)
            order = torch.randperm(n, generator=self.generator)
            batches = ((self.x[idx], self.y[idx]) for idx in (order[i : i + bs] for i in range(0, n, bs)))
        else:
            batches = iter(loader)
        for step, (xb, yb) in enumerate(batches):
            if self.max_batches and step >= self.max_batches:
                break
            loss = F.cross_entropy(self.net(xb), yb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        record = {"train_s": time.perf_counter() - start, "train_cpu_s": time.process_time() - cpu_start}
        if val is not None:
            record["val_acc"] = accuracy(self.net, *val)
        record["epoch_s"] = time.perf_counter() - start
        return record


@torch.no_grad()
def accuracy(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2048) -> float:
    """Top-1 accuracy of `net` on (x, y), in chunks on the net's device; the net's train/eval mode is kept."""
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    correct = sum(
        int((net(x[i : i + batch_size].to(device)).argmax(1).to(y.device) == y[i : i + batch_size]).sum())
        for i in range(0, len(x), batch_size)
    )
    net.train(was_training)
    return correct / max(len(x), 1)
