"""The private names nnopt relies on still exist (an upgrade fails here, by name), and only _compat uses them."""

from __future__ import annotations

import importlib
import inspect
import re
import signal
import sys
from pathlib import Path

import optuna
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BatchSizeFinder, ModelCheckpoint, RichModelSummary, RichProgressBar
from pytorch_lightning.callbacks.progress.rich_progress import CustomBarColumn, ProcessingSpeedColumn
from pytorch_lightning.utilities.exceptions import SIGTERMException

from nnopt import _compat, interrupt
from nnopt.callbacks.terminal import ModelTable
from nnopt.tasks.classification import Classifier

SRC = Path(__file__).resolve().parents[1] / "src"


def _owner(dotted: str):
    module, _, attr = dotted.rpartition(".")
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError:
        return getattr(importlib.import_module(module), attr)


@pytest.mark.parametrize(("owner", "name"), list(_compat.PRIVATE_NAMES))
def test_private_name_exists_on_its_owner(owner: str, name: str) -> None:
    obj = _owner(owner)
    if isinstance(obj, type) and name not in dir(obj):  # instance attributes: set in __init__
        init = getattr(obj, "__init__", None)
        source = Path(importlib.import_module(obj.__module__).__file__).read_text()
        assert init is not None and f"self.{name}" in source, f"{owner}.{name} is gone"
    else:
        assert hasattr(obj, name), f"{owner}.{name} is gone"


def test_optuna_private_lookups_work_on_a_real_study() -> None:
    study = optuna.create_study()
    trial = study.ask()
    assert _compat.running_trial(study, trial.number).number == trial.number
    assert _compat.trial_state(study, trial) == optuna.trial.TrialState.RUNNING
    _compat.set_trial_user_attr(study, trial, "interrupted", True)
    assert study.trials[0].user_attrs == {"interrupted": True}


def test_lightning_private_lookups_work() -> None:
    module = Classifier(torch.nn.Linear(4, 3), torch.optim.SGD, num_classes=3)
    assert _compat.attached_trainer(module) is None

    class Trainer:  # the attributes restart_best_tracking resets, as a real ModelCheckpoint has them
        checkpoint_callbacks = [ModelCheckpoint(monitor="val/acc", mode="max")]

    cb = Trainer.checkpoint_callbacks[0]
    cb.best_model_score, cb.best_model_path, cb.best_k_models = torch.tensor(0.9), "x.ckpt", {"x.ckpt": 0.9}
    _compat.restart_best_tracking(Trainer)
    assert (cb.best_model_score, cb.best_model_path, cb.best_k_models) == (None, "", {})
    assert cb.kth_value == -torch.inf
    for attr in ("best_k_models", "kth_best_model_path", "best_model_score", "best_model_path", "kth_value"):
        assert hasattr(ModelCheckpoint(monitor="x"), attr)


class _Tiny(pl.LightningModule):
    """A module a real Trainer can fit in a fraction of a second; `batch_size` is what BatchSizeFinder scales."""

    def __init__(self) -> None:
        super().__init__()
        self.net, self.batch_size = torch.nn.Linear(4, 2), 2
        self.example_input_array = torch.zeros(1, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, _idx):
        return self(batch[0]).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        data = torch.utils.data.TensorDataset(torch.randn(256, 4))
        return torch.utils.data.DataLoader(data, batch_size=self.batch_size)


def _trainer(tmp_path: Path, callbacks: list, **kwargs) -> pl.Trainer:
    defaults = dict(max_epochs=1, limit_train_batches=1, enable_progress_bar=False, enable_model_summary=False)
    return pl.Trainer(
        default_root_dir=tmp_path, accelerator="cpu", logger=False, enable_checkpointing=False, callbacks=callbacks,
        **(defaults | kwargs),
    )  # fmt: skip


class _StartFrom(BatchSizeFinder):
    def __init__(self, start: int) -> None:
        super().__init__(mode="power", steps_per_trial=1, max_trials=2, init_val=2)
        self.start = start

    def on_fit_start(self, trainer, pl_module) -> None:
        _compat.set_batch_size_finder_start(self, self.start)
        super().on_fit_start(trainer, pl_module)


def test_batch_size_finder_searches_from_the_start_set_at_fit_start(tmp_path: Path) -> None:
    finder = _StartFrom(16)
    _trainer(tmp_path, [finder]).fit(_Tiny())
    assert finder.optimal_batch_size == 32  # 16 and 32 tried (from init_val=2: 2 and 4)


class _StopAfterEachEpoch(pl.Callback):
    def __init__(self, min_epochs: int | None) -> None:
        self.min_epochs = min_epochs

    def on_train_start(self, trainer, pl_module) -> None:
        if self.min_epochs:
            _compat.raise_min_epochs(trainer, self.min_epochs)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        trainer.should_stop = True  # what early stopping does


@pytest.mark.parametrize(("min_epochs", "trained"), [(None, 1), (3, 3)])
def test_raised_min_epochs_overrule_a_stop_during_the_run(tmp_path: Path, min_epochs, trained: int) -> None:
    trainer = _trainer(tmp_path, [_StopAfterEachEpoch(min_epochs)], max_epochs=5)
    trainer.fit(_Tiny())
    assert trainer.current_epoch == trained


