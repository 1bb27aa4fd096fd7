"""The console entry points as a user meets them: help, config printing, clean one-line errors, W&B offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nnopt.config import resolvers
from nnopt.metrics import summary as S
from tests.helpers import CLI_TIMEOUT, QUIET, ROOT, cli_env, run_cli
from tests.helpers.data import write_mnist_dir

FAST = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", *QUIET]


def test_help_and_cfg_job(tmp_path):
    helped = run_cli("train", "--help", log_dir=tmp_path)
    assert helped.returncode == 0
    # the listed options are a superset of the built-in ones: adding an optimizer must not break this test
    [listed] = [line for line in helped.stdout.splitlines() if line.strip().startswith("optimizer: ")]
    options = set(listed.split(":", 1)[1].replace(" ", "").split(","))
    assert {"adagrad", "adam", "adamw", "momentum", "nesterov", "rmsprop", "sgd"} <= options, listed
    printed = run_cli("train", "--cfg", "job", "optimizer=sgd", "optimizer.lr=0.3", log_dir=tmp_path)
    assert printed.returncode == 0
    assert "_target_: torch.optim.SGD" in printed.stdout and "lr: 0.3" in printed.stdout
    assert not (tmp_path / "train").exists()  # printing the config runs nothing


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["optimizer=foo"], "unknown optimizer option 'foo'; choose one of: "),
        (["-m", "optimizer=adam,foo"], "unknown optimizer option 'foo'"),
        (["nosuchkey=1"], "Could not override 'nosuchkey'"),
        (["optimizer.lr=-1"], "optimizer.lr=-1 is out of range; allowed: a number > 0.0"),
        (["data.batch_size=-4"], "data.batch_size=-4 is out of range"),
        (["data=fashion_mnist", "data.dir=/no/such/dir"], "data.dir=/no/such/dir does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(tmp_path, args, expected):
    result = run_cli("train", *args, *FAST, log_dir=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("nnopt: error: ") and expected in lines[-1]
    assert "Traceback" not in result.stderr + result.stdout
    assert not list(tmp_path.rglob(S.FILENAME))  # no run dir left claiming anything
    assert not list(tmp_path.rglob("*.ckpt"))


def test_corrupt_idx_file_via_cli(tmp_path):
    folder = write_mnist_dir(tmp_path / "mnist")
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8bnot really gzip")
    result = run_cli("train", "data=mnist", f"data.dir={folder}", *FAST, log_dir=tmp_path / "logs")
    assert result.returncode == 2
    assert "train-images-idx3-ubyte.gz: cannot read" in result.stderr.splitlines()[-1]


def test_module_entry_point_and_eval_cli(tmp_path):
    trained = run_cli("train", *FAST, "hydra.run.dir=" + str(tmp_path / "run"), log_dir=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / S.FILENAME).read_text())
    evaluated = run_cli(
        "eval", f"ckpt_path={summary['ckpt/last']}", "hydra.run.dir=" + str(tmp_path / "ev"), log_dir=tmp_path
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    ev = json.loads((tmp_path / "ev" / S.FILENAME).read_text())
    assert ev[S.STATUS] == S.COMPLETED and ev["evaluated_ckpt"] == summary["ckpt/last"]
    bad = run_cli("eval", "ckpt_path=" + str(tmp_path / "run" / S.FILENAME), log_dir=tmp_path)
    assert bad.returncode == 2 and "is not a readable nnopt checkpoint" in bad.stderr.splitlines()[-1]


def test_wandb_offline_run_has_config_and_metrics(tmp_path):
    env = cli_env(HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")  # any network use would fail
    env.pop("WANDB_MODE")  # nnopt itself must choose offline
    args = ["logger=wandb", *FAST, "trainer.log_every_n_steps=1", "hydra.run.dir=" + str(tmp_path / "run")]
    result = run_cli("train", *args, log_dir=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    from wandb.proto import wandb_internal_pb2

    kinds, history_keys, config_keys = set(), set(), set()
    for data in wandb_records(runs[0].read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        kinds.add(record.WhichOneof("record_type"))
        if record.HasField("history"):
            history_keys |= {item.key or "/".join(item.nested_key) for item in record.history.item}
        if record.HasField("config"):
            config_keys |= {item.key for item in record.config.update}
    assert {"run", "history", "config"} <= kinds
    assert {"val/acc", "train/loss"} <= history_keys, (kinds, history_keys)
    assert {"model", "optimizer", "data"} <= config_keys
    debug = (tmp_path / "run" / "wandb" / "debug-internal.log").read_text()
    assert "api.wandb.ai" not in debug


def wandb_records(raw: bytes):
    """Records of a W&B transaction log: a 7-byte W&B header, then LevelDB log blocks of 32 KiB."""
    assert raw[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(raw):
        if block - pos % block < 7:  # block trailer padding
            pos += block - pos % block
            continue
        length = int.from_bytes(raw[pos + 4 : pos + 6], "little")
        kind = raw[pos + 6]
        chunk = raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:  # FULL
            yield chunk
        elif kind == 2:  # FIRST
            pending = chunk
        elif kind == 3:  # MIDDLE
            pending += chunk
        elif kind == 4:  # LAST
            yield pending + chunk
        else:
            break


def test_run_stamps_never_collide(monkeypatch):
    stamps = set()
    for _ in range(50):
        monkeypatch.delenv(resolvers.STAMP_ENV, raising=False)
        stamps.add(resolvers.run_stamp())
    assert len(stamps) == 50
    assert resolvers.run_stamp() == os.environ[resolvers.STAMP_ENV]  # fixed within one process tree


def test_two_runs_started_together_get_their_own_dirs(tmp_path):
    cmd = [sys.executable, "-m", "nnopt.train", f"paths.log_dir={tmp_path}", *FAST, "test=false"]
    procs = [
        subprocess.Popen(cmd, env=cli_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    assert all(p.wait(timeout=CLI_TIMEOUT) == 0 for p in procs)
    summaries = list((tmp_path / "train" / "runs").glob(f"*/{S.FILENAME}"))
    assert len(summaries) == 2
