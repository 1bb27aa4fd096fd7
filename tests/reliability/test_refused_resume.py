"""A refused `resume=true` changes nothing in the run dir it was pointed at: the completed run's summary, Hydra's
config copies and its log stay byte-identical, whichever check refuses it (a bad value, another optimizer, a
truncated last.ckpt), and the refusal is one line with exit 2."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.helpers import ONE_EPOCH, run_cli


def tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def completed(tmp_path_factory) -> tuple[Path, Path]:
    logs = tmp_path_factory.mktemp("refused_resume")
    run_dir = logs / "train" / "runs" / "done"
    result = run_cli("train", *ONE_EPOCH, "model.hidden=[8]", f"hydra.run.dir={run_dir}", log_dir=logs)
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"status": "completed"' in (run_dir / "summary.json").read_text()
    return logs, run_dir


def _truncate_last(run_dir: Path) -> None:
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:200])


@pytest.mark.parametrize(
    ("override", "prepare", "named"),
    [
        ("optimizer.lr=-1", None, "optimizer.lr=-1"),
        ("optimizer=sgd", None, "optimizer"),
        (None, _truncate_last, "last.ckpt"),
    ],
    ids=["bad value", "another optimizer", "truncated last.ckpt"],
)
def test_a_refused_resume_leaves_the_run_dir_byte_identical(completed, override, prepare, named) -> None:
    logs, run_dir = completed
    if prepare is not None:
        prepare(run_dir)
    before = tree(run_dir)
    args = [
        *ONE_EPOCH,
        "model.hidden=[8]",
        f"hydra.run.dir={run_dir}",
        "resume=true",
        *([override] if override else []),
    ]
    result = run_cli("train", *args, log_dir=logs)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("nnopt: error: ") and named in lines[0]
    assert tree(run_dir) == before
