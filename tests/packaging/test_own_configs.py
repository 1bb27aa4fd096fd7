"""The user's own configs next to nnopt's: `hydra.searchpath`, `--config-dir/-cd` and `pkg://` sources, in the
pre-check (options listed through Hydra's loader), single runs and multiruns."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from nnopt.cli.precheck import precheck
from nnopt.errors import BAD_INPUT_EXIT
from nnopt.metrics import summary as S
from tests.helpers import TINY, listed_options, run_cli

OWN_CONF = Path(__file__).parent / "own_conf"
#: parameters of tests.packaging.own.MyNet(hidden=16) on digits (resized to 1x28x28 by default, 10 classes)
MYNET_PARAMS = (28 * 28 * 16 + 16) + (16 * 10 + 10)
SOURCES = {
    "searchpath": [f"hydra.searchpath=[file://{OWN_CONF}]"],
    "config_dir": ["-cd", str(OWN_CONF)],
    "pkg": ["hydra.searchpath=[pkg://tests.packaging.own_conf]"],
}


def precheck_error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as stop:
        precheck(list(argv), "train")
    assert stop.value.code == BAD_INPUT_EXIT
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1
    return lines[0]


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_precheck_accepts_own_options_and_lists_them_on_a_typo(capsys, source):
    precheck([*SOURCES[source], "model=mynet", "optimizer=myopt"], "train")  # no exit: accepted
    precheck([*SOURCES[source], "-m", "model=mynet,mlp", "optimizer=myopt,adam"], "train")
    line = precheck_error(capsys, *SOURCES[source], "model=mynett")
    assert line.startswith("nnopt: error: unknown model option 'mynett'; choose one of: ")
    assert {"cnn", "lenet5", "mlp", "mynet"} <= listed_options(line)  # nnopt's and the user's
    line = precheck_error(capsys, *SOURCES[source], "-m", "optimizer=myopt,adamm")
    assert "unknown optimizer option 'adamm'; choose one of: " in line and ", myopt, " in line


def test_without_the_source_own_options_are_unknown(capsys):
    line = precheck_error(capsys, "model=mynet")
    assert line.startswith("nnopt: error: unknown model option 'mynet'; choose one of: ")
    assert {"cnn", "lenet5", "mlp"} <= listed_options(line)
    assert "mynet" not in listed_options(line)


def test_config_dir_that_does_not_exist_is_one_line(capsys, tmp_path):
    line = precheck_error(capsys, "-cd", str(tmp_path / "nope"), "model=mlp")
    assert line == f"nnopt: error: --config-dir {tmp_path / 'nope'}: no such directory"


def test_help_lists_the_users_options(capsys):
    with pytest.raises(SystemExit) as stop:
        precheck(["--help", *SOURCES["config_dir"]], "train")
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("nnopt-train: ")
    listed = {
        line.split(": ", 1)[0]: set(line.split(": ", 1)[1].split(", ")) for line in out.splitlines() if ": " in line
    }
    assert {"cnn", "lenet5", "mlp", "mynet"} <= listed["model"]
    assert {"adam", "sgd", "myopt"} <= listed["optimizer"]
    assert "== Examples ==" in out


def test_own_model_and_optimizer_via_searchpath(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(
        "train",
        *SOURCES["searchpath"],
        "model=mynet",
        "optimizer=myopt",
        *TINY,
        f"hydra.run.dir={run_dir}",
        log_dir=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / S.FILENAME).read_text())
    assert summary[S.STATUS] == S.COMPLETED
    assert summary[S.PARAMS] == MYNET_PARAMS
    assert summary[S.CHOICES]["model"] == "mynet" and summary[S.CHOICES]["optimizer"] == "myopt"
    assert math.isfinite(summary["test/acc"])


@pytest.mark.slow
def test_own_configs_via_config_dir_in_a_multirun(tmp_path):
    result = run_cli(
        "train", "-m", *SOURCES["config_dir"], "model=mynet", "optimizer=myopt,adam", *TINY, log_dir=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in sorted(tmp_path.rglob(f"multiruns/*/*/{S.FILENAME}"))]
    assert len(summaries) == 2
    assert {s[S.CHOICES]["optimizer"] for s in summaries} == {"myopt", "adam"}
    assert all(s[S.STATUS] == S.COMPLETED and s[S.PARAMS] == MYNET_PARAMS for s in summaries)
