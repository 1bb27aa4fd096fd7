"""nnopt's value schema judges nnopt's own classes only: a user's model of the same key names (`channels: 16`, a
`dropout` of its own range) is built as its constructor says, and its constructor's own error is one line."""

from __future__ import annotations

import pytest

from nnopt import build
from nnopt.config import instantiate
from nnopt.config.schema import validate
from nnopt.errors import ConfigError
from tests.helpers import make_cfg

OWN = ["model._target_=tests.own_project.models.Conv1dNet", "~model.hidden", "~model.batch_norm"]


def test_a_user_models_keys_are_not_judged_by_nnopts_schema(tmp_path) -> None:
    cfg = make_cfg(tmp_path, *OWN, "+model.channels=16", "model.dropout=0.85")
    validate(cfg)  # nnopt's ModelSchema would refuse channels (it must be a list for nnopt's CNN)
    net = instantiate.build_net(cfg, (1, 28, 28), 10)
    assert net.channels == 16 and net.layers[4].p == 0.85


def test_a_user_models_own_refusal_is_one_line(tmp_path) -> None:
    cfg = make_cfg(tmp_path, *OWN, "model.dropout=0.95")
    validate(cfg)
    dm = build.build_datamodule(cfg)
    with pytest.raises(ConfigError, match=r"model\._target_=tests.own_project.models.Conv1dNet.*dropout=0.95") as bad:
        build.build_module(cfg, dm)
    assert len(str(bad.value).splitlines()) == 1


@pytest.mark.parametrize(
    ("override", "key"), [("model.channels=16", "model.channels"), ("model.dropout=1.5", "model.dropout")]
)
def test_nnopts_own_models_are_still_checked(tmp_path, override, key) -> None:
    cfg = make_cfg(tmp_path, "model=cnn", override)
    with pytest.raises(ConfigError, match=key):
        validate(cfg)


def test_a_user_data_modules_size_is_its_own(tmp_path) -> None:
    cfg = make_cfg(tmp_path, "data._target_=tests.own_project.test_own_values.AnyData", "data.size=1000")
    validate(cfg)  # nnopt's DataSchema bounds data.size to [4, 512] for its own sources only


class AnyData:
    """Stands for a user's data module: only its config is validated here."""
