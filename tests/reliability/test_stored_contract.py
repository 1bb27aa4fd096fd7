"""A checkpoint's stored input contract (`nnopt_data`) is untrusted input: a bogus shape, class count or input
statistic is one CheckpointError naming the key, before any model is built or exported from it."""

from __future__ import annotations

import copy

import pytest
import torch

from nnopt import train
from nnopt.checkpoint import DATA_KEY
from nnopt.errors import CheckpointError
from nnopt.export import export_run
from nnopt.metrics import summary as S
from nnopt.tasks import rebuild
from tests.helpers import ONE_EPOCH, make_cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("contract") / "run"
    summary = train.run(make_cfg(out, *ONE_EPOCH))
    assert summary[S.STATUS] == S.COMPLETED
    return torch.load(summary[S.CKPT_LAST], weights_only=True)


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("input_shape", [-3], "1 to 4 positive integers"),
        ("input_shape", ["x"], "1 to 4 positive integers"),
        ("input_shape", [1, 28, 28.5], "1 to 4 positive integers"),
        ("num_classes", -2, "a positive integer"),
        ("num_classes", "ten", "a positive integer"),
        ("input_mean", "x", "a finite number"),
        ("input_mean", [1.0, 2.0, 3.0], "a finite number"),
        ("input_mean", float("nan"), "a finite number"),
        ("input_std", 0.0, "a positive number"),
        ("input_scale", "big", "a positive number"),
        ("task", "ranking", "classification"),
    ],
)
def test_a_bogus_stored_contract_is_one_checkpoint_error(trained, key, value, allowed, tmp_path):
    ckpt = copy.deepcopy(trained)
    ckpt[DATA_KEY][key] = value
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save(ckpt, path)
    expected = f"ckpt_path={path}: its stored {DATA_KEY}.{key}={value!r} is invalid; allowed: {allowed}"
    with pytest.raises(CheckpointError) as info:
        rebuild.from_checkpoint(path)
    assert str(info.value).startswith(expected), str(info.value)
    for verify in (False, True):  # verifying reads the data as well: the stored contract is checked first
        with pytest.raises(CheckpointError) as info:
            export_run(path, verify=verify)
        assert str(info.value).startswith(expected), str(info.value)
    assert not (tmp_path / "run" / "onnx").exists()


def test_the_stored_contract_of_a_real_run_passes(trained):
    shapes = rebuild.stored_shapes(trained, "x.ckpt", "ckpt_path")
    assert shapes.input_shape == (1, 28, 28)
    assert shapes.num_classes == 10


@pytest.mark.parametrize(
    ("key", "value"),
    [("loops", {"fit_loop": "x"}), ("loops", 3), ("optimizer_states", {"a": 1}), ("epoch", -1), ("global_step", "9")],
)
def test_a_malformed_training_state_refuses_resume_in_one_line(trained, key, value, tmp_path):
    from nnopt.checkpoint import check_compatible
    from nnopt.config.compose import compose_run_config

    ckpt = copy.deepcopy(trained)
    ckpt[key] = value
    cfg = compose_run_config(tmp_path / "run", [*ONE_EPOCH])
    with pytest.raises(CheckpointError, match=f"its training state `{key}` is malformed") as info:
        check_compatible(cfg, ckpt, tmp_path / "elsewhere.ckpt")
    assert len(str(info.value).splitlines()) == 1
