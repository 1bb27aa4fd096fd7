"""Each schedule's logged lr follows its closed form per optimizer step; bad schedule values stop the run early."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from nnopt import train
from nnopt.errors import ConfigError
from nnopt.metrics import summary as S
from nnopt.optim.schedules import LR_KEY, MOMENTUM_KEY, CosineSchedule, OneCycleSchedule, StepSchedule
from tests.helpers import make_cfg
from tests.reliability.test_bad_inputs import invoke

EPOCHS, STEPS_PER_EPOCH = 3, 4
TOTAL = EPOCHS * STEPS_PER_EPOCH
#: short CSV-logged runs: every step's lr and grad norm land in metrics.csv
TINY = [
    "trainer.log_every_n_steps=1",
    "callbacks.early_stopping=null",
    f"trainer.max_epochs={EPOCHS}",
    f"trainer.limit_train_batches={STEPS_PER_EPOCH}",
    "trainer.limit_val_batches=2",
    "test=false",
    "callbacks.model_checkpoint=null",
]


def rows(out: Path) -> list[dict[str, str]]:
    with open(out / "csv" / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def by_step(out: Path, key: str = LR_KEY) -> dict[int, float]:
    """n -> `key` after n optimizer (and scheduler) steps: LearningRateMonitor logs at the start of optimizer step
    n + 1, at global step n, the lr and momentum that step uses."""
    return {int(r["step"]): float(r[key]) for r in rows(out) if r.get(key)}


def run_schedule(tmp_path: Path, schedule: str, *extra: str, optimizer: str = "sgd", total: int = TOTAL):
    summary = train.run(make_cfg(tmp_path, f"schedule={schedule}", f"optimizer={optimizer}", *TINY, *extra))
    assert summary[S.STATUS] == S.COMPLETED
    lrs = by_step(tmp_path)
    assert sorted(lrs) == list(range(total))  # logged before every optimizer step
    return lrs


#: every schedule runs with a plain and an adaptive optimizer ("every option composes"), checked against its closed form
OPTIMIZERS = pytest.mark.parametrize(("optimizer", "lr0"), [("sgd", 0.05), ("adam", 1e-3)])  # conf/optimizer/*.yaml
#: the optimizer classes of those options: LearningRateMonitor's key for an optimizer without a scheduler
OPTIMIZER_CLASS = {"sgd": "SGD", "adam": "Adam"}
TESTED = {"constant", "step", "exponential", "cosine", "warmup_cosine", "onecycle", "plateau"}


def test_every_schedule_option_is_tested_here():
    assert {p.stem for p in (Path(__file__).parents[2] / "conf" / "schedule").glob("*.yaml")} == TESTED


@OPTIMIZERS
def test_constant_keeps_the_optimizer_lr(tmp_path, optimizer, lr0):
    summary = train.run(make_cfg(tmp_path, "schedule=constant", f"optimizer={optimizer}", *TINY))
    assert summary[S.STATUS] == S.COMPLETED and summary[S.TRAIN_EPOCHS] == EPOCHS
    # no scheduler: LearningRateMonitor names the optimizer's lr after its class, and it is the configured lr
    assert by_step(tmp_path, f"lr-{OPTIMIZER_CLASS[optimizer]}") == {n: pytest.approx(lr0) for n in range(TOTAL)}
    assert not by_step(tmp_path, LR_KEY)


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
    lrs = run_schedule(
        tmp_path, "warmup_cosine", "schedule.warmup=0.25", "schedule.warmup_start_ratio=0.01", optimizer=optimizer
    )
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
    assert lrs[0] == pytest.approx(10 * lr0 / 25)  # starts at max_lr / div_factor
    assert all(lrs[n] < lrs[n + 1] for n in range(peak))
    assert all(lrs[n] > lrs[n + 1] for n in range(peak, TOTAL - 1))
    assert lrs[TOTAL - 1] < lr0 / 25  # ends below the starting lr (max_lr / div_factor)


def test_onecycle_cycles_momentum_inversely():
    """Unit level: the optimizer's momentum (SGD) / beta1 (Adam) is lowest where the lr peaks."""
    for opt, read in (
        (torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9), "momentum"),
        (torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.1), "betas"),
    ):
        sched = OneCycleSchedule(pct_start=0.25).make(opt, total_steps=20, steps_per_epoch=5)
        seen = []
        for _ in range(19):
            g = opt.param_groups[0]
            seen.append((g["lr"], g[read] if read == "momentum" else g[read][0]))
            opt.step()
            sched.step()
        lr_peak = max(range(len(seen)), key=lambda i: seen[i][0])
        assert min(range(len(seen)), key=lambda i: seen[i][1]) == lr_peak
        assert seen[0][1] == pytest.approx(0.95) and seen[lr_peak][1] == pytest.approx(0.85)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_onecycle_momentum_curve_is_logged(tmp_path, optimizer):
    """LearningRateMonitor(log_momentum=True) logs momentum (SGD) / beta1 (Adam) each step: high when the lr is low."""
    lrs = run_schedule(tmp_path, "onecycle", "schedule.pct_start=0.25", optimizer=optimizer)
    momentum = by_step(tmp_path, MOMENTUM_KEY)
    assert sorted(momentum) == list(range(TOTAL))
    peak = max(lrs, key=lrs.get)
    assert momentum[0] == pytest.approx(0.95) and momentum[peak] == pytest.approx(0.85)  # torch's defaults
    assert min(momentum, key=momentum.get) == peak
    assert all(momentum[n] < momentum[n + 1] for n in range(peak, TOTAL - 1))  # rises back while the lr anneals


