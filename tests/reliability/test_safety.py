"""Nothing lost, nothing leaked: divergence, unsafe checkpoints, secrets, atomic summaries."""

from __future__ import annotations

import json
import os

import pytest
import torch

from nnopt import train
from nnopt.callbacks.divergence import TrainingDiverged
from nnopt.metrics import summary as S
from tests.helpers import ONE_EPOCH, cli_env, make_cfg, run_cli

FAST = ONE_EPOCH


def test_divergence_fails_the_run_with_its_step(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"at step \d+"):
        train.run(make_cfg(tmp_path, "optimizer=sgd", "optimizer.lr=1e8"))
    summary = json.loads((tmp_path / S.FILENAME).read_text())
    assert summary[S.STATUS] == S.FAILED
    assert isinstance(summary["failed_at_step"], int) and "diverged" in summary[S.ERROR]
    assert summary[S.TEST_ACC] is None  # no number from a diverged model


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_pickle_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "nnopt_config": {}, "payload": _Exploit(marker)}, evil)
    result = run_cli("eval", f"ckpt_path={evil}", log_dir=tmp_path / "logs")
    assert result.returncode == 2
    assert "is not a readable nnopt checkpoint" in result.stderr.splitlines()[-1]
    assert not marker.exists()
    resumed = run_cli("train", f"ckpt_path={evil}", *FAST, log_dir=tmp_path / "logs")
    assert resumed.returncode == 2 and not marker.exists()


@pytest.mark.slow
def test_secrets_never_reach_saved_files(tmp_path):
    secrets = {"WANDB_API_KEY": "a" * 40, "HF_TOKEN": "hf_topsecretvalue123", "AWS_SECRET_ACCESS_KEY": "awsSECRET987"}
    env = cli_env(**secrets)
    env.pop("WANDB_MODE")
    result = run_cli("train", "logger=many", *FAST, f"hydra.run.dir={tmp_path / 'run'}", log_dir=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert len(files) > 5
    for path in files:
        data = path.read_bytes()
        for value in secrets.values():
            assert value.encode() not in data, f"{value[:6]}... leaked into {path}"
    for value in secrets.values():
        assert value not in result.stdout + result.stderr


def test_summary_write_is_atomic(tmp_path, monkeypatch):
    S.write_summary(tmp_path, {**S.empty_summary(), S.STATUS: S.COMPLETED, S.TEST_ACC: 0.9})
    before = (tmp_path / S.FILENAME).read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        S.write_summary(tmp_path, {**S.empty_summary(), S.TEST_ACC: 0.1})
    assert (tmp_path / S.FILENAME).read_bytes() == before  # the old summary is intact
    assert [p.name for p in tmp_path.iterdir()] == [S.FILENAME]  # no temp file left behind


def test_older_schema_summary_is_rejected(tmp_path):
    (tmp_path / S.FILENAME).write_text(json.dumps({"status": "completed", "schema_version": 0}))
    with pytest.raises(S.SummaryError, match="schema_version=0"):
        S.read_summary(tmp_path)
    (tmp_path / S.FILENAME).write_text('{"status": "compl')  # half-written
    with pytest.raises(S.SummaryError, match="unreadable"):
        S.read_summary(tmp_path)
