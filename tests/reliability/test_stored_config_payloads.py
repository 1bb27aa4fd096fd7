"""What is checked is what is built: a `_target_` that appears in a checkpoint's stored config only after resolution
(an object-building resolver, a reference to another key, a default of `oc.select`, inside a list or `_args_`) is
refused by every consumer of a checkpoint, before anything is built, and the file it names is never touched.

Each payload is also shown to write its file when the resolved node is instantiated directly (the control), so a
refusal here means the check stopped real code.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from nnopt import train
from nnopt.checkpoint import CONFIG_KEY
from nnopt.errors import CheckpointError
from tests.helpers import ONE_EPOCH, make_cfg

GROUPS = ("data", "model", "optimizer", "schedule", "compression", "trainer", "callbacks", "logger", "paths")


def _open(victim: Path) -> str:
    """A flow-style node that truncates `victim` when instantiated."""
    return f"{{_target_: builtins.open, file: '{victim}', mode: w}}"


#: name -> (place the payload in a stored config: config, victim path -> None)
def _payloads() -> dict[str, Callable[[dict, Path], None]]:
    def in_group(group: str, value: object) -> Callable[[dict], None]:
        def put(cfg: dict) -> None:
            node = cfg.setdefault(group, {})
            if not isinstance(node, dict):  # compression=none, schedule=constant... are plain values
                cfg[group] = node = {}
            node["extra"] = value

        return put

    def oc_create(cfg: dict, v: Path) -> None:
        in_group("optimizer", "${oc.create:" + _open(v) + "}")(cfg)

    def oc_decode(cfg: dict, v: Path) -> None:
        in_group("model", "${oc.decode:'" + _open(v).replace("'", '"') + "'}")(cfg)

    def reference(cfg: dict, v: Path) -> None:
        cfg["payload_source"] = {"_target_": "builtins.open", "file": str(v), "mode": "w"}
        in_group("data", "${payload_source}")(cfg)

    def select_default(cfg: dict, v: Path) -> None:
        in_group("trainer", "${oc.select:nothing_here,${oc.create:" + _open(v) + "}}")(cfg)

    def in_list(cfg: dict, v: Path) -> None:
        in_group("callbacks", ["x", "${oc.create:" + _open(v) + "}"])(cfg)

    def in_args(cfg: dict, v: Path) -> None:
        cfg["optimizer"]["_args_"] = ["${oc.create:" + _open(v) + "}"]

    def dict_values(cfg: dict, v: Path) -> None:
        cfg["holder"] = {"a": "${oc.create:" + _open(v) + "}"}
        in_group("logger", "${oc.dict.values:holder}")(cfg)

    def custom_resolver(cfg: dict, v: Path) -> None:
        in_group("schedule", "${nnopt_test_evil:" + str(v) + "}")(cfg)

    found = {
        "oc.create": oc_create,
        "oc.decode": oc_decode,
        "reference": reference,
        "oc.select default": select_default,
        "list": in_list,
        "_args_": in_args,
        "oc.dict.values": dict_values,
        "custom resolver": custom_resolver,
    }
    for group in GROUPS:  # a payload in every group
        found[f"group {group}"] = lambda cfg, v, g=group: in_group(g, "${oc.create:" + _open(v) + "}")(cfg)
    return found


PAYLOADS = _payloads()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("payload_source") / "run"
    summary = train.run(make_cfg(out, *ONE_EPOCH, "model.hidden=[8]", "logger=none"))
    assert summary["status"] == "completed"
    return out / "checkpoints" / "last.ckpt"


def crafted(trained: Path, tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A copy of the trained checkpoint whose stored config carries payload `name`; and the file it would write."""
    victim = tmp_path / "precious.txt"
    victim.write_text("years of work\n")
    ckpt = torch.load(trained, weights_only=True)
    cfg = copy.deepcopy(ckpt[CONFIG_KEY])
    PAYLOADS[name](cfg, victim)
    ckpt[CONFIG_KEY] = cfg
    path = tmp_path / "run" / "checkpoints" / "crafted.ckpt"
    path.parent.mkdir(parents=True)
    torch.save(ckpt, path)
    return path, victim