@OPTIMIZERS
def test_plateau_reduces_only_at_epoch_ends(tmp_path, optimizer, lr0):
    # val/loss falls while training, so in max mode it never "improves": with patience 0 the lr halves each epoch
    lrs = run_schedule(
        tmp_path,
        "plateau",
        "schedule.monitor=val/loss",
        "schedule.mode=max",
        "schedule.patience=0",
        optimizer=optimizer,
    )
    assert lrs[0] == pytest.approx(lr0)
    steps = sorted(lrs)
    changes = [(b, lrs[b] / lrs[a]) for a, b in zip(steps, steps[1:], strict=False) if lrs[a] != lrs[b]]
    # epoch 0 sets the best value; epoch 1 is worse, so the first step of epoch 2 runs at half the lr
    assert [step for step, _ in changes] == [2 * STEPS_PER_EPOCH]
    for _, ratio in changes:
        assert ratio == pytest.approx(0.5)


def test_plateau_steps_only_on_epochs_that_validate(tmp_path):
    """check_val_every_n_epoch=2: no fresh val/loss on even epochs, so the scheduler steps after epochs 1, 3, 5 only
    (Lightning would otherwise raise on epoch 0, where the monitored value is missing)."""
    epochs = 6
    lrs = run_schedule(
        tmp_path,
        "plateau",
        "schedule.mode=max",
        "schedule.patience=0",
        f"trainer.max_epochs={epochs}",
        "trainer.check_val_every_n_epoch=2",
        total=epochs * STEPS_PER_EPOCH,
    )
    changed = [n for n in range(1, epochs * STEPS_PER_EPOCH) if lrs[n] != lrs[n - 1]]
    # epoch 1's validation sets the best value; epoch 3's is worse, so epoch 4 runs at half the lr
    assert changed == [4 * STEPS_PER_EPOCH] and lrs[changed[0]] == pytest.approx(lrs[0] / 2)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["schedule=warmup_cosine", "schedule.warmup=500"], "schedule.warmup=500 gives 500 warm-up steps"),
        (["schedule=warmup_cosine", "schedule.warmup=-0.1"], "schedule.warmup=-0.1 is out of range"),
        (["schedule=plateau", "schedule.monitor=val/acc5"], "schedule.monitor='val/acc5' is never logged"),
        (["schedule=plateau", "trainer.limit_val_batches=0"], "validation is off"),
        (["schedule=onecycle", "schedule.pct_start=1.5"], "schedule.pct_start=1.5 is out of range"),
        (["schedule=onecycle", "schedule.anneal_strategy=sine"], "schedule.anneal_strategy='sine' is not allowed"),
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
        "callbacks.model_checkpoint.save_top_k=-1"
    ]
    args = ["schedule=onecycle", "optimizer=momentum", *keep_every_epoch]
    train.run(make_cfg(tmp_path / "full", *args))
    full = by_step(tmp_path / "full")
    first = tmp_path / "full" / "checkpoints" / "epoch000.ckpt"
    train.run(make_cfg(tmp_path / "resumed", *args, f"ckpt_path={first}"))
    resumed = by_step(tmp_path / "resumed")
    assert min(resumed) == STEPS_PER_EPOCH
    assert resumed == pytest.approx({n: full[n] for n in resumed}, rel=1e-9)
    momentum = by_step(tmp_path / "full", MOMENTUM_KEY)
    resumed_momentum = by_step(tmp_path / "resumed", MOMENTUM_KEY)
    assert sorted(resumed_momentum) == sorted(resumed)
    assert resumed_momentum == pytest.approx({n: momentum[n] for n in resumed_momentum}, rel=1e-9)


