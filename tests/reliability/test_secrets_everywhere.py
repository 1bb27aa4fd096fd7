"""Values of environment variables reach only the places that need them: one run with `logger=many` (CSV,
TensorBoard, W&B offline, MLflow) writes `${oc.env:...}` values as the interpolation into its summary (overrides
included), checkpoints, hparams and logger configs; a secret-named variable (KEY, TOKEN, SECRET, PASS, CRED,
AUTH, PRIVATE) or one listed in `secrets.redact` is written nowhere at all, and a plain one only where a tracker
needs the value (W&B's run tags); a secret in a callback's file name is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnopt.config.schema import validate
from nnopt.errors import ConfigError
from tests.helpers import ONE_EPOCH, cli_env, make_cfg, run_cli

SECRETS = {"MY_CRED": "v4lue-of-my-cred", "RUN_AUTH_HEADER": "v4lue-of-auth-header", "MY_VAR": "v4lue-of-my-var"}
PLAIN = {"MY_NOTE": "plain-note-value-42"}


def files_holding(root: Path, value: str) -> list[str]:
    needle = value.encode()
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes())


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("secrets_everywhere")
    run_dir = tmp / "run"
    tags = ",".join(f"${{oc.env:{name}}}" for name in (*SECRETS, *PLAIN))
    args = [
        *ONE_EPOCH,
        "model.hidden=[8]",
        "logger=many",
        f"tags=[{tags}]",
        "+note=${oc.env:MY_CRED}",
        "secrets.redact=[MY_VAR]",
        f"hydra.run.dir={run_dir}",
    ]
    result = run_cli("train", *args, log_dir=tmp, env=cli_env(**SECRETS, **PLAIN, MLFLOW_ALLOW_FILE_STORE="true"))
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_a_secret_value_is_written_nowhere(run, name) -> None:
    run_dir, output = run
    assert SECRETS[name] not in output
    assert files_holding(run_dir, SECRETS[name]) == []
    assert f"${{oc.env:{name}}}" in (run_dir / "summary.json").read_text()  # kept as the interpolation


def test_a_plain_value_is_stored_as_its_interpolation_and_resolved_only_for_the_tracker(run) -> None:
    run_dir, _ = run
    holding = files_holding(run_dir, PLAIN["MY_NOTE"])
    assert holding and all(path.startswith("wandb/") for path in holding)  # W&B's run tags need the value
    assert "${oc.env:MY_NOTE}" in (run_dir / "checkpoints" / "last.ckpt").read_bytes().decode("latin-1")


def test_a_secret_in_a_checkpoint_file_name_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MY_TOKEN", "t0ken-in-a-file-name")
    cfg = make_cfg(tmp_path, "callbacks.model_checkpoint.filename=${oc.env:MY_TOKEN}-best")
    with pytest.raises(ConfigError, match=r"callbacks.model_checkpoint.filename holds the value of \$MY_TOKEN"):
        validate(cfg)


def test_secrets_redact_must_be_a_list_of_names(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"secrets.redact"):
        validate(make_cfg(tmp_path, "secrets.redact=MY_VAR"))
