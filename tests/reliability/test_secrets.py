"""Secrets, through the real CLI: values that come from `${oc.env:...}` are stored as the
interpolation string, and values of KEY/TOKEN/SECRET/PASSWORD variables appear in no file of the run (summary,
checkpoints, hparams.yaml, logger files including W&B offline files, log, directory names). Eval still works.
"""

from __future__ import annotations

import json

import torch

from nnopt.checkpoint import CONFIG_KEY
from nnopt.metrics import summary as S
from tests.helpers import QUIET, cli_env, run_cli

SECRETS = {"MY_API_KEY": "sk-live-0123456789abcdef", "DB_PASSWORD": "hunter2-but-longer"}
FAST = ["trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2", *QUIET]


def assert_nowhere(root, values) -> int:
    """No file or path name under `root` holds any of `values`; returns how many files were searched."""
    files = [p for p in root.rglob("*") if p.is_file()]
    for path in root.rglob("*"):
        for value in values:
            assert value not in str(path), f"a secret is in the path {path}"
            assert not path.is_file() or value.encode() not in path.read_bytes(), f"{value[:5]}... leaked into {path}"
    return len(files)


def test_env_values_are_kept_as_interpolations_and_secrets_never_written(tmp_path):
    run = tmp_path / "run"
    env = cli_env(**SECRETS, WB_PROJECT="nnopt-secret-test")
    args = [
        "logger=many",
        *FAST,
        "tags=[${oc.env:MY_API_KEY},plain]",
        "+note=${oc.env:DB_PASSWORD}",
        "+alias=${note}",
        "logger.wandb.project=${oc.env:WB_PROJECT}",
    ]
    result = run_cli("train", *args, f"hydra.run.dir={run}", log_dir=tmp_path / "logs", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert assert_nowhere(run, SECRETS.values()) > 10
    assert (run / "wandb").is_dir()  # the W&B offline files were searched too
    for value in SECRETS.values():
        assert value not in result.stdout + result.stderr

    summary = json.loads((run / S.FILENAME).read_text())
    assert summary[S.TAGS] == ["\\${oc.env:MY_API_KEY}", "plain"]  # the interpolation, escaped: never resolves
    stored = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)[CONFIG_KEY]
    assert stored["note"] == "\\${oc.env:DB_PASSWORD}"
    assert stored["alias"] == "${note}"  # a reference to an env-derived value stays a reference, never the value
    assert stored["logger"]["wandb"]["project"] == "${oc.env:WB_PROJECT}"  # inside a group: a live interpolation

    # eval rebuilds from that stored config in an environment without the variables, and still works
    evaluated = run_cli(
        "eval",
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        "efficiency.latency_repeats=1",
        f"hydra.run.dir={tmp_path / 'ev'}",
        log_dir=tmp_path / "logs",
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert json.loads((tmp_path / "ev" / S.FILENAME).read_text())[S.STATUS] == S.COMPLETED


def test_secret_task_name_is_refused_before_anything_is_created(tmp_path):
    logs = tmp_path / "logs"
    result = run_cli("train", *FAST, "task_name=${oc.env:MY_API_KEY}", log_dir=logs, env=cli_env(**SECRETS))
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("nnopt: error: ") and "$MY_API_KEY" in lines[0], lines
    assert "Traceback" not in result.stderr
    assert SECRETS["MY_API_KEY"] not in result.stderr + result.stdout
    assert not logs.exists() and list(tmp_path.iterdir()) == []


def test_run_config_keeps_env_interpolations_and_redacts_secret_values(monkeypatch):
    """The unit behind the CLI test: what build_module stores (no CLI, so every rule is checked in milliseconds)."""
    from omegaconf import OmegaConf

    from nnopt import secrets

    monkeypatch.setenv("MY_API_KEY", SECRETS["MY_API_KEY"])
    monkeypatch.setenv("DATA_ROOT", "/data")
    monkeypatch.setenv("SHORT_TOKEN", "abc")  # too short to be a secret worth redacting everywhere
    cfg = OmegaConf.create(
        {
            "tags": ["${oc.env:MY_API_KEY}", "plain"],
            "note": "${oc.env:DATA_ROOT}",
            "copy": "${tags[0]}",
            "short": "${oc.env:SHORT_TOKEN}",
            "data": {"dir": "${oc.env:DATA_ROOT}/digits", "key": "${oc.env:MY_API_KEY}", "batch_size": 8},
        }
    )
    stored = secrets.run_config(cfg)
    assert stored == {
        "tags": ["\\${oc.env:MY_API_KEY}", "plain"],  # top level: an escaped literal, never resolved again
        "note": "\\${oc.env:DATA_ROOT}",
        "copy": "<redacted $MY_API_KEY>",  # reached through another key: the value is redacted
        "short": "\\${oc.env:SHORT_TOKEN}",
        "data": {"dir": "${oc.env:DATA_ROOT}/digits", "key": "\\${oc.env:MY_API_KEY}", "batch_size": 8},
    }
    again = OmegaConf.create(stored)  # as nnopt-eval reads it, without the secret in its environment
    monkeypatch.delenv("MY_API_KEY")
    assert OmegaConf.to_container(again, resolve=True)["data"] == {
        "dir": "/data/digits",
        "key": "${oc.env:MY_API_KEY}",
        "batch_size": 8,
    }
    assert secrets.run_config(again) == {**stored, "copy": "<redacted $MY_API_KEY>"}  # stable when stored again


def test_a_secret_as_a_bad_value_is_not_printed(tmp_path):
    logs = tmp_path / "logs"
    result = run_cli("train", *FAST, "optimizer.lr=${oc.env:MY_API_KEY}", log_dir=logs, env=cli_env(**SECRETS))
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("nnopt: error: optimizer.lr="), lines
    assert "<redacted $MY_API_KEY>" in lines[0] and SECRETS["MY_API_KEY"] not in result.stderr + result.stdout
    assert not logs.exists()
