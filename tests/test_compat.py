"""The private names nnopt relies on still exist (an upgrade fails here, by name), and only _compat uses them."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import optuna
import pytest
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from nnopt import _compat
from nnopt.lit import Classifier

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


def test_private_names_are_used_only_in_the_compat_module() -> None:
    names = sorted({name for _, name in _compat.PRIVATE_NAMES} | {"_weight_bias", "_return_value"})
    pattern = re.compile(r"\.(" + "|".join(map(re.escape, names)) + r")\b")
    offenders = [
        f"{path.relative_to(SRC)}:{i}"
        for path in SRC.rglob("*.py")
        if path.name != "_compat.py"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
