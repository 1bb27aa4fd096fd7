"""Signals are not success: SIGTERM, SIGINT and SIGUSR1 save a checkpoint at the signal, write
`status: interrupted`, print one line and exit 128 + signal; `resume=true` continues. Through the real CLI.

The signal comes from inside the run (tests/reliability/signal_sender.py, at a fixed training step), so no test
depends on how fast the machine is.
"""

from __future__ import annotations

import json
import signal

import pytest
import torch

from nnopt.metrics import summary as S
from tests.helpers import QUIET, run_cli

SENDER = "tests.reliability.signal_sender.SendSignal"
AT_STEP = 4
BATCH = 128  # full batches: the first epoch has more than AT_STEP + 1 of them
COMMON = ["trainer.max_epochs=2", f"data.batch_size={BATCH}", *QUIET]


def sender(signum: int, once=None) -> list[str]:
    args = [
        f"+callbacks.sender._target_={SENDER}",
        f"+callbacks.sender.signum={int(signum)}",
        f"+callbacks.sender.at_step={AT_STEP}",
    ]
    return [*args, f"+callbacks.sender.once={once}"] if once is not None else args


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("nnopt:")]
    assert len(lines) == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    """The same run without a signal: how many steps and samples a whole run takes."""
    root = tmp_path_factory.mktemp("whole")
    result = run_cli("train", *COMMON, f"hydra.run.dir={root / 'run'}", log_dir=root / "logs")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((root / "run" / S.FILENAME).read_text())


@pytest.mark.parametrize(
    "signum",
    [
        signal.SIGTERM,
        pytest.param(signal.SIGINT, marks=pytest.mark.slow),
        pytest.param(signal.SIGUSR1, marks=pytest.mark.slow),
    ],
    ids=lambda s: s.name,
)
def test_signal_interrupts_saves_and_resumes(tmp_path, signum, uninterrupted):
    run = tmp_path / "run"
    common = [*COMMON, f"hydra.run.dir={run}"]
    result = run_cli("train", *common, *sender(signum, tmp_path / "fired"), log_dir=tmp_path / "logs")
    assert result.returncode == 128 + signum, result.stderr[-3000:]
    line = one_error_line(result.stderr)
    assert line.startswith(f"nnopt: error: interrupted by {signum.name}") and "resume=true" in line, line
    summary = json.loads((run / S.FILENAME).read_text())
    assert summary[S.STATUS] == S.INTERRUPTED
    assert summary[S.ERROR] == f"interrupted by {signum.name}"
    last = run / "checkpoints" / "last.ckpt"
    assert summary[S.CKPT_LAST] == str(last)
    assert summary[S.TRAIN_STEPS] == AT_STEP + 1
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["global_step"] == AT_STEP + 1  # saved at the end of the step the signal came in

    resumed = run_cli("train", *common, *sender(signum, tmp_path / "fired"), "resume=true", log_dir=tmp_path / "logs")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    done = json.loads((run / S.FILENAME).read_text())
    assert done[S.STATUS] == S.COMPLETED
    assert done[S.TRAIN_STEPS] == uninterrupted[S.TRAIN_STEPS]
    # the resumed run trained only the steps after the signal, not the whole run again
    assert done[S.TRAIN_SAMPLES_RANK0] == uninterrupted[S.TRAIN_SAMPLES_RANK0] - (AT_STEP + 1) * BATCH


@pytest.mark.slow  # two CLI sweeps
def test_signal_stops_a_sweep_reports_and_resume_continues(tmp_path):
    logs = tmp_path / "logs"
    # job 0 completes, job 1 is interrupted at step AT_STEP, job 2 is never started
    args = ["-m", "seed=1,2,3", *COMMON, *sender(signal.SIGTERM, tmp_path / "fired"), "+callbacks.sender.job=1"]
    result = run_cli("train", *args, log_dir=logs)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-3000:]
    line = one_error_line(result.stderr)
    assert line.startswith("nnopt: error: interrupted by SIGTERM: sweep") and "report written" in line, line
    (sweep,) = (logs / "train" / "multiruns").iterdir()
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()) == ["0", "1"]
    statuses = [json.loads((sweep / job / S.FILENAME).read_text())[S.STATUS] for job in ("0", "1")]
    assert statuses == [S.COMPLETED, S.INTERRUPTED]
    report = (sweep / "report.md").read_text()
    assert "## Interrupted runs" in report and "1 completed, 0 failed, 1 interrupted" in report, report

    resumed = run_cli("train", *args, "resume=true", log_dir=logs)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [p.name for p in (logs / "train" / "multiruns").iterdir()] == [sweep.name]  # the same sweep continued
    statuses = [json.loads((sweep / job / S.FILENAME).read_text())[S.STATUS] for job in ("0", "1", "2")]
    assert statuses == [S.COMPLETED] * 3
    assert "## Interrupted runs" not in (sweep / "report.md").read_text()
