"""The built wheel carries the configs: installed outside the checkout, `nnopt-train` trains from any directory
and writes its logs under that directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from nnopt.metrics import summary as S
from tests.helpers import CLI_TIMEOUT, QUIET, ROOT, cli_env


def _source_copy(dest: Path) -> Path:
    """What a fresh clone holds for the build (no egg-info, caches or logs of this checkout)."""
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "src", dest / "src", symlinks=True, ignore=skip)  # src/nnopt/conf -> ../../conf
    shutil.copytree(ROOT / "conf", dest / "conf", ignore=skip)
    return dest


@pytest.mark.slow
def test_wheel_installed_outside_the_checkout_trains_from_another_directory(tmp_path):
    (tmp_path / "source").mkdir()
    source = _source_copy(tmp_path / "source")
    pip = [sys.executable, "-m", "pip", "--no-input"]
    started = time.perf_counter()
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), str(source)],
        check=True,
        capture_output=True,
        timeout=CLI_TIMEOUT,
    )
    built = time.perf_counter()
    (wheel,) = (tmp_path / "dist").glob("nnopt-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"nnopt/conf/train.yaml", "nnopt/conf/eval.yaml", "nnopt/conf/model/mlp.yaml"} <= set(names)
    site = tmp_path / "site"  # installed with the project's torch/Lightning already on the path: no reinstall
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-compile", "-q", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=CLI_TIMEOUT,
    )
    installed = time.perf_counter()
    print(
        f"wheel {wheel.stat().st_size / 1024:.0f} KiB, build {built - started:.1f} s, install {installed - built:.1f} s"
    )

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = cli_env(PYTHONPATH=str(site))  # ahead of the checkout's editable src on sys.path
    env.pop("NNOPT_ROOT", None)
    where = subprocess.run(
        [sys.executable, "-c", "import nnopt.config as c; print(c.CONFIG_DIR)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        check=True,
    )
    assert where.stdout.strip() == str((site / "nnopt" / "conf").resolve())
    result = subprocess.run(
        [str(site / "bin" / "nnopt-train"), "debug=fast", *QUIET],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=CLI_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (summary_file,) = (work / "logs").rglob(S.FILENAME)  # logs go under the current directory
    assert json.loads(summary_file.read_text())[S.STATUS] == S.COMPLETED
    hydra_yaml = (summary_file.parent / ".hydra" / "hydra.yaml").read_text()
    assert f"- path: {(site / 'nnopt' / 'conf').resolve()}\n      schema: file\n      provider: main" in hydra_yaml
