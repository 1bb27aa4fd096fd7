"""Section 2: nnopt's in-memory batches against a conventional per-sample `Dataset` + `DataLoader` (what
templates that wrap torchvision do), and lightning-hydra-template itself when a checkout is given."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nnopt_bench.config import TARGETS, TEMPLATE_EXTERNAL, TEMPLATE_MODEL
from nnopt_bench.results import measured, ratio, stats
from nnopt_bench.runner import Bench
from nnopt_bench.sections.template import template_run


class PerSampleDataset(torch.utils.data.Dataset):
    """torchvision MNIST-style: uint8 image -> PIL -> ToTensor -> Normalize, one sample at a time."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean: float = 0.1307, std: float = 0.3081) -> None:
        self.images, self.labels, self.mean, self.std = images, labels, mean, std

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        img = Image.fromarray(self.images[i], mode="L")
        t = torch.from_numpy(np.array(img, np.uint8, copy=True)).view(img.size[1], img.size[0], 1)
        t = t.permute(2, 0, 1).contiguous().float().div(255)
        return (t - self.mean) / self.std, int(self.labels[i])


def per_sample_loader(dm: Any, batch_size: int, seed: int) -> torch.utils.data.DataLoader:
    x, y = dm.tensors["train"]
    lo, hi = float(x.min()), float(x.max())
    images = ((x[:, 0] - lo) / max(hi - lo, 1e-12) * 255).round().to(torch.uint8).numpy()
    return torch.utils.data.DataLoader(
        PerSampleDataset(images, y.numpy()),
        batch_size=batch_size,
        shuffle=True,
        num_workers=0,
        generator=torch.Generator().manual_seed(seed),
    )


def data_path(b: Bench) -> dict[str, Any]:
    """The template's model: bare in-memory vs bare per-sample DataLoader vs nnopt (and the template itself,
    live, with --template-dir), alternated."""
    model = [*TEMPLATE_MODEL, "optimizer=adam", "optimizer.lr=0.001", "data.batch_size=128"]
    cfg, dm = b.data_and_net(model)
    runs: dict[str, list] = {"in_memory": [], "per_sample": [], "nnopt": []}
    if b.template_dir is not None:
        runs["template"] = []
    names = list(runs)
    for rep in range(b.mode.reps):
        for which in names[rep % len(names) :] + names[: rep % len(names)]:
            if which == "in_memory":
                runs[which].append(b.bare(cfg, dm, b.mode.epochs))
            elif which == "per_sample":
                runs[which].append(b.bare(cfg, dm, b.mode.epochs, per_sample_loader(dm, dm.batch_size, cfg.seed)))
            elif which == "template":
                runs[which].append(template_run(b, rep))
            else:
                runs[which].append(b.nnopt([*model, *b.limit()], b.mode.epochs)["epochs"])
    t = {k: stats([e["train_s"] for rep in v for e in measured(rep)]) for k, v in runs.items()}
    steps = b.steps_per_epoch(dm)
    out: dict[str, Any] = {
        "model": " ".join(model),
        "steps_per_epoch": steps,
        "bare_in_memory_train_s": t["in_memory"],
        "bare_per_sample_train_s": t["per_sample"],
        "nnopt_train_s": t["nnopt"],
        "speedup_in_memory_vs_per_sample": ratio(t["per_sample"], t["in_memory"]),
        "per_sample_cost_ms_per_step": (t["per_sample"]["median"] - t["in_memory"]["median"]) / steps * 1e3,
        "nnopt_over_bare_ratio": ratio(t["nnopt"], t["in_memory"]),
        "nnopt_overhead_ms_per_step": (t["nnopt"]["median"] - t["in_memory"]["median"]) / steps * 1e3,
        "meets_data_path_target": ratio(t["per_sample"], t["in_memory"]) >= TARGETS["data_path_speedup_min"],
        "whole_epochs": b.mode.max_batches is None,
        "template_external_reference": TEMPLATE_EXTERNAL,
        "template_measured": "template" in t,
    }
    if "template" in t:
        out["template_train_s"] = t["template"]
        out["template_command"] = b.template_command
        out["speedup_vs_template"] = ratio(t["template"], t["nnopt"])
        out["template_over_bare_ratio"] = ratio(t["template"], t["in_memory"])
        out["meets_template_target"] = out["speedup_vs_template"] >= TARGETS["speedup_vs_template_min"]
    return out
