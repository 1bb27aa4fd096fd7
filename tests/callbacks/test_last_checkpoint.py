"""`checkpoints/last.ckpt` is the run's newest state: the last completed epoch (or a newer mid-epoch checkpoint),
also when the monitored metric stops improving (Lightning 2.6 writes its `last.ckpt` only beside a top-k save), and
there is one of it (no `last-v1.ckpt` when mid-epoch checkpoints are on); summary.json's `ckpt/last` names it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nnopt import train
from nnopt.metrics import summary as S
from tests.helpers import make_cfg

#: val/acc never improves after the first epoch: a 1e-12 learning rate keeps the weights of epoch 0
FLAT = ["optimizer=sgd", "optimizer.lr=1e-12", "model.hidden=[16]", "callbacks.early_stopping=null"]
EPOCHS = 4


def _ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.parametrize("every", [0, 5], ids=["epoch_end", "step_checkpoints_too"])
def test_last_ckpt_is_the_last_epoch_when_val_stops_improving(tmp_path: Path, every: int) -> None:
    cfg = make_cfg(
        tmp_path, *FLAT, f"trainer.max_epochs={EPOCHS}", f"callbacks.step_checkpoint.every_n_train_steps={every}"
    )
    summary = train.run(cfg)
    assert summary[S.STATUS] == S.COMPLETED
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch000.ckpt", "last.ckpt"]  # the best and one last
    last = _ckpt(folder / "last.ckpt")
    assert last["epoch"] == EPOCHS - 1  # the last completed epoch, not the last best one (epoch 0)
    assert last["global_step"] == summary[S.TRAIN_STEPS]
    assert _ckpt(folder / "epoch000.ckpt")["epoch"] == 0
    assert Path(summary[S.CKPT_LAST]) == folder / "last.ckpt"
    assert Path(summary[S.CKPT_BEST]) == folder / "epoch000.ckpt"
