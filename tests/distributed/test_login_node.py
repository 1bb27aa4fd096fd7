"""Quiet on login nodes: with SLURM installed (an `srun` on PATH) and no job, building a Trainer prints nothing
about srun; inside a job (SLURM_JOB_ID set) Lightning's hint stays on. A fake `srun` makes this independent of
whether slurm-wlm is installed here."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import CLI_TIMEOUT

CODE = (
    "from nnopt import runtime; runtime.configure(); import pytorch_lightning as pl; "
    "pl.Trainer(accelerator='cpu', devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, "
    "enable_model_summary=False); print('built')"
)
HINT = "The `srun` command is available on your system but is not used"


def _build(tmp_path, **extra: str) -> subprocess.CompletedProcess:
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    srun = fake / "srun"
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(PATH=f"{fake}{os.pathsep}{env.get('PATH', '')}", PYTHONWARNINGS="default", **extra)
    return subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT)


def test_login_node_is_quiet(tmp_path):
    out = _build(tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "built"
    assert HINT not in out.stderr
    assert "srun" not in out.stderr


@pytest.mark.parametrize("job", ["4242"])
def test_inside_a_job_lightning_still_warns(tmp_path, job):
    # a job step that is not an srun task (SLURM_JOB_ID but no SLURM_NTASKS): Lightning's hint is real advice
    out = _build(tmp_path, SLURM_JOB_ID=job)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stderr.count(HINT) == 1, out.stderr[-2000:]
