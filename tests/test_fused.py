"""`trainer.fused_steps`: K optimizer steps per training_step give the same weights as one step per training_step."""

from __future__ import annotations

import json
import sys

import pytest
import pytorch_lightning as pl
import torch

from nnopt import build, fused
from nnopt.errors import ConfigError
from tests.helpers import make_cfg

#: the same seed must give the same final weights with K=1 and K=16
CASES = {
    "sgd_onecycle_clip": ["optimizer=sgd", "schedule=onecycle", "trainer.gradient_clip_val=0.5"],
    "adam_l1": ["optimizer=adam", "l1=0.0001"],
    "prune_qat": ["compression=prune_qat", "compression.sparsity=0.9", "trainer.max_epochs=3"],
    "accumulation_clip_callback": [
        "optimizer=momentum",
        "trainer.accumulate_grad_batches=3",
        "callbacks.grad_clip.enabled=true",
        "callbacks.grad_clip.max_norm=0.5",
    ],
    "ema_step_schedule": ["schedule=step", "callbacks.ema.enabled=true", "callbacks.ema.decay=0.9"],
    "bf16_mixed": ["trainer.precision=bf16-mixed", "schedule=cosine"],  # through manual_backward (precision plugin)
}


def fit(tmp_path, k: int, *overrides: str) -> tuple[dict[str, torch.Tensor], pl.Trainer, pl.LightningModule]:
    """Build and fit exactly as `nnopt.train.run` does; returns the final float weights, the trainer, the module."""
    cfg = make_cfg(tmp_path / f"k{k}", *overrides, f"trainer.fused_steps={k}", "trainer.threads=1")
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = build.build_datamodule(cfg)
    lit = build.build_module(cfg, dm)
    trainer = build.build_trainer(cfg, build.build_callbacks(cfg), [])
    lit.train()
    trainer.fit(lit, datamodule=dm)
    weights = {k: v.detach().float().clone() for k, v in lit.net.state_dict().items() if v.is_floating_point()}
    return weights, trainer, lit


@pytest.mark.parametrize("case", list(CASES))
def test_fused_steps_give_the_same_weights(tmp_path, case):
    plain, t1, m1 = fit(tmp_path, 1, *CASES[case])
    fused16, t16, m16 = fit(tmp_path, 16, *CASES[case])
    assert m1.automatic_optimization and not m16.automatic_optimization
    assert fused.plain_loop(m16) is (case != "bf16_mixed")  # loss.backward() only where nothing else is owed
    assert t16.num_training_batches < t1.num_training_batches  # it did fuse: fewer training_steps
    assert t16.global_step == t1.global_step  # the same number of optimizer steps
    assert plain.keys() == fused16.keys() and plain
    for name in plain:
        torch.testing.assert_close(fused16[name], plain[name], atol=1e-6, rtol=0, msg=name)
    lr1 = [g["lr"] for g in t1.optimizers[0].param_groups]
    lr16 = [g["lr"] for g in t16.optimizers[0].param_groups]
    assert lr16 == pytest.approx(lr1, abs=1e-9)  # the schedule stepped per optimizer step


def test_grouped_batches_keep_order_limit_and_resume_state():
    from nnopt.data.batches import DeferredBatch, TensorBatches

    x, y = torch.arange(20.0).view(20, 1), torch.arange(20)
    inner = TensorBatches(x, y, batch_size=2)
    groups = list(fused.GroupedBatches(inner, 4, limit=9))
    assert [len(g) for g in groups] == [4, 4, 1] and len(fused.GroupedBatches(inner, 4, limit=9)) == 3
    assert all(isinstance(b, DeferredBatch) for g in groups for b in g)  # gathered by the step, not the loader
    assert torch.equal(torch.cat([fused.gathered(b)[0] for g in groups for b in g]), x[:18])
    assert fused.batch_samples(groups[0]) == 8 and fused.batch_samples(groups[0][0]) == 2
    assert fused.batch_samples(groups[0][0].gather()) == 2
    assert fused.GroupedBatches(inner, 4).state_dict() == inner.state_dict()