def test_lightning_sigterm_is_told_by_its_class() -> None:
    look_alike = type("SIGTERMException", (SystemExit,), {})  # the same name is not Lightning's exception
    assert _compat.is_lightning_sigterm(look_alike()) is False
    assert _compat.is_lightning_sigterm(SystemExit()) is False
    assert _compat.is_lightning_sigterm(SIGTERMException()) is True
    interrupt.reset()
    assert interrupt.signal_of(SIGTERMException()) == signal.SIGTERM
    assert interrupt.signal_of(look_alike()) is None


@pytest.mark.parametrize("speed", [False, True])
def test_compact_bar_columns_narrow_the_bar_and_drop_the_speed_column(speed: bool) -> None:
    columns = RichProgressBar().configure_columns(None)  # the trainer is not read
    assert isinstance(columns[1], CustomBarColumn) and isinstance(columns[-1], ProcessingSpeedColumn)
    compact = _compat.compact_rich_bar_columns(list(columns), bar_width=7, speed=speed)
    assert compact[1] is columns[1] and compact[1].bar_width == 7
    assert compact == (columns if speed else columns[:-1])
    assert any(isinstance(c, ProcessingSpeedColumn) for c in compact) is speed


def test_rich_summarize_still_takes_what_lightning_and_nnopt_pass() -> None:
    params = inspect.signature(RichModelSummary.summarize).parameters
    assert list(params)[0] == "summary_data"  # nnopt's table filter reads the first argument
    # what ModelSummary.on_fit_start passes (positionally, then total_flops by keyword) and nnopt passes on
    for name in ("total_parameters", "trainable_parameters", "model_size", "total_training_modes", "total_flops"):
        assert name in params
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    assert "total_flops=" in inspect.getsource(pl.callbacks.ModelSummary.on_fit_start)


def test_model_table_leaves_out_the_size_columns_on_a_real_fit(tmp_path: Path, capsys) -> None:
    _trainer(tmp_path, [RichModelSummary()]).fit(_Tiny())
    lightning_table = capsys.readouterr().out
    _trainer(tmp_path, [ModelTable()]).fit(_Tiny())
    table = capsys.readouterr().out
    assert "In sizes" in lightning_table and "Total params" in lightning_table
    assert "In sizes" not in table and "Out sizes" not in table
    assert "Linear" in table and "Total params" in table


def test_private_names_are_used_only_in_the_compat_module() -> None:
    names = sorted({name for _, name in _compat.PRIVATE_NAMES} | {"_weight_bias", "_return_value"})
    public_too = {"min_epochs"}  # also a Trainer argument and config key: only the fit loop's is private
    uses = [
        re.compile(r"\.(" + "|".join(map(re.escape, sorted(set(names) - public_too))) + r")\b"),  # attribute access
        re.compile(r"fit_loop\.min_epochs\b"),
        re.compile(r"__name__\s*(==|!=|in)\s*.*[\"'](" + "|".join(map(re.escape, names)) + r")[\"']"),  # by name
        re.compile(r"\bcolumns\[[-:\d]"),  # the rich bar's columns by position
    ]
    offenders = [
        f"{path.relative_to(SRC)}:{i}"
        for path in SRC.rglob("*.py")
        if path.name != "_compat.py"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if any(use.search(line) for use in uses)
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "line",
    [
        "            self._init_val = trainer.datamodule.batch_size",
        "    trainer.fit_loop.min_epochs = max(trainer.fit_loop.min_epochs or 0, epoch + 1)",
        '    if isinstance(exc, SystemExit) and type(exc).__name__ == "SIGTERMException":',
        "        columns[1].bar_width = BAR_WIDTH",
        "        return columns if self.speed else columns[:-1]",
        "        RichModelSummary.summarize(",
    ],
)
def test_the_private_use_check_catches_the_uses_moved_into_compat(line: str, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "user.py").write_text(line + "\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    with pytest.raises(AssertionError):
        test_private_names_are_used_only_in_the_compat_module()


def test_optuna_heartbeat_helpers_work_on_a_real_rdb_study(tmp_path: Path) -> None:
    """record_heartbeat / heartbeat_interval / fail_trial: what the shared-study sweeper does with ask/tell."""
    url = f"sqlite:///{tmp_path / 'hb.db'}"
    storage = optuna.storages.RDBStorage(url, heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(storage=storage, study_name="hb")
    assert _compat.heartbeat_interval(study) == 1
    assert _compat.heartbeat_interval(optuna.create_study()) is None  # in memory: no heartbeats
    alive, dead = study.ask(), study.ask()
    _compat.record_heartbeat(study, dead)
    import time

    time.sleep(2.2)
    _compat.record_heartbeat(study, alive)
    optuna.storages.fail_stale_trials(study)  # only the trial whose heartbeat is old
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.FAIL]
    frozen = study.trials[alive.number]
    assert _compat.fail_trial(study, frozen) is True
    assert _compat.fail_trial(study, frozen) is False  # already finished


def test_wandb_init_arguments_are_the_dict_lightning_passes_to_wandb_init(tmp_path, monkeypatch) -> None:
    from pytorch_lightning.loggers import CSVLogger, WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = WandbLogger(save_dir=str(tmp_path), project="p", tags=["t"])
    init = _compat.wandb_init_arguments(logger)
    assert init is not None and init["project"] == "p" and init["tags"] == ["t"]
    assert _compat.wandb_init_arguments(CSVLogger(str(tmp_path))) is None
