"""A callback that times nnopt epochs from inside the real `nnopt-train` path, for `scripts/bench.py`."""

from __future__ import annotations

import copy
import cProfile
import json
import os
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from typing_extensions import override

from nnopt_bench.bare import BareLoop, accuracy


class EpochTimer(pl.Callback):
    """Writes per-epoch times to `path` (JSON) as training goes.

    `train_s` runs from the epoch's start to the start of validation (the training pass only, like a bare loop
    without evaluation); `epoch_s` runs to the end of the epoch (validation and checkpointing included);
    `train_cpu_s` is the process CPU time of the training pass (with 1 thread: the work done, barely affected by
    other jobs on a shared machine).
    With `target_acc`, the test split is scored after every epoch (outside the clock) and training stops once
    it reaches the target: the time-to-accuracy measurement.
    With `bare_beside`, a hand-written loop (`BareLoop` on a copy of the module's `net`, the same optimizer type and
    hyperparameters, the same resident data) runs one epoch right before each of nnopt's training passes and one
    after the last, outside nnopt's clock: each record's `bare` is the bare epoch just before it and `bare_after`
    the one just after it (the next epoch's `bare`). Each nnopt epoch is so bracketed by bare epochs measured
    seconds apart under the same machine load (a shared machine's speed drifts by +-15 %), and the mean of the two
    cancels a steady drift and which-runs-first effects that one neighbour alone would not.
    """

    def __init__(
        self,
        path: str,
        target_acc: float | None = None,
        profile_epoch: int | None = None,
        bare_beside: bool = False,
        seed: int = 0,
        max_batches: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.target_acc = target_acc
        self.profile_epoch = profile_epoch  # cProfile this epoch's training pass into <path>.prof
        self.bare_beside, self.seed, self.max_batches = bare_beside, seed, max_batches
        self._bare: BareLoop | None = None
        self._bare_record: dict[str, float] | None = None
        self.epochs: list[dict[str, float]] = []
        self._start = self._train_end = None
        self._cpu_start = self._cpu_train = 0.0
        self._profiler: cProfile.Profile | None = None

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.bare_beside:
            return
        net = copy.deepcopy(pl_module.net)  # same architecture and initial weights, trained apart
        optimizer = trainer.optimizers[0]
        x, y = trainer.datamodule.tensors["train"]
        self._bare = BareLoop(
            net,
            type(optimizer)(net.parameters(), **optimizer.defaults),
            x,
            y,
            trainer.datamodule.batch_size,
            self.seed,
            self.max_batches,
        )

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._bare_record = self._bare_epoch()
        if trainer.current_epoch == self.profile_epoch:
            self._profiler = cProfile.Profile()
            self._profiler.enable()
        self._start, self._train_end = time.perf_counter(), None
        self._cpu_start, self._cpu_train = time.process_time(), 0.0

    @override
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._start is not None and self._train_end is None and not trainer.sanity_checking:
            self._train_end = time.perf_counter()
            self._cpu_train = time.process_time() - self._cpu_start
            self._stop_profile()

    def _bare_epoch(self) -> dict[str, float] | None:
        """One bare epoch (when `bare_beside`); it is also the `bare_after` of the last recorded nnopt epoch."""
        if self._bare is None:
            return None
        with torch.inference_mode(False), torch.enable_grad():  # wherever Lightning calls the hook from
            record = self._bare.epoch()
        if self.epochs and "bare_after" not in self.epochs[-1]:
            self.epochs[-1]["bare_after"] = record  # written with the next epoch's record, or at the end of training
        return record

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._bare is not None:
            self._bare_epoch()  # the last epoch's bare_after
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.epochs))

    def _stop_profile(self) -> None:
        if self._profiler is not None:
            self._profiler.disable()
            self._profiler.dump_stats(str(self.path) + ".prof")
            self._profiler = None

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._start is None:
            return
        end = time.perf_counter()
        self._stop_profile()
        record = {
            "train_s": (self._train_end or end) - self._start,
            "epoch_s": end - self._start,
            "train_cpu_s": self._cpu_train or time.process_time() - self._cpu_start,
        }
        if self._bare_record is not None:
            record["bare"] = self._bare_record
        if self.target_acc is not None:
            record["test_acc"] = accuracy(pl_module, *trainer.datamodule.tensors["test"])
            if record["test_acc"] >= self.target_acc:
                trainer.should_stop = True
        self.epochs.append(record)
        self._write()
        self._start = None


def process_start_unix() -> float | None:
    """When this process started (Unix time), from /proc; None where that cannot be read."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime")
        )
    except (OSError, IndexError, ValueError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


class FirstStepStamp(pl.Callback):
    """Writes `{"first_step_unix", "process_start_unix"}` to `path` (JSON) when the first training batch starts:
    the start-up measurement (command -> first training step) of `scripts/bench.py`."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._done = False

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._done:
            return
        self._done = True
        stamp = {"first_step_unix": time.time(), "process_start_unix": process_start_unix()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(stamp))
