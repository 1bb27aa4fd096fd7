"""How the sections run things: nnopt in-process (the same `nnopt.train.run(cfg)` the CLI calls), the bare
loop on the same data and net, and the environment of cold subprocesses."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from nnopt import build, train
from nnopt.config import instantiate
from nnopt.config.compose import compose_run_config
from nnopt.metrics import summary as S
from nnopt_bench import SCRIPTS_DIR
from nnopt_bench.bare import BareLoop
from nnopt_bench.config import Mode

#: the bench's callbacks as nnopt runs name them (`+callbacks.<name>._target_=...`); see `subprocess_env`
EPOCH_TIMER = "nnopt_bench.timers.EpochTimer"
FIRST_STEP = "nnopt_bench.timers.FirstStepStamp"


def compose_cfg(out_dir: Path, overrides: list[str]) -> DictConfig:
    """Compose the train config as `nnopt-train` does, with all output under `out_dir`."""
    return compose_run_config(out_dir, overrides)


def subprocess_env(threads: int) -> dict[str, str]:
    """A cold run's environment: no inherited run stamp, cluster or W&B settings, `threads` for OpenMP/MKL, and
    `scripts/` first on PYTHONPATH so that `+callbacks.x._target_=nnopt_bench...` resolves in that process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NNOPT_RUN_STAMP", "SLURM_", "WANDB_"))}
    path = os.pathsep.join([str(SCRIPTS_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), WANDB_MODE="offline", PYTHONPATH=path)
    return env


class Bench:
    """One bench run's settings and scratch dir, and the two ways of training the sections compare."""

    def __init__(
        self, mode: Mode, work: Path, threads: int, template_dir: Path | None = None, template_python: str = ""
    ) -> None:
        self.mode, self.work, self.threads = mode, work, threads
        self.template_dir, self.template_python = template_dir, template_python or sys.executable
        self.template_command = ""
        self._runs = 0

    def batches(self, cap: int | None = None) -> int | None:
        """Training batches per epoch: the mode's limit, lowered to `cap` (a target's own) where given."""
        limits = [v for v in (self.mode.max_batches, cap) if v]
        return min(limits) if limits else None

    def limit(self, cap: int | None = None) -> list[str]:
        n = self.batches(cap)
        return [f"trainer.limit_train_batches={n}"] if n else []

    def nnopt(
        self,
        overrides: list[str],
        epochs: int,
        target_acc: float | None = None,
        profile_epoch: int | None = None,
        bare_beside: bool = False,
        max_batches: int | None = None,
    ) -> dict[str, Any]:
        """One full nnopt run (default callbacks, CSV logger) with an epoch timer added; returns timings+summary.
        With `bare_beside`, each epoch's record has the `bare` loop's epochs run right before it (`bare`) and right
        after it (`bare_after`; EpochTimer), over `max_batches` batches (the same limit the overrides give nnopt)."""
        self._runs += 1
        out = self.work / f"run{self._runs:03d}"
        times = out / "epoch_times.json"
        extra = [f"+callbacks.bench_timer._target_={EPOCH_TIMER}", f"+callbacks.bench_timer.path={times}"]
        if target_acc is not None:
            extra.append(f"+callbacks.bench_timer.target_acc={target_acc}")
        if profile_epoch is not None:
            extra.append(f"+callbacks.bench_timer.profile_epoch={profile_epoch}")
        if bare_beside:
            extra += ["+callbacks.bench_timer.bare_beside=true", "+callbacks.bench_timer.seed=${seed}"]
            if limit := self.batches(max_batches):
                extra.append(f"+callbacks.bench_timer.max_batches={limit}")
        cfg = compose_cfg(
            out,
            [*self.mode.data, *overrides, f"trainer.max_epochs={epochs}", f"trainer.threads={self.threads}", *extra],
        )
        start = time.perf_counter()
        summary = train.run(cfg)
        wall = time.perf_counter() - start
        if summary.get(S.STATUS) != S.COMPLETED:
            raise RuntimeError(f"nnopt run {' '.join(overrides)} failed: {summary.get(S.ERROR)}")
        epochs_rec = json.loads(times.read_text())
        prof = Path(f"{times}.prof")
        return {
            "epochs": epochs_rec,
            "wall_s": wall,
            "summary": summary,
            "threads": torch.get_num_threads(),
            "profile": prof if prof.is_file() else None,
        }

    def data_and_net(self, overrides: list[str]) -> tuple[DictConfig, Any]:
        """The config and datamodule exactly as nnopt builds them for `overrides`."""
        cfg = compose_cfg(self.work / "bare", [*self.mode.data, *overrides])
        dm = build.build_datamodule(cfg)
        return cfg, dm

    def bare(self, cfg: DictConfig, dm: Any, epochs: int, loader: Any = None) -> list[dict[str, float]]:
        """Hand-written loop (BareLoop): same net, optimizer, batch, shuffling from resident tensors (or `loader`)."""
        torch.set_num_threads(self.threads)
        pl.seed_everything(cfg.seed, verbose=False)
        net = instantiate.build_net(cfg, dm.input_shape, dm.num_classes)
        opt = instantiate.instantiate(cfg.optimizer)(params=net.parameters())
        x, y = dm.tensors["train"]
        loop = BareLoop(net, opt, x, y, dm.batch_size, cfg.seed, self.mode.max_batches)
        return [loop.epoch(loader, val=dm.tensors["val"]) for _ in range(epochs)]

    def steps_per_epoch(self, dm: Any, cap: int | None = None) -> int:
        steps = -(-len(dm.tensors["train"][0]) // dm.batch_size)
        limit = self.batches(cap)
        return min(steps, limit) if limit else steps