def _evil(path: str) -> dict:
    return {"_target_": "builtins.open", "file": path, "mode": "w"}


@pytest.fixture(autouse=True)
def evil_resolver():
    """A resolver registered in this process (as a user's code might): a stored config must not call it either."""
    OmegaConf.register_new_resolver("nnopt_test_evil", _evil, replace=True)
    yield
    OmegaConf.clear_resolver("nnopt_test_evil")


def _eval(path: Path) -> None:
    from nnopt import eval as nnopt_eval

    nnopt_eval.run(make_cfg(path.parent.parent / "eval", f"ckpt_path={path}", config_name="eval", fast=False))


def _export(path: Path) -> None:
    from nnopt.export import export_run

    export_run(path, verify=False)


def _sensitivity(path: Path) -> None:
    from nnopt import sensitivity

    sensitivity.load(sensitivity.resolve(path, None))


def _teacher(path: Path) -> None:
    from nnopt.compression.distillation import Distillation

    Distillation(teacher_ckpt=str(path))


def _finetune_source(path: Path) -> None:
    from nnopt.compression.finetune import FineTune

    FineTune(ckpt=str(path))


def _classifier(path: Path) -> None:
    from nnopt.tasks.classification import Classifier

    Classifier.load_from_checkpoint(path)


def _regressor(path: Path) -> None:
    from nnopt.tasks.regression import Regressor

    Regressor.load_from_checkpoint(path)


CONSUMERS = {
    "nnopt-eval": _eval,
    "nnopt-export": _export,
    "nnopt-sensitivity": _sensitivity,
    "distillation teacher": _teacher,
    "fine-tune source": _finetune_source,
    "Classifier.load_from_checkpoint": _classifier,
    "Regressor.load_from_checkpoint": _regressor,
}


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_control_each_payload_writes_when_its_resolved_node_is_built(trained, tmp_path, payload) -> None:
    path, victim = crafted(trained, tmp_path, payload)
    stored = torch.load(path, weights_only=True)[CONFIG_KEY]
    resolved = OmegaConf.to_container(OmegaConf.create(stored), resolve=True)
    nodes = list(_payload_nodes(resolved))
    assert nodes, f"payload {payload} resolves to no builtins.open node"
    for node in nodes:
        instantiate(node).close()
    assert victim.read_text() == "", f"payload {payload} did not write"


def _payload_nodes(value):
    """The resolved nodes that name `builtins.open`, wherever they sit."""
    if isinstance(value, dict):
        if value.get("_target_") == "builtins.open":
            yield value
        for child in value.values():
            yield from _payload_nodes(child)
    elif isinstance(value, list):
        for child in value:
            yield from _payload_nodes(child)


@pytest.mark.parametrize("consumer", sorted(CONSUMERS))
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_every_consumer_refuses_every_payload(trained, tmp_path, consumer, payload) -> None:
    path, victim = crafted(trained, tmp_path, payload)
    with pytest.raises(CheckpointError, match="refusing") as refused:
        CONSUMERS[consumer](path)
    assert len(str(refused.value).splitlines()) == 1
    assert victim.read_text() == "years of work\n"


def test_a_clean_copy_is_accepted_by_every_consumer_that_builds_a_classifier(trained, tmp_path) -> None:
    """The refusals above come from the payloads: the same checkpoint without one loads."""
    from nnopt.tasks.classification import Classifier

    module = Classifier.load_from_checkpoint(trained)
    assert isinstance(module, Classifier) and not module.training


def test_escaped_interpolations_are_literals_and_an_escaped_backslash_is_not() -> None:
    from nnopt.config.stored import resolver_calls

    assert resolver_calls("\\${oc.create:x}") == []  # \${ : a literal "${"
    assert resolver_calls("\\\\${oc.create:x}") == ["oc.create"]  # \\${ : a backslash, then a live call
    assert resolver_calls("${oc.select:a,${oc.decode:b}}") == ["oc.select", "oc.decode"]