def test_deferred_batches_are_the_plain_batches_and_follow_lightnings_transfer():
    """Shuffled deferred batches gather exactly what iteration yields; Lightning's batch transfer (`.to`) decides
    the device the batch is gathered onto."""
    from pytorch_lightning.utilities import move_data_to_device

    from nnopt.data.batches import TensorBatches

    x, y = torch.randn(23, 3), torch.arange(23)
    batches = TensorBatches(x, y, batch_size=5, shuffle=True, seed=3)
    deferred = list(batches.deferred())
    plain = list(batches)
    assert len(deferred) == len(plain) == 5
    for d, (px, py) in zip(deferred, plain, strict=True):
        gx, gy = d.gather()
        assert torch.equal(gx, px) and torch.equal(gy, py)
    moved = move_data_to_device(fused.BatchGroup(deferred), torch.device("meta"))
    assert isinstance(moved, fused.BatchGroup)
    assert [b.gather()[0].device.type for b in moved] == ["meta"] * 5
    assert deferred[0].gather()[0].device.type == "cpu"  # the original is untouched


def test_calibration_reads_plain_batches_under_fused_steps(tmp_path):
    """Static PTQ calibrates on training batches: with fused steps it gets the same single batches (the int8 model
    scores exactly as without fusion)."""
    from nnopt import train
    from nnopt.metrics import summary as S

    got = {}
    for k in (1, 4):
        out = tmp_path / f"k{k}"
        summary = train.run(make_cfg(out, "compression=ptq_static", f"trainer.fused_steps={k}", "trainer.threads=1"))
        assert summary[S.STATUS] == S.COMPLETED, summary.get(S.ERROR)
        got[k] = summary[S.TEST_ACC]
    assert got[4] == pytest.approx(got[1], abs=1e-9)


@pytest.mark.parametrize("bad", [0, -2, "auto", 1.5, True])
def test_bad_fused_steps_is_one_line_config_error(bad):
    with pytest.raises(ConfigError, match=r"^trainer\.fused_steps=.* allowed: an integer >= 1"):
        fused.from_trainer({"fused_steps": bad})


def test_fused_divergence_names_the_exact_step(tmp_path):
    from nnopt import train
    from nnopt.callbacks.divergence import TrainingDiverged

    cfg = make_cfg(tmp_path, "optimizer=sgd", "optimizer.lr=1e8", "trainer.max_epochs=1", "trainer.fused_steps=8")
    with pytest.raises(TrainingDiverged, match=r"at step (\d+)$") as info:
        train.run(cfg)
    plain = make_cfg(
        tmp_path / "plain",
        "optimizer=sgd",
        "optimizer.lr=1e8",
        "trainer.max_epochs=1",
        "callbacks.divergence.check_every_n_steps=1",
    )
    with pytest.raises(TrainingDiverged) as ref:
        train.run(plain)
    assert info.value.step == ref.value.step  # the first non-finite loss, not the end of the group


def test_fused_steps_under_ddp_match_one_unfused_process(tmp_path):
    """Two gloo ranks with K=16 fused steps (2 groups per epoch: 16 + 4 steps) end where one plain process ends."""
    from nnopt import train
    from nnopt.metrics import summary as S
    from tests.distributed.test_ddp import RUN, env_for, finish, max_diff, start, weights

    # 20 global batches of 32 per epoch (16 samples per rank): more than one group of 16 steps
    run = [a for a in RUN if not a.startswith("trainer.limit_train_batches=")]
    run += ["trainer.limit_train_batches=20", "data.batch_size=32"]
    one = tmp_path / "one"
    assert train.run(make_cfg(one, *run, fast=False))[S.STATUS] == S.COMPLETED
    run_dir, log = tmp_path / "ddp", tmp_path / "ddp.out"
    cmd = [sys.executable, "-m", "nnopt.train", *run, "trainer=ddp_cpu", "trainer.fused_steps=16"]
    cmd += [f"hydra.run.dir={run_dir}", f"paths.log_dir={tmp_path / 'logs'}"]
    finish([start(cmd, env_for(tmp_path), log)], [log])
    assert max_diff(weights(one), weights(run_dir)) < 1e-5
    got = json.loads((run_dir / S.FILENAME).read_text())
    assert got[S.TRAIN_WORLD_SIZE] == 2 and got[S.STATUS] == S.COMPLETED
    assert got[S.TRAIN_STEPS] == 40  # optimizer steps, not training_steps
    assert got[S.TEST_ACC] == pytest.approx(json.loads((one / S.FILENAME).read_text())[S.TEST_ACC], abs=1e-6)


