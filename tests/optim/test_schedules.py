"""Each schedule's logged lr follows its closed form per optimizer step; bad schedule values stop the run early."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from nnopt import train
from nnopt.metrics import summary as S
from tests.helpers import make_cfg
from tests.reliability.test_bad_inputs import invoke

EPOCHS, STEPS_PER_EPOCH = 3, 4
TOTAL = EPOCHS * STEPS_PER_EPOCH
#: short CSV-logged runs: every step's lr and grad norm land in metrics.csv
TINY = ["trainer.log_every_n_steps=1", "callbacks.early_stopping=null", f"trainer.max_epochs={EPOCHS}",
        f"trainer.limit_train_batches={STEPS_PER_EPOCH}", "trainer.limit_val_batches=2", "test=false",
        "callbacks.model_checkpoint=null"]  # fmt: skip


def rows(out: Path) -> list[dict[str, str]]:
    with open(out / "csv" / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def lr_by_step(out: Path) -> dict[int, float]:
    """n -> lr after n scheduler steps (the row logged at global step n - 1 holds the lr of optimizer step n + 1)."""
    return {int(r["step"]) + 1: float(r["train/lr"]) for r in rows(out) if r.get("train/lr")}


def run_schedule(tmp_path: Path, schedule: str, *extra: str, optimizer: str = "sgd") -> dict[int, float]:
    summary = train.run(make_cfg(tmp_path, f"schedule={schedule}", f"optimizer={optimizer}", *TINY, *extra))
    assert summary[S.STATUS] == S.COMPLETED
    lrs = lr_by_step(tmp_path)
    assert sorted(lrs) == list(range(1, TOTAL + 1))  # logged every optimizer step
    return lrs


#: every schedule runs with a plain and an adaptive optimizer ("every option composes"), checked against its closed form
OPTIMIZERS = pytest.mark.parametrize(("optimizer", "lr0"), [("sgd", 0.05), ("adam", 1e-3)])  # conf/optimizer/*.yaml
TESTED = {"constant", "step", "exponential", "cosine", "warmup_cosine", "onecycle", "plateau"}


def test_every_schedule_option_is_tested_here():
    assert {p.stem for p in (Path(__file__).parents[2] / "conf" / "schedule").glob("*.yaml")} == TESTED


@OPTIMIZERS
def test_constant_keeps_the_optimizer_lr(tmp_path, optimizer, lr0):
    summary = train.run(make_cfg(tmp_path, "schedule=constant", f"optimizer={optimizer}", *TINY))
    assert summary[S.STATUS] == S.COMPLETED and summary[S.TRAIN_EPOCHS] == EPOCHS
    assert not lr_by_step(tmp_path)  # no schedule callback, nothing touches the lr


@OPTIMIZERS
def test_step_halves_at_epoch_boundaries(tmp_path, optimizer, lr0):
    lrs = run_schedule(tmp_path, "step", "schedule.every_epochs=1", "schedule.gamma=0.5", optimizer=optimizer)
    for n in (1, 3, 4, 5, 8, 11):
        assert lrs[n] == pytest.approx(lr0 * 0.5 ** (n // STEPS_PER_EPOCH)), n


@OPTIMIZERS
def test_exponential_decays_to_final_ratio(tmp_path, optimizer, lr0):
    lrs = run_schedule(tmp_path, "exponential", "schedule.final_ratio=0.01", optimizer=optimizer)
    for n in (1, 4, 6, 11):
        assert lrs[n] == pytest.approx(lr0 * 0.01 ** (n / TOTAL), rel=1e-5), n


@OPTIMIZERS
def test_cosine_ends_at_its_minimum(tmp_path, optimizer, lr0):
    lrs = run_schedule(tmp_path, "cosine", "schedule.min_ratio=0.1", optimizer=optimizer)
    for n in (1, 3, 6, 9, 11):
        assert lrs[n] == pytest.approx(lr0 * (0.1 + 0.9 * (1 + math.cos(math.pi * n / TOTAL)) / 2), rel=1e-5), n
    # the last optimizer step uses the lr one step before the end: within 2 % of lr0 above the floor
    assert lrs[TOTAL - 1] == min(lrs.values()) and lrs[TOTAL - 1] - 0.1 * lr0 < 0.02 * lr0


@OPTIMIZERS
def test_warmup_rises_linearly_then_cosine(tmp_path, optimizer, lr0):
    lrs = run_schedule(tmp_path, "warmup_cosine", "schedule.warmup=0.25", "schedule.warmup_start_ratio=0.01",
                       optimizer=optimizer)  # fmt: skip
    warm = TOTAL // 4
    for n in range(1, warm):
        assert lrs[n] == pytest.approx(lr0 * (0.01 + 0.99 * n / warm), rel=1e-5), n
    for n in range(warm, TOTAL):
        assert lrs[n] == pytest.approx(lr0 * (1 + math.cos(math.pi * (n - warm) / (TOTAL - warm))) / 2, rel=1e-4), n


@OPTIMIZERS
def test_onecycle_rises_to_peak_at_pct_start_then_falls(tmp_path, optimizer, lr0):
    lrs = run_schedule(tmp_path, "onecycle", "schedule.max_ratio=10", "schedule.pct_start=0.25", optimizer=optimizer)
    peak = max(lrs, key=lrs.get)
    assert peak == round(0.25 * TOTAL) - 1  # torch's OneCycleLR: phase 1 ends at step pct_start * total - 1
    assert lrs[peak] == pytest.approx(10 * lr0, rel=1e-6)
    steps = range(1, TOTAL)  # lrs[TOTAL] repeats lrs[TOTAL - 1]: no scheduler step after the last optimizer step
    assert all(lrs[n] < lrs[n + 1] for n in steps[:-1] if n + 1 <= peak)
    assert all(lrs[n] > lrs[n + 1] for n in steps[:-1] if n >= peak)
    assert lrs[TOTAL - 1] < lr0 / 25  # ends below the starting lr (max_lr / div_factor)


def test_onecycle_cycles_momentum_inversely():
    """Unit level: the optimizer's momentum (SGD) / beta1 (Adam) is lowest where the lr peaks."""
    import torch

    from nnopt.optim.schedules import OneCycleSchedule

    for opt, read in ((torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9), "momentum"),
                      (torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.1), "betas")):  # fmt: skip
        schedule = OneCycleSchedule(pct_start=0.25)
        schedule.base_lrs = [0.1]
        sched = schedule.make(opt, total_steps=20, steps_per_epoch=5)
        seen = []
        for _ in range(19):
            g = opt.param_groups[0]
            seen.append((g["lr"], g[read] if read == "momentum" else g[read][0]))
            opt.step()
            sched.step()
        lr_peak = max(range(len(seen)), key=lambda i: seen[i][0])
        assert min(range(len(seen)), key=lambda i: seen[i][1]) == lr_peak
        assert seen[0][1] == pytest.approx(0.95) and seen[lr_peak][1] == pytest.approx(0.85)


