"""A missing optional package is one line naming the extra that installs it (absence simulated by blocking the
import: `sys.modules[name] = None`)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from nnopt.cli import extras, guard
from nnopt.cli.precheck import precheck
from nnopt.errors import BAD_INPUT_EXIT, FAILURE_EXIT
from tests.helpers import CLI_TIMEOUT, ROOT, cli_env


@pytest.mark.parametrize(
    ("blocked", "args", "expected"),
    [
        ("wandb", ["logger=wandb"], "logger=wandb needs the 'wandb' package: pip install 'nnopt[wandb]'"),
        (
            "tensorboard",
            ["logger=many"],
            "logger=many needs the 'tensorboard' package: pip install 'nnopt[tensorboard]'",
        ),
        (
            "optuna",
            ["hparams_search=digits_tpe"],
            "hydra/sweeper=nnopt_optuna needs the 'optuna' package: pip install 'nnopt[sweep]'",
        ),
    ],
)
def test_precheck_names_the_extra(monkeypatch, capsys, blocked, args, expected):
    monkeypatch.setitem(sys.modules, blocked, None)
    with pytest.raises(SystemExit) as stop:
        precheck(args, "train")
    assert stop.value.code == BAD_INPUT_EXIT
    assert capsys.readouterr().err.splitlines() == [f"nnopt: error: {expected}"]


def test_installed_extras_pass_the_precheck(monkeypatch, capsys):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)  # with it set the precheck is skipped, checking nothing
    asked: list[str] = []
    real_installed = extras.installed
    monkeypatch.setattr(extras, "installed", lambda module: asked.append(module) or real_installed(module))
    assert precheck(["logger=many", "hparams_search=digits_tpe"], "train") is None  # no exit
    assert capsys.readouterr().err == ""
    # the composed config's loggers and sweeper were each looked up, and each is really installed
    assert {"wandb", "tensorboard", "mlflow", "optuna"} <= set(asked)
    assert all(importlib.util.find_spec(module) is not None for module in ("wandb", "tensorboard", "mlflow", "optuna"))


def test_run_time_import_of_an_optional_package_names_its_extra(capsys, tmp_path):
    cfg = OmegaConf.create({"paths": {"output_dir": str(tmp_path)}})

    def uses_mlflow(_cfg):
        raise ModuleNotFoundError("No module named 'mlflow'", name="mlflow")

    with pytest.raises(SystemExit) as stop:
        guard.guarded(uses_mlflow, cfg)
    assert stop.value.code == BAD_INPUT_EXIT
    assert capsys.readouterr().err.splitlines() == [
        "nnopt: error: this run needs the 'mlflow-skinny' package: pip install 'nnopt[mlflow]'"
    ]

    def broken(_cfg):
        raise ModuleNotFoundError("No module named 'mypackage'", name="mypackage")

    with pytest.raises(SystemExit) as stop:  # not an optional package of nnopt's: an ordinary failure
        guard.guarded(broken, cfg)
    assert stop.value.code == FAILURE_EXIT
    assert "run failed: ModuleNotFoundError: No module named 'mypackage'" in capsys.readouterr().err


def test_console_entry_point_without_wandb(tmp_path):
    code = "import sys; sys.modules['wandb'] = None; from nnopt.train import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code, "logger=wandb", f"paths.log_dir={tmp_path}"],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=ROOT,
        timeout=CLI_TIMEOUT,
    )
    assert result.returncode == BAD_INPUT_EXIT
    assert result.stderr.splitlines() == [
        "nnopt: error: logger=wandb needs the 'wandb' package: pip install 'nnopt[wandb]'"
    ]
    assert not list(tmp_path.iterdir())


def test_nnopt_export_without_onnx_names_the_export_extra(tmp_path):
    from nnopt.train import run
    from tests.helpers import make_cfg

    run(make_cfg(tmp_path / "run", "logger=none", "trainer.max_epochs=1", "model.hidden=[16]"))
    code = "import sys; sys.modules['onnx'] = None; from nnopt.export import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "run"), "--out", str(tmp_path / "onnx")],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=ROOT,
        timeout=CLI_TIMEOUT,
    )
    assert result.returncode == BAD_INPUT_EXIT, result.stderr[-2000:]
    assert result.stderr.splitlines() == [
        "nnopt: error: nnopt-export needs the 'onnx' package: pip install 'nnopt[export]'"
    ]
    assert not (tmp_path / "onnx").exists()
