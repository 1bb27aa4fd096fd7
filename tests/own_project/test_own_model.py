"""Issue 13 item 3: any `_target_` returning an nn.Module; shape arguments only where the constructor takes them;
switching the model target without the previous model's keys; errors that carry the underlying message."""

from __future__ import annotations

import json

import pytest
from hydra.errors import InstantiationException

from nnopt.config import instantiate
from nnopt.errors import ConfigError
from nnopt.metrics import summary as S
from tests.helpers import TINY, make_cfg, run_cli
from tests.own_project import models

OWN = "tests.own_project.models"
SHAPE = (1, 28, 28)


def own_model(target: str, *keys: str) -> list[str]:
    """The documented one-off pattern: drop the model group's option, then name the new target and its keys."""
    extra = [f"+model.{k}" for k in keys]
    return ["~model", f"+model._target_={OWN}.{target}", f"+model.name={target.lower()}", *extra]


def test_accepted_offers_only_what_a_constructor_names():
    offered = {"in_shape": [1, 28, 28], "num_classes": 10}
    assert instantiate.accepted(models.ClassesOnly, offered) == {"num_classes": 10}
    assert instantiate.accepted(models.NoShapes, offered) == {}
    assert instantiate.accepted(models.AnyKwargs, offered) == offered


@pytest.mark.parametrize(
    ("target", "keys", "params"),
    [
        ("ClassesOnly", ["in_features=784"], 784 * 10 + 10),
        ("NoShapes", ["width=4"], 784 * 4 + 4 + 4 * 10 + 10),
        ("AnyKwargs", [], 784 * 10 + 10),
    ],
)
def test_own_model_gets_shape_arguments_only_where_it_takes_them(tmp_path, target, keys, params):
    cfg = make_cfg(tmp_path, *own_model(target, *keys))
    net = instantiate.build_net(cfg, SHAPE, 10)
    assert type(net).__name__ == target
    assert sum(p.numel() for p in net.parameters()) == params
    if target == "AnyKwargs":
        assert net.received == {"in_shape": list(SHAPE), "num_classes": 10}


def test_switching_only_the_target_keeps_the_old_models_keys_and_says_so(tmp_path):
    cfg = make_cfg(tmp_path, f"model._target_={OWN}.NoShapes")  # mlp's hidden/batch_norm/dropout stay
    with pytest.raises(ConfigError) as err:
        instantiate.build_net(cfg, SHAPE, 10)
    message = str(err.value)
    assert message.startswith(f"model._target_={OWN}.NoShapes: cannot build it (TypeError: ")
    assert "unexpected keyword argument 'hidden'" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("target", "error", "text"),
    [
        (
            "EvenWidth",
            ConfigError,
            f"model._target_={OWN}.EvenWidth: cannot build it (ValueError: width must be even, got 3)",
        ),
        (
            "Broken",
            InstantiationException,
            f"cannot build {OWN}.Broken: RuntimeError: weights file missing on this machine",
        ),
        ("not_a_module", ConfigError, f"model._target_={OWN}.not_a_module built a dict, not a torch nn.Module"),
        ("Nope", ConfigError, f"model._target_={OWN}.Nope: cannot import it"),
    ],
)
def test_build_errors_carry_the_underlying_message(tmp_path, target, error, text):
    cfg = make_cfg(tmp_path, "~model", f"+model._target_={OWN}.{target}", "+model.name=x")
    with pytest.raises(error) as err:
        instantiate.build_net(cfg, SHAPE, 10)
    assert str(err.value).startswith(text)


@pytest.mark.slow
def test_cli_one_off_model_and_the_leak_error(tmp_path):
    run_dir = tmp_path / "run"
    ok = run_cli("train", *own_model("NoShapes", "width=4"), *TINY, f"hydra.run.dir={run_dir}", log_dir=tmp_path)
    assert ok.returncode == 0, ok.stderr[-3000:]
    summary = json.loads((run_dir / S.FILENAME).read_text())
    assert summary[S.STATUS] == S.COMPLETED
    assert summary[S.PARAMS] == 784 * 4 + 4 + 4 * 10 + 10
    bad = run_cli("train", f"model._target_={OWN}.NoShapes", *TINY, log_dir=tmp_path)
    assert bad.returncode == 2
    last = bad.stderr.strip().splitlines()[-1]
    assert last.startswith(f"nnopt: error: model._target_={OWN}.NoShapes: cannot build it (TypeError: ")
    assert "unexpected keyword argument 'hidden'" in last
