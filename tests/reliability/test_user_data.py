"""Never delete or overwrite user data, through the real CLI.

- a bad-input run leaves a dir that existed before it exactly as it was (no rmtree, nothing added);
- a dir already holding a run (summary.json, checkpoints) is re-entered only with `resume=true`, also when an
  inherited NNOPT_RUN_STAMP points there;
- `task_name` and the run stamp (path components of the run dir) cannot place anything outside `paths.log_dir`.
Each: one line `nnopt: error: ...`, exit 2, no traceback, every earlier file byte-identical, nothing created.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.helpers import ONE_EPOCH, cli_env, run_cli

FAST = ONE_EPOCH


def snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` with its content hash ('dir' for folders): what 'nothing changed' compares."""
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


def refused(result, *words: str) -> str:
    """Exit 2, one `nnopt: error:` line containing `words`, no traceback; returns the line."""
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("nnopt: error: "), result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def world(tmp_path) -> Path:
    """tmp/a/b/logs is the log dir, so `..` twice still lands inside tmp (where the test can see it)."""
    (tmp_path / "a" / "b" / "logs").mkdir(parents=True)
    (tmp_path / "a" / "b" / "logs" / "keep.txt").write_text("earlier\n")
    return tmp_path


@pytest.mark.parametrize("name", ["../../escaped", "..", "sub/../../../escaped", "{abs}"])
def test_task_name_cannot_escape_log_dir(world, name):
    name = name.format(abs=world / "absolute")
    before = snapshot(world)
    result = run_cli("train", *FAST, f"task_name={name}", log_dir=world / "a" / "b" / "logs")
    refused(result, f"task_name={name!r}", "paths.log_dir")
    assert snapshot(world) == before


def test_run_stamp_cannot_escape_log_dir(world):
    before = snapshot(world)
    env = cli_env(NNOPT_RUN_STAMP="../../../escaped")
    result = run_cli("train", *FAST, log_dir=world / "a" / "b" / "logs", env=env)
    refused(result, "NNOPT_RUN_STAMP='../../../escaped'")
    assert snapshot(world) == before


def test_bad_input_leaves_an_existing_dir_as_it_was(tmp_path):
    mine = tmp_path / "mine"
    (mine / "notes").mkdir(parents=True)
    (mine / "notes" / "thesis.tex").write_text("years of work\n")
    (mine / "data.csv").write_text("1,2,3\n")
    before = snapshot(tmp_path)
    result = run_cli("train", *FAST, "optimizer.lr=-1", f"hydra.run.dir={mine}", log_dir=tmp_path / "logs")
    refused(result, "optimizer.lr=-1")
    assert snapshot(tmp_path) == before  # not removed, and nothing (.hydra, train.log, summary) added


def fake_run(folder: Path) -> None:
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "summary.json").write_text('{"status": "completed"}\n')
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"weights")


def test_run_dir_holding_a_run_needs_resume(tmp_path):
    old = tmp_path / "old"
    fake_run(old)
    before = snapshot(tmp_path)
    result = run_cli("train", *FAST, f"hydra.run.dir={old}", log_dir=tmp_path / "logs")
    refused(result, f"hydra.run.dir={old}", "already holds a run", "resume=true")
    assert snapshot(tmp_path) == before


def test_inherited_run_stamp_does_not_reuse_a_run(tmp_path):
    logs = tmp_path / "logs"
    fake_run(logs / "train" / "runs" / "stamp1")
    before = snapshot(tmp_path)
    result = run_cli("train", *FAST, log_dir=logs, env=cli_env(NNOPT_RUN_STAMP="stamp1"))
    refused(result, "already holds a run", "NNOPT_RUN_STAMP=stamp1")
    assert snapshot(tmp_path) == before


def test_inherited_run_stamp_does_not_reuse_a_sweep(tmp_path):
    logs = tmp_path / "logs"
    fake_run(logs / "train" / "multiruns" / "stamp1" / "0")
    before = snapshot(tmp_path)
    result = run_cli("train", "-m", "seed=1,2", *FAST, log_dir=logs, env=cli_env(NNOPT_RUN_STAMP="stamp1"))
    refused(result, "hydra.sweep.dir=", "already holds a run", "resume=true")
    assert snapshot(tmp_path) == before
