"""README "Extending nnopt": each recipe works with only the files it names, kept outside the checkout.

Every test writes a config dir (and, where the recipe needs code, a small package) into tmp_path, puts the package on
sys.path, and trains through nnopt with `hydra.searchpath=[file://<dir>]`, as a user's own project would.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import torch

from nnopt.train import run
from tests.helpers import make_cfg

QUICK = ["logger=none", "callbacks.early_stopping=null", "trainer.max_epochs=1", "model.hidden=[16]"]


def _project(tmp_path: Path, monkeypatch, files: dict[str, str]) -> str:
    """Write `files` (relative path -> text) under tmp_path/project; return the searchpath override."""
    root = tmp_path / "project"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(root))
    return f"hydra.searchpath=[file://{root / 'conf'}]"


def _last_ckpt(out: Path) -> dict:
    return torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)


def test_recipe_optimizer_is_one_config_file(tmp_path: Path, monkeypatch) -> None:
    searchpath = _project(
        tmp_path,
        monkeypatch,
        {
            "conf/optimizer/adamax.yaml": """\
        _target_: torch.optim.Adamax
        _partial_: true
        lr: 0.002
        """
        },
    )
    out = tmp_path / "run"
    summary = run(make_cfg(out, *QUICK, searchpath, "optimizer=adamax"))
    assert summary["status"] == "completed" and summary["choices"]["optimizer"] == "adamax"
    state = _last_ckpt(out)["optimizer_states"][0]["state"]
    assert all("exp_inf" in s for s in state.values())  # Adamax's own state, not Adam's exp_avg_sq


def test_recipe_schedule_is_one_config_file(tmp_path: Path, monkeypatch) -> None:
    searchpath = _project(
        tmp_path,
        monkeypatch,
        {
            "conf/schedule/halving.yaml": """\
        _target_: nnopt.optim.schedules.TorchSchedule
        scheduler:
          _target_: torch.optim.lr_scheduler.StepLR
          _partial_: true
          step_size: 1
          gamma: 0.5
        interval: step
        """
        },
    )
    out = tmp_path / "run"
    summary = run(make_cfg(out, *QUICK, searchpath, "schedule=halving", "optimizer.lr=0.001"))
    steps = summary["train/steps"]
    lr = _last_ckpt(out)["optimizer_states"][0]["param_groups"][0]["lr"]
    assert steps > 1 and abs(lr - 0.001 * 0.5**steps) < 1e-12


def test_recipe_compression_method_is_a_callback_and_a_config(tmp_path: Path, monkeypatch) -> None:
    searchpath = _project(
        tmp_path,
        monkeypatch,
        {
            "clampproject/clamp.py": """\
            import pytorch_lightning as pl
            import torch
            from typing_extensions import override


            class WeightClamp(pl.Callback):
                \"\"\"Keep every weight in [-limit, limit] after each optimizer step.\"\"\"

                def __init__(self, limit: float) -> None:
                    self.limit = limit

                @override
                @torch.no_grad()
                def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                    for p in pl_module.net.parameters():
                        p.clamp_(-self.limit, self.limit)
            """,
            "clampproject/__init__.py": "",
            "conf/compression/clamp.yaml": """\
            name: clamp
            _target_: clampproject.clamp.WeightClamp
            limit: 0.01
            """,
        },
    )
    out = tmp_path / "run"
    summary = run(make_cfg(out, *QUICK, searchpath, "compression=clamp"))
    weights = [t for k, t in _last_ckpt(out)["state_dict"].items() if k.startswith("net.")]
    assert summary["status"] == "completed"
    assert max(float(t.abs().max()) for t in weights) <= 0.01 + 1e-7


def test_recipe_data_set_is_a_load_arrays_class_and_a_config(tmp_path: Path, monkeypatch) -> None:
    searchpath = _project(
        tmp_path,
        monkeypatch,
        {
            "stripesproject/__init__.py": "",
            "stripesproject/stripes.py": """\
            import numpy as np

            from nnopt.data.base import Arrays, InMemoryDataModule


            class Stripes(InMemoryDataModule):
                \"\"\"Horizontal vs vertical stripes, 8x8.\"\"\"

                def load_arrays(self) -> Arrays:
                    rng = np.random.default_rng(0)
                    y = rng.integers(0, 2, 400)
                    x = np.zeros((400, 1, 8, 8), np.float32)
                    x[y == 0, :, ::2, :] = 1.0
                    x[y == 1, :, :, ::2] = 1.0
                    return Arrays(x + rng.normal(0, 0.1, x.shape).astype(np.float32), y)
            """,
            "conf/data/stripes.yaml": """\
            _target_: stripesproject.stripes.Stripes
            name: stripes
            num_classes: 2
            batch_size: 32
            """,
        },
    )
    summary = run(make_cfg(tmp_path / "run", *QUICK, searchpath, "data=stripes", "trainer.max_epochs=3"))
    assert summary["choices"]["data"] == "stripes" and summary["model/params"] == 8 * 8 * 16 + 16 + 16 * 2 + 2
    assert summary["test/acc"] > 0.9


def test_recipe_summary_key_is_a_logged_test_metric(tmp_path: Path, monkeypatch) -> None:
    searchpath = _project(
        tmp_path,
        monkeypatch,
        {
            "marginproject/__init__.py": "",
            "marginproject/margin.py": """\
            import pytorch_lightning as pl
            import torch
            from typing_extensions import override


            class MeanMargin(pl.Callback):
                \"\"\"test/margin: mean gap between the top two logits on the test split.\"\"\"

                def __init__(self) -> None:
                    self.total, self.count = 0.0, 0

                @override
                @torch.no_grad()
                def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
                    top2 = pl_module(batch[0]).topk(2, dim=1).values
                    self.total += float((top2[:, 0] - top2[:, 1]).sum())
                    self.count += len(top2)

                @override
                def on_test_epoch_end(self, trainer, pl_module) -> None:
                    pl_module.log("test/margin", self.total / self.count)
            """,
            "conf/compression/margin.yaml": """\
            name: margin
            _target_: marginproject.margin.MeanMargin
            """,
        },
    )
    summary = run(make_cfg(tmp_path / "run", *QUICK, searchpath, "compression=margin"))
    assert summary["test/margin"] > 0