class _Kill(pl.Callback):
    """Dies right after the second training_step (after StepCheckpoint wrote last.ckpt), like a kill -9."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == 1:
            raise RuntimeError("killed")


def test_fused_mid_epoch_checkpoint_resumes_exactly(tmp_path):
    """A StepCheckpoint after 2 groups (8 of 10 steps of epoch 0), a kill, a resume in a fresh trainer: the same
    weights as one uninterrupted fused run, and as a plain one."""
    whole, _, _ = fit(tmp_path / "whole", 4, "optimizer=adam", "callbacks.early_stopping=null")
    plain, _, _ = fit(tmp_path / "plain", 1, "optimizer=adam", "callbacks.early_stopping=null")
    cfg = make_cfg(
        tmp_path / "cut",
        "optimizer=adam",
        "callbacks.early_stopping=null",
        "trainer.fused_steps=4",
        "trainer.threads=1",
        "callbacks.step_checkpoint.every_n_train_steps=4",
    )
    ckpt = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = build.build_datamodule(cfg)
    lit = build.build_module(cfg, dm)
    first = build.build_trainer(cfg, [*build.build_callbacks(cfg), _Kill()], [])
    lit.train()
    with pytest.raises(RuntimeError, match="killed"):
        first.fit(lit, datamodule=dm)
    assert torch.load(ckpt, weights_only=True)["global_step"] == 8

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm2 = build.build_datamodule(cfg)
    lit2 = build.build_module(cfg, dm2)
    second = build.build_trainer(cfg, build.build_callbacks(cfg), [])
    lit2.train()
    second.fit(lit2, datamodule=dm2, ckpt_path=str(ckpt))
    resumed = {k: v.detach().float() for k, v in lit2.net.state_dict().items() if v.is_floating_point()}
    for name in whole:
        torch.testing.assert_close(resumed[name], whole[name], atol=1e-6, rtol=0, msg=name)
        torch.testing.assert_close(resumed[name], plain[name], atol=1e-6, rtol=0, msg=name)


def _logged(run_dir) -> dict[str, list[tuple[int, float]]]:
    import csv

    rows = list(csv.DictReader((next(run_dir.rglob("metrics.csv"))).open()))
    out: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        for key, value in row.items():
            if key not in ("step", "epoch") and value not in ("", None):
                out.setdefault(key, []).append((int(row["step"]), round(float(value), 5)))
    return out


def test_fused_steps_log_the_same_steps_and_values(tmp_path):
    """Per-step values every log_every_n_steps at the same step numbers, epoch metrics on the same step axis."""
    from nnopt import train

    runs = {}
    for k in (1, 4):
        out = tmp_path / f"k{k}"
        train.run(
            make_cfg(out, "trainer.log_every_n_steps=3", "l1=0.0001", f"trainer.fused_steps={k}", "trainer.threads=1")
        )
        runs[k] = _logged(out)
    assert runs[1]["train/loss"] and runs[1]["train/loss_l1"]  # the logging happened at all
    for key in ("train/loss", "train/loss_l1", "val/acc", "train/acc"):
        assert runs[4][key] == runs[1][key], key


@pytest.mark.parametrize("callback", list(fused.UNSUPPORTED_CALLBACKS))
def test_fused_steps_refuse_callbacks_they_do_not_support(tmp_path, callback):
    cfg = make_cfg(tmp_path, "trainer.fused_steps=4", f"callbacks.{callback}.enabled=true")
    with pytest.raises(ConfigError, match=rf"^trainer\.fused_steps=4 .*callbacks\.{callback} is enabled"):
        build.build_datamodule(cfg)
    build.build_datamodule(make_cfg(tmp_path, "trainer.fused_steps=1", f"callbacks.{callback}.enabled=true"))


@pytest.mark.parametrize("batches", [1, 15, 16, 17, 40])
def test_train_accuracy_scored_in_folds_equals_the_per_batch_count(batches):
    """RunningHits scores up to 16 batches at once: the epoch's fraction is the plain count, folds or not."""
    from nnopt.tasks.classification import RunningHits

    gen = torch.Generator().manual_seed(batches)
    hits, correct, seen = RunningHits(), 0, 0
    for i in range(batches):
        n = 7 + i % 5  # uneven batch sizes
        outputs, y = torch.randn(n, 4, generator=gen), torch.randint(0, 4, (n,), generator=gen)
        hits.update(outputs, y)
        correct += int((outputs.argmax(1) == y).sum())
        seen += n
    assert hits.seen == seen
    assert float(hits.fraction()) == pytest.approx(correct / seen, abs=1e-7)
    hits.reset()
    assert hits.seen == 0 and hits.pending == []


def test_train_accuracy_folds_early_when_outputs_are_large(monkeypatch):
    from nnopt.tasks.classification import RunningHits

    monkeypatch.setattr(RunningHits, "MAX_PENDING", 100)
    hits = RunningHits()
    hits.update(torch.eye(10), torch.arange(10))  # 100 elements: folded at once
    assert hits.pending == [] and float(hits.fraction()) == 1.0