def test_swa_takes_over_from_the_schedule(tmp_path):
    """Lightning's SWA swaps the schedule's scheduler for its SWALR at swa_epoch_start: cosine until then, then the
    lr holds for the annealing epoch and sits at swa_lrs (logged under the optimizer's name: SWALR has none)."""
    epochs, total = 4, 4 * STEPS_PER_EPOCH
    summary = train.run(
        make_cfg(
            tmp_path,
            "schedule=cosine",
            "optimizer=sgd",
            *TINY,
            f"trainer.max_epochs={epochs}",
            "callbacks.swa.enabled=true",
            "callbacks.swa.swa_epoch_start=3",
            "callbacks.swa.swa_lrs=0.01",
            "+callbacks.swa.annealing_epochs=1",
        )
    )
    assert summary[S.STATUS] == S.COMPLETED
    cosine, swa = by_step(tmp_path), by_step(tmp_path, "lr-SGD")
    start = 2 * STEPS_PER_EPOCH  # an integer swa_epoch_start counts from 1: the third epoch
    assert sorted(cosine) == list(range(start)) and sorted(swa) == list(range(start, total))
    for n in range(start):
        assert cosine[n] == pytest.approx(0.05 * (1 + math.cos(math.pi * n / total)) / 2, rel=1e-5), n
    held = 0.05 * (1 + math.cos(math.pi * start / total)) / 2  # where the cosine was when SWA took over
    assert [swa[n] for n in range(start, total)] == pytest.approx([held] * STEPS_PER_EPOCH + [0.01] * STEPS_PER_EPOCH)


def test_lr_range_test_suggestion_is_the_base_of_the_schedule(tmp_path):
    """The LR range test runs after configure_optimizers built the scheduler: the optimizer and scheduler are built
    again from the suggestion, so onecycle starts at suggestion x max_ratio / div_factor and peaks at x max_ratio."""
    finder = ["callbacks.lr_finder.enabled=true", "callbacks.lr_finder.num_training_steps=25"]
    summary = train.run(
        make_cfg(
            tmp_path,
            "schedule=onecycle",
            "schedule.max_ratio=10",
            *finder,
            *TINY,
            "data.batch_size=32",
            "trainer.limit_train_batches=1.0",
            "trainer.max_epochs=1",
        )
    )
    assert summary[S.STATUS] == S.COMPLETED
    suggestion = json.loads((tmp_path / "lr_find.json").read_text())["suggestion"]
    lrs = by_step(tmp_path)
    assert lrs[0] == pytest.approx(suggestion * 10 / 25) and max(lrs.values()) == pytest.approx(suggestion * 10)