@OPTIMIZERS
def test_plateau_reduces_only_at_epoch_ends(tmp_path, optimizer, lr0):
    # val/loss falls while training, so in max mode it never "improves": with patience 0 the lr halves each epoch
    lrs = run_schedule(tmp_path, "plateau", "schedule.monitor=val/loss", "schedule.mode=max", "schedule.patience=0",
                       optimizer=optimizer)  # fmt: skip
    assert lrs[1] == pytest.approx(lr0)
    steps = sorted(lrs)
    changes = [(a, lrs[b] / lrs[a]) for a, b in zip(steps, steps[1:], strict=False) if lrs[a] != lrs[b]]
    assert changes
    for step, ratio in changes:
        assert step % STEPS_PER_EPOCH == 0 and ratio == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["schedule=warmup_cosine", "schedule.warmup=500"], "schedule.warmup=500 gives 500 warm-up steps"),
        (["schedule=warmup_cosine", "schedule.warmup=-0.1"], "schedule.warmup=-0.1 is out of range"),
        (["schedule=plateau", "schedule.monitor=val/acc5"], "schedule.monitor='val/acc5' is never logged"),
        (["schedule=plateau", "trainer.limit_val_batches=0"], "validation is off"),
        (["schedule=onecycle", "schedule.pct_start=1.5"], "schedule.pct_start=1.5 is out of range"),
        (["schedule=cosine", "callbacks.swa.enabled=true"], "cannot be combined with callbacks.swa"),
        (["schedule=nope"], "unknown schedule option 'nope'"),
        (["callbacks.grad_clip.enabled=true", "callbacks.grad_clip.max_norm=0"], "max_norm=0 is out of range"),
    ],
)
def test_bad_schedule_or_clip_values_exit_2_with_one_line(tmp_path, overrides, match, monkeypatch, capfd):
    code, err = invoke(train.main, [*TINY, *overrides, f"paths.log_dir={tmp_path}"], monkeypatch, capfd)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and lines[-1].startswith("nnopt: error: ") and match in lines[-1], err[-1500:]
    assert "Traceback" not in err
    logged = [r for p in tmp_path.rglob("metrics.csv") for r in csv.DictReader(p.open())]
    assert not any(r.get("train/loss") for r in logged) and not list(tmp_path.rglob("*.ckpt"))  # no step ran


