"""A sweep's jobs keep two checkpoints each by default: the best (by the monitored metric) and the last."""

from __future__ import annotations

import re

from tests.helpers import QUIET, run_cli


def test_each_job_keeps_best_and_last_only(tmp_path):
    args = [
        "-m",
        "optimizer=sgd,adam",
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=3",
        "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2",
        *QUIET,
    ]
    result = run_cli("train", *args, log_dir=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in tmp_path.glob("train/multiruns/*/*") if (p / "checkpoints").is_dir())
    assert len(jobs) == 2
    for job in jobs:
        names = sorted(p.name for p in (job / "checkpoints").iterdir())
        assert len(names) == 2 and names[1] == "last.ckpt", names
        assert re.fullmatch(r"epoch00[0-2]\.ckpt", names[0]), names