def test_lr_monitor_is_quiet_without_a_logger(tmp_path):
    """logger=none: Lightning's LearningRateMonitor would refuse to start; nnopt's just logs nothing."""
    summary = train.run(make_cfg(tmp_path, "schedule=onecycle", "logger=none", *TINY))
    assert summary[S.STATUS] == S.COMPLETED and summary[S.TRAIN_EPOCHS] == EPOCHS
    assert not list(tmp_path.rglob("metrics.csv"))


@pytest.mark.parametrize("schedule", [CosineSchedule(), OneCycleSchedule()])
def test_an_endless_run_is_refused_with_one_line(schedule):
    trainer = SimpleNamespace(estimated_stepping_batches=math.inf, num_training_batches=4, accumulate_grad_batches=1)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ConfigError, match=f"schedule={schedule.option_name} needs a finite training length"):
        schedule.lr_scheduler_config(optimizer, trainer)


def test_step_schedule_refuses_a_loader_without_epochs():
    """An unsized loader with trainer.max_steps: per-step schedules work, `step` (counted in epochs) cannot."""
    trainer = SimpleNamespace(estimated_stepping_batches=20, num_training_batches=math.inf, accumulate_grad_batches=1)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    assert CosineSchedule().lr_scheduler_config(optimizer, trainer)["scheduler"].T_max == 20
    with pytest.raises(ConfigError, match="schedule=step counts epochs, but the training loader has no length"):
        StepSchedule().lr_scheduler_config(optimizer, trainer)


def test_onecycle_with_gradient_accumulation_ends_on_its_last_step(tmp_path):
    """4 batches, accumulating 3: Lightning steps after batch 3 and on the epoch's last batch, 2 steps per epoch;
    OneCycleLR (which raises if stepped past total_steps) is built for exactly those 6 steps and ends on the last."""
    steps = EPOCHS * 2
    lrs = run_schedule(tmp_path, "onecycle", "trainer.accumulate_grad_batches=3", total=steps)
    assert lrs[0] == pytest.approx(0.05 * 10 / 25) and lrs[steps - 1] == min(lrs.values())


@pytest.mark.slow
def test_total_steps_under_ddp_follow_the_per_rank_loader(tmp_path):
    """2 gloo ranks share the global batch, so each takes as many optimizer steps as one process: the cosine
    curve logged by rank 0 is the single-process one (total steps counted per rank, not per global sample)."""
    import subprocess
    import sys

    from tests.helpers import CLI_TIMEOUT, ROOT, cli_env

    run_dir = tmp_path / "ddp"
    (tmp_path / "tmp").mkdir()
    cmd = [
        sys.executable,
        "-m",
        "nnopt.train",
        "trainer=ddp_cpu",
        "schedule=cosine",
        "schedule.min_ratio=0.1",
        "optimizer=sgd",
        *TINY,
        "trainer.limit_train_batches=1.0",
        "trainer.max_epochs=2",
        "callbacks.progress_bar=null",
        "callbacks.model_summary=null",
        f"hydra.run.dir={run_dir}",
        f"paths.log_dir={tmp_path / 'logs'}",
    ]
    proc = subprocess.run(
        cmd, env=cli_env(TMPDIR=str(tmp_path / "tmp")), cwd=ROOT, capture_output=True, text=True, timeout=CLI_TIMEOUT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lrs = by_step(run_dir)
    total = 2 * 10  # 2 epochs x 10 global batches of 128 out of digits' 1257 training images, as in one process
    assert sorted(lrs) == list(range(total))
    for n in (1, 7, 13, 19):
        assert lrs[n] == pytest.approx(0.05 * (0.1 + 0.9 * (1 + math.cos(math.pi * n / total)) / 2), rel=1e-5), n
