"""nnopt.checkpoint: resume resolution returns a value, and a run reads its checkpoint file once."""

from __future__ import annotations

from pathlib import Path

import torch

from nnopt import checkpoint
from nnopt.train import run
from tests.helpers import make_cfg

QUICK = ["logger=none", "callbacks.early_stopping=null", "model.hidden=[32]"]


def test_resolve_resume_returns_a_path_and_leaves_the_config_alone(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, "resume=true")
    assert checkpoint.resolve_resume(cfg) is None  # nothing to resume yet
    last = tmp_path / "checkpoints" / checkpoint.LAST_FILE
    last.parent.mkdir(parents=True)
    last.write_bytes(b"x")
    assert checkpoint.resolve_resume(cfg) == last
    assert cfg.ckpt_path is None
    explicit = make_cfg(tmp_path, f"ckpt_path={tmp_path / 'other.ckpt'}")
    assert checkpoint.resolve_resume(explicit) == tmp_path / "other.ckpt"  # no resume=true: the file given
    requeued = tmp_path / "hpc_ckpt_1.ckpt"
    requeued.write_bytes(b"x")
    assert checkpoint.resolve_resume(make_cfg(tmp_path), under_slurm=True) == requeued
    assert checkpoint.resolve_resume(make_cfg(tmp_path), under_slurm=False) is None


def test_net_state_strips_the_module_prefix() -> None:
    state = {"net.0.weight": torch.ones(1), "net.0.bias": torch.zeros(1), "val_acc_best.max_val": torch.ones(())}
    assert sorted(checkpoint.net_state(state)) == ["0.bias", "0.weight"]


def test_a_resumed_qat_run_reads_its_checkpoint_once(tmp_path: Path, monkeypatch) -> None:
    first = tmp_path / "first"
    run(make_cfg(first, *QUICK, "compression=qat", "compression.start_epoch=0", "trainer.max_epochs=1"))
    last = first / "checkpoints" / checkpoint.LAST_FILE
    reads: list[str] = []
    real_load = torch.load

    def counting_load(f, *args, **kwargs):
        if Path(str(f)) == last:
            reads.append(str(f))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    checkpoint.forget()
    summary = run(
        make_cfg(
            tmp_path / "second",
            *QUICK,
            "compression=qat",
            "compression.start_epoch=0",
            "trainer.max_epochs=2",
            f"ckpt_path={last}",
        )
    )
    assert summary["status"] == "completed" and summary["train/epochs"] == 2
    assert len(reads) == 1
