"""A checkpoint is data, never code, and resume mismatches are bad input, through the CLI.

A crafted checkpoint's stored config (`nnopt_config`) names `builtins.open` / `numpy.savetxt` / `torch.save` as
`_target_`s, at the top of a group and nested (Hydra instantiates recursively). Every entry point that reads a
checkpoint must refuse it with one line naming the key, exit 2, and never touch the files those targets name.
"""

from __future__ import annotations

import copy
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from nnopt import train
from nnopt.checkpoint import CONFIG_KEY, TRAINING_STATE_KEYS
from nnopt.config.targets import targets_in
from nnopt.metrics import summary as S
from tests.helpers import CLI_TIMEOUT, QUIET, ROOT, cli_env, make_cfg, run_cli

FAST = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=2", *QUIET]
PRECIOUS = b"years of work\n"


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


def refused(result, *words: str) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2, (result.stdout + result.stderr)[-3000:]
    assert len(lines) == 1 and lines[0].startswith("nnopt: error: "), result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def payloads(world: Path) -> dict[str, dict]:
    """Instantiable nodes that truncate `precious.txt` or create files, if anything ever instantiates them."""
    return {
        "open": {"_target_": "builtins.open", "file": str(world / "precious.txt"), "mode": "w"},
        "savetxt": {"_target_": "numpy.savetxt", "fname": str(world / "created_by_numpy.txt"), "X": [1.0]},
        "save": {"_target_": "torch.save", "obj": 1, "f": str(world / "created_by_torch.pt")},
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("ckpt_safety")
    GlobalHydra.instance().clear()
    summary = train.run(make_cfg(root / "good", *FAST))
    assert summary[S.STATUS] == S.COMPLETED
    good = root / "good" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(good, map_location="cpu", weights_only=True)
    (root / "precious.txt").write_bytes(PRECIOUS)
    evil = payloads(root)

    def craft(name: str, edit) -> Path:
        crafted = copy.deepcopy(ckpt)
        edit(crafted)
        path = root / f"{name}.ckpt"
        torch.save(crafted, path)
        return path

    def top(c):  # the model itself is `open(precious.txt, "w")`
        c[CONFIG_KEY]["model"] = {**evil["open"], "name": "mlp"}

    def nested(c):  # instantiated recursively before the model/data/optimizer they sit in
        c[CONFIG_KEY]["model"]["hook"] = evil["open"]
        c[CONFIG_KEY]["data"]["hook"] = evil["savetxt"]
        c[CONFIG_KEY]["optimizer"]["hook"] = evil["save"]

    def no_loops(c):
        for key in TRAINING_STATE_KEYS:
            c.pop(key, None)

    def reshaped(c):
        name = next(k for k, v in c["state_dict"].items() if k.endswith("weight") and v.ndim == 2)
        c["state_dict"][name] = torch.zeros(c["state_dict"][name].shape[0] + 1, c["state_dict"][name].shape[1])

    return {
        "root": root,
        "good": good,
        "top": craft("top", top),
        "nested": craft("nested", nested),
        "no_loops": craft("no_loops", no_loops),
        "reshaped": craft("reshaped", reshaped),
    }


def test_payloads_are_live(tmp_path):
    """The crafted targets really write files when instantiated: the refusal tests below can fail."""
    (tmp_path / "precious.txt").write_bytes(PRECIOUS)
    for node in payloads(tmp_path).values():
        result = instantiate(node)
        if hasattr(result, "close"):
            result.close()
    assert (tmp_path / "precious.txt").read_bytes() == b""
    assert (tmp_path / "created_by_numpy.txt").is_file() and (tmp_path / "created_by_torch.pt").is_file()


def run_export(path: Path, out: Path):
    cmd = [sys.executable, "-m", "nnopt.export", str(path), "--out", str(out), "--no-verify"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT, env=cli_env(), cwd=ROOT)


ENTRIES = {
    "eval": lambda p, logs: run_cli("eval", f"ckpt_path={p}", "efficiency.latency_repeats=1", log_dir=logs),
    "export": lambda p, logs: run_export(p, logs / "onnx"),
    "distill": lambda p, logs: run_cli(
        "train", *FAST, "compression=distill", f"compression.teacher_ckpt={p}", log_dir=logs
    ),
    "finetune": lambda p, logs: run_cli("train", *FAST, "compression=finetune", f"compression.ckpt={p}", log_dir=logs),
    "resume": lambda p, logs: run_cli("train", *FAST, f"ckpt_path={p}", log_dir=logs),
}
KEYS = {
    "eval": "ckpt_path",
    "export": "ckpt_path",
    "distill": "compression.teacher_ckpt",
    "finetune": "compression.ckpt",
    "resume": "ckpt_path",
}


# every entry point with the nested payloads (recursive instantiate); the top-level one for all in the slow tier
CRAFTED = [(entry, "nested") for entry in ENTRIES] + [
    (entry, "top") if entry in ("eval", "resume") else pytest.param(entry, "top", marks=pytest.mark.slow)
    for entry in ENTRIES
]


@pytest.mark.parametrize(("entry", "craft"), CRAFTED)
def test_crafted_checkpoint_runs_no_code(world, entry, craft):
    root = world["root"]
    before = snapshot(root)
    result = ENTRIES[entry](world[craft], root / "logs")
    stored = torch.load(world[craft], map_location="cpu", weights_only=True)[CONFIG_KEY]
    evil = {node["_target_"] for node in payloads(root).values()}
    where, target = next((w, t) for w, t in targets_in(stored) if t in evil)  # the first foreign target
    refused(result, f"{KEYS[entry]}={world[craft]}", f"{CONFIG_KEY}.{where}={target!r}")
    assert (root / "precious.txt").read_bytes() == PRECIOUS
    assert snapshot(root) == before  # nothing created (numpy/torch targets, run dirs, onnx files), nothing changed


def test_resume_with_another_optimizer_is_refused(world):
    before = snapshot(world["root"])
    result = run_cli("train", *FAST, f"ckpt_path={world['good']}", "optimizer=sgd", log_dir=world["root"] / "logs")
    refused(result, f"ckpt_path={world['good']}", "optimizer", "torch.optim.SGD", "compression=finetune")
    assert snapshot(world["root"]) == before


def test_resume_without_loop_state_is_refused(world):
    before = snapshot(world["root"])
    result = run_cli("train", *FAST, f"ckpt_path={world['no_loops']}", log_dir=world["root"] / "logs")
    refused(result, f"ckpt_path={world['no_loops']}", "no training state", "optimizer_states")
    assert snapshot(world["root"]) == before


@pytest.mark.parametrize("entry", ["resume", "eval"])
def test_weights_of_another_shape_are_refused(world, entry):
    before = snapshot(world["root"])
    result = ENTRIES[entry](world["reshaped"], world["root"] / "logs")
    refused(result, f"ckpt_path={world['reshaped']}", "has shape", "this model needs")
    assert snapshot(world["root"]) == before
