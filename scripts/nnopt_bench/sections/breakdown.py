"""Where nnopt's per-step time goes: the bare loop, minimal Lightning, and nnopt with its layers added one by
one, alternated; plus a cProfile of one default training pass grouped by where the code lives."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from nnopt.config import instantiate
from nnopt.data.batches import TensorBatches
from nnopt_bench.config import BREAKDOWN, BREAKDOWN_LAYERS
from nnopt_bench.results import measured, ratio, stats
from nnopt_bench.runner import Bench
from nnopt_bench.timers import EpochTimer


class MinimalModule(pl.LightningModule):
    """The least a Lightning user writes: cross-entropy on the same net and optimizer; no metrics, no logging."""

    def __init__(self, net: torch.nn.Module, optimizer: Callable[..., torch.optim.Optimizer]) -> None:
        super().__init__()
        self.net, self.optimizer_factory = net, optimizer

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(params=self.net.parameters())


def lightning_minimal(b: Bench, cfg: DictConfig, dm: Any, epochs: int) -> list[dict[str, float]]:
    """Lightning's own floor: a plain Trainer with every extra off, over nnopt's in-memory batches."""
    torch.set_num_threads(b.threads)
    pl.seed_everything(cfg.seed, verbose=False)
    module = MinimalModule(
        instantiate.build_net(cfg, dm.input_shape, dm.num_classes), instantiate.instantiate(cfg.optimizer)
    )
    timer = EpochTimer(str(b.work / "minimal_times.json"))
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        limit_train_batches=b.mode.max_batches or 1.0,
    )
    x, y = dm.tensors["train"]
    trainer.fit(module, train_dataloaders=TensorBatches(x, y, dm.batch_size, shuffle=True, seed=cfg.seed))
    return timer.epochs


def breakdown(b: Bench, model: list[str]) -> dict[str, Any]:
    """Where nnopt's per-step time goes: alternate the layers in BREAKDOWN; cProfile one default epoch."""
    cfg, dm = b.data_and_net(model)
    runs: dict[str, list] = {k: [] for k in BREAKDOWN}
    names = list(BREAKDOWN)
    profile = None
    for rep in range(b.mode.reps):
        for which in names[rep % len(names) :] + names[: rep % len(names)]:
            if which == "bare":
                runs[which].append(b.bare(cfg, dm, b.mode.epochs))
            elif which == "lightning_minimal":
                runs[which].append(lightning_minimal(b, cfg, dm, b.mode.epochs))
            else:
                prof_epoch = b.mode.epochs - 1 if which == "nnopt_default" and profile is None else None
                res = b.nnopt([*model, *BREAKDOWN[which], *b.limit()], b.mode.epochs, profile_epoch=prof_epoch)
                runs[which].append(res["epochs"])
                if prof_epoch is not None:
                    profile = profile_groups(res["profile"], b.steps_per_epoch(dm))
    steps = b.steps_per_epoch(dm)
    t = {k: stats([e["train_s"] for rep in v for e in measured(rep)]) for k, v in runs.items()}
    layers, prev = {}, "bare"
    for name in names[1:]:
        layers[name] = {
            "adds": BREAKDOWN_LAYERS[name],
            "ms_per_step": (t[name]["median"] - t[prev]["median"]) / steps * 1e3,
        }
        prev = name
    return {
        "model": " ".join(model),
        "steps_per_epoch": steps,
        "train_s": t,
        "layers": layers,
        "lightning_minimal_over_bare_ratio": ratio(t["lightning_minimal"], t["bare"]),
        "nnopt_default_over_bare_ratio": ratio(t["nnopt_default"], t["bare"]),
        "nnopt_default_over_lightning_minimal_ratio": ratio(t["nnopt_default"], t["lightning_minimal"]),
        "profile": profile,
    }


def profile_groups(prof_path: Path | None, steps: int) -> dict[str, Any] | None:
    """Self time of one profiled training pass, grouped by where the code lives (profiling inflates Python)."""
    import pstats

    if prof_path is None or not prof_path.is_file():
        return None
    raw = pstats.Stats(str(prof_path)).stats  # type: ignore[attr-defined]
    groups: dict[str, float] = {}
    top: list[tuple[float, str]] = []
    for (file, line, func), (_, _, tottime, _, _) in raw.items():
        if file == "~":
            group = "torch kernels (C++)" if "torch" in func else "Python builtins"
        elif "/torch/optim/" in file:
            group = "optimizer (torch.optim Python)"
        elif "/torch/" in file:
            group = "torch Python (module calls, autograd glue)"
        elif "/rich/" in file or "/callbacks/progress/" in file:
            group = "progress bar (rich)"
        elif "lightning" in file:
            group = "Lightning loop and hooks"
        elif "torchmetrics" in file:
            group = "torchmetrics"
        elif "/nnopt/" in file:
            group = "nnopt code"
        else:
            group = "other Python (stdlib, contextlib, logging)"
        groups[group] = groups.get(group, 0.0) + tottime
        short = f"{Path(file).name}:{line}({func})" if file != "~" else func
        top.append((tottime, short))
    total = sum(groups.values())
    return {
        "profiled_s": total,
        "groups_ms_per_step": {k: v / steps * 1e3 for k, v in sorted(groups.items(), key=lambda kv: -kv[1])},
        "top_self_time": [{"fn": name, "ms_per_step": tt / steps * 1e3} for tt, name in sorted(top, reverse=True)[:12]],
    }
