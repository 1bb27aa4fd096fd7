"""The shared helpers do what the tests using them rely on."""

from __future__ import annotations

import pytest

from tests.helpers import cli_env, listed_options


def test_cli_env_drops_inherited_settings_that_change_what_a_run_prints(monkeypatch):
    for name, value in [
        ("HYDRA_FULL_ERROR", "1"),
        ("SLURM_JOB_ID", "7"),
        ("LOCAL_RANK", "1"),
        ("WANDB_MODE", "online"),
    ]:
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NNOPT_TEST_KEEP", "kept")
    env = cli_env()
    assert [name for name in ("HYDRA_FULL_ERROR", "SLURM_JOB_ID", "LOCAL_RANK") if name in env] == []
    assert env["WANDB_MODE"] == "offline" and env["NNOPT_TEST_KEEP"] == "kept"
    assert cli_env(HYDRA_FULL_ERROR="1")["HYDRA_FULL_ERROR"] == "1"  # a test may still ask for it


def test_listed_options_reads_the_choice_list():
    line = "nnopt: error: unknown model option 'x'; choose one of: cnn, lenet5, mlp"
    assert listed_options(line) == {"cnn", "lenet5", "mlp"}
    with pytest.raises(AssertionError):
        listed_options("nnopt: error: something else")
