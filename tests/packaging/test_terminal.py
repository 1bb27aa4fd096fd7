"""What a user sees in an 80-column terminal: no adverts, real FLOPs, a progress bar that fits, no repeated
warnings."""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from collections import Counter

from omegaconf import OmegaConf

from nnopt.cli import guard
from tests.helpers import CLI_TIMEOUT, ROOT, cli_env

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def run_in_terminal(args: list[str], columns: int = 80) -> tuple[int, list[str]]:
    """Run a command on a pseudo-terminal `columns` wide; returns (exit code, screen lines as drawn)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = cli_env(COLUMNS=str(columns), TERM="xterm-256color")
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    code = proc.wait(timeout=CLI_TIMEOUT)
    text = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))
    # a log record may follow the bar on its line (the bar leaves the cursor there): it starts a line of its own
    text = re.sub(r"(?=\[\d{4}-\d\d-\d\d \d\d:)", "\n", text)
    return code, [part for line in text.split("\n") for part in line.split("\r")]


def test_default_run_output_fits_80_columns(tmp_path):
    code, lines = run_in_terminal(
        [sys.executable, "-m", "nnopt.train", "debug=fast", "trainer.max_epochs=2", f"paths.log_dir={tmp_path}"]
    )
    assert code == 0, "\n".join(lines[-30:])
    screen = "\n".join(lines)
    assert "Tip:" not in screen and "litlogger" not in screen  # no third-party adverts
    # LeNet-300-100 MLP on 28x28 digits: 784*300 + 300*100 + 100*10 multiply-adds = 2 * 266.2 K FLOPs per sample
    assert "Total FLOPs: 532 K" in screen
    bars = [ln for ln in lines if ln.startswith("Epoch ")]
    assert any(re.search(r" loss: \d\.\d{3} val/acc: \d\.\d{3}$", ln.rstrip()) for ln in bars), bars
    assert not [ln for ln in lines if re.match(r" {20,}\S", ln)]  # no metrics wrapped onto continuation lines
    # the bar and the tables are drawn to fit (log records are single lines: the terminal wraps those)
    drawn = [ln.rstrip() for ln in lines if not ln.startswith("[")]
    assert max(map(len, drawn)) <= 80, max(drawn, key=len)
    warnings = Counter(ln for ln in lines if "Warning" in ln)
    assert all(n == 1 for n in warnings.values()), warnings


def test_every_job_process_gets_the_filters(monkeypatch):
    """Launcher workers (joblib, submitit) never run main(): the job wrapper sets the process up itself."""
    rank_zero = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    monkeypatch.setattr(rank_zero, "filters", [])
    tip = logging.LogRecord(rank_zero.name, logging.INFO, __file__, 1, "💡 Tip: try installing litlogger", None, None)
    assert rank_zero.filter(tip)  # nothing set up yet: the tip would print
    job_sees = guard.guarded(lambda cfg: rank_zero.filter(tip), OmegaConf.create({"paths": {"output_dir": "."}}))
    assert not job_sees