def test_resume_continues_the_same_lr_curve(tmp_path):
    """The scheduler state travels in the checkpoint: resuming from epoch 1 logs the same lrs as the unbroken run."""
    keep_every_epoch = [a for a in TINY if a != "callbacks.model_checkpoint=null"] + [
        "callbacks.model_checkpoint.save_top_k=-1"]  # fmt: skip
    args = ["schedule=onecycle", "optimizer=momentum", *keep_every_epoch]
    train.run(make_cfg(tmp_path / "full", *args))
    full = lr_by_step(tmp_path / "full")
    first = tmp_path / "full" / "checkpoints" / "epoch000.ckpt"
    train.run(make_cfg(tmp_path / "resumed", *args, f"ckpt_path={first}"))
    resumed = lr_by_step(tmp_path / "resumed")
    assert min(resumed) == STEPS_PER_EPOCH + 1
    assert resumed == pytest.approx({n: full[n] for n in resumed}, rel=1e-9)


@pytest.mark.slow
def test_total_steps_under_ddp_follow_the_per_rank_loader(tmp_path):
    """2 gloo ranks share the global batch, so each takes as many optimizer steps as one process: the cosine
    curve logged by rank 0 is the single-process one (total steps counted per rank, not per global sample)."""
    import subprocess
    import sys

    from tests.helpers import ROOT, cli_env

    run_dir = tmp_path / "ddp"
    (tmp_path / "tmp").mkdir()
    cmd = [sys.executable, "-m", "nnopt.train", "trainer=ddp_cpu", "schedule=cosine", "schedule.min_ratio=0.1",
           "optimizer=sgd", *TINY, "trainer.limit_train_batches=1.0", "trainer.max_epochs=2",
           "callbacks.progress_bar=null", "callbacks.model_summary=null",
           f"hydra.run.dir={run_dir}", f"paths.log_dir={tmp_path / 'logs'}"]  # fmt: skip
    proc = subprocess.run(cmd, env=cli_env(TMPDIR=str(tmp_path / "tmp")), cwd=ROOT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lrs = lr_by_step(run_dir)
    total = 2 * 10  # 2 epochs x 10 global batches of 128 out of digits' 1257 training images, as in one process
    assert sorted(lrs) == list(range(1, total + 1))
    for n in (1, 7, 13, 19):
        assert lrs[n] == pytest.approx(0.05 * (0.1 + 0.9 * (1 + math.cos(math.pi * n / total)) / 2), rel=1e-5), n
