"""The bad-input battery: every bad value ends in one readable line, a non-zero exit, and nothing else changed.

Entry points run in-process (same `main()` as the console scripts) so ~40 cases take seconds, not minutes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra

from nnopt import eval as nnopt_eval
from nnopt import train
from nnopt.cli.precheck import precheck
from nnopt.config import resolvers
from nnopt.metrics import summary as S
from tests.helpers import ONE_EPOCH, listed_options
from tests.helpers.data import write_idx, write_mnist_dir

FAST = ONE_EPOCH


def invoke(main, args: list[str], monkeypatch, capfd) -> tuple[int, str]:
    """Run a console entry point in-process; returns (exit code, stderr)."""
    GlobalHydra.instance().clear()
    monkeypatch.delenv(resolvers.STAMP_ENV, raising=False)
    monkeypatch.setattr(sys, "argv", ["nnopt", *args])
    capfd.readouterr()
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        GlobalHydra.instance().clear()
    return code, capfd.readouterr().err


def snapshot(root: Path) -> dict[str, str]:
    files = (p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A log dir holding one completed run (summary + checkpoints), and data files of every kind of defect."""
    root = tmp_path_factory.mktemp("battery")
    logs = root / "logs"
    GlobalHydra.instance().clear()
    from tests.helpers import make_cfg

    good = train.run(make_cfg(logs / "train" / "runs" / "good", "trainer.max_epochs=1"))
    assert good[S.STATUS] == S.COMPLETED
    other = train.run(make_cfg(root / "other", "trainer.max_epochs=1", "model.hidden=[32]"))
    data = root / "data"
    dirs = {}
    for name in ("corrupt", "truncated", "magic", "mismatch", "empty"):
        dirs[name] = write_mnist_dir(data / name)
    (dirs["corrupt"] / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    raw = (dirs["truncated"] / "t10k-images-idx3-ubyte.gz").read_bytes()
    full = gzip.decompress(raw)
    (dirs["truncated"] / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(full[:-100]))
    (dirs["magic"] / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x08\x03\x00\x01" + full[4:]))
    write_idx(dirs["mismatch"] / "t10k-labels-idx1-ubyte.gz", np.zeros(7))
    write_idx(dirs["empty"] / "t10k-images-idx3-ubyte.gz", np.zeros((0, 28, 28)))
    write_idx(dirs["empty"] / "t10k-labels-idx1-ubyte.gz", np.zeros(0))
    for name in ("labels", "nan", "shape", "overflow", "bomb"):
        dirs[name] = write_mnist_dir(data / name)
    labels = np.arange(60) % 10
    labels[17] = 200
    write_idx(dirs["labels"] / "train-labels-idx1-ubyte.gz", labels)
    images = np.zeros((60, 28, 28), dtype=">f4")
    images[3, 4, 5] = np.nan
    header = struct.pack(">BBBB", 0, 0, 0x0D, 3) + struct.pack(">3I", *images.shape)
    (dirs["nan"] / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.tobytes()))
    write_idx(dirs["shape"] / "t10k-images-idx3-ubyte.gz", np.zeros((20, 32, 32)))
    huge = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", 2**21, 2**21, 2**22)  # 2^64 bytes: 0 in int64
    (dirs["overflow"] / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(huge))
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)  # header says 20 images, the body inflates to 64 MB
    body = [bomb.compress(struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", 20, 28, 28))]
    body += [bomb.compress(bytes(1 << 22)) for _ in range(16)]
    (dirs["bomb"] / "t10k-images-idx3-ubyte.gz").write_bytes(b"".join([*body, bomb.flush()]))
    for name in ("nanlabels", "fraclabels", "ndim"):
        dirs[name] = write_mnist_dir(data / name)
    float_labels = (np.arange(60) % 10).astype(">f4")
    float_labels[7] = np.nan
    label_header = struct.pack(">BBBB", 0, 0, 0x0D, 1) + struct.pack(">I", 60)
    (dirs["nanlabels"] / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(label_header + float_labels.tobytes()))
    halves = (np.arange(60) % 10 + 0.5).astype(">f4")
    (dirs["fraclabels"] / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(label_header + halves.tobytes()))
    dims = struct.pack(">BBBB", 0, 0, 0x08, 255) + struct.pack(">255I", *([1] * 255))
    (dirs["ndim"] / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(dims + b"\x00"))
    conf = root / "conf"
    (conf / "optimizer").mkdir(parents=True)
    (conf / "optimizer" / "tabbed.yaml").write_text("lr: 0.1\n\tmomentum: 0.9\n")  # a tab cannot start a YAML token
    text = root / "notes.ckpt"
    text.write_text("this is not a checkpoint")
    return {"root": root, "logs": logs, "dirs": dirs, "conf": conf, "good": good, "other": other, "text": text}


# (entry point, arguments, text the one error line must contain); {placeholders} are filled from `world`
CASES = [
    ("train", ["optimizer=foo"], "unknown optimizer option 'foo'; choose one of: "),
    ("train", ["model=resnet50"], "unknown model option 'resnet50'; choose one of: "),
    ("train", ["data=cifar10"], "unknown data option 'cifar10'; choose one of: "),
    ("train", ["trainer=tpu"], "unknown trainer option 'tpu'"),
    ("train", ["logger=mlflowx"], "unknown logger option 'mlflowx'"),
    ("train", ["callbacks=fancy"], "unknown callbacks option 'fancy'"),
    ("train", ["experiment=nope"], "unknown experiment option 'nope'"),
    ("train", ["debug=slow"], "unknown debug option 'slow'"),
    ("train", ["schedule=zigzag"], "unknown schedule option 'zigzag'"),
    ("train", ["compression=zip"], "unknown compression option 'zip'"),
    ("train", ["nosuchkey=1"], "Could not override 'nosuchkey'"),
    ("train", ["optimizer.lr=-1"], "optimizer.lr=-1 is out of range; allowed: a number > 0.0"),
    ("train", ["optimizer.lr=0"], "optimizer.lr=0 is out of range"),
    ("train", ["optimizer.lr=fast"], "optimizer.lr='fast' has the wrong type; expected a number"),
    ("train", ["optimizer.weight_decay=-0.1"], "optimizer.weight_decay=-0.1 is out of range"),
    ("train", ["optimizer=momentum", "optimizer.momentum=1.5"], "optimizer.momentum=1.5 is out of range"),
    ("train", ["optimizer.betas=[0.9,1.2]"], "optimizer.betas[1]=1.2 is out of range"),
    ("train", ["data.batch_size=0"], "data.batch_size=0 is out of range; allowed: an integer > 0"),
    ("train", ["data.batch_size=-1"], "data.batch_size=-1 is out of range"),
    ("train", ["data.batch_size=3.5"], "data.batch_size=3.5 has the wrong type; expected an integer"),
    ("train", ["data.val_fraction=1.0"], "data.val_fraction=1.0 is out of range"),
    ("train", ["trainer.max_epochs=0"], "trainer.max_epochs=0 is out of range"),
    ("train", ["trainer.precision=8"], "trainer.precision=8 is not allowed; choose one of"),
    ("train", ["trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches=0 is out of range"),
    ("train", ["model.dropout=1.0"], "model.dropout=1.0 is out of range"),
    ("train", ["model.hidden=[0]"], "model.hidden[0]=0 is invalid; expected positive integers"),
    ("train", ["model=lenet5", "data.size=8"], "model=lenet5 cannot take inputs of shape (1, 8, 8)"),
    ("train", ["seed=-1"], "seed=-1 is out of range"),
    ("train", ["label_smoothing=2"], "label_smoothing=2 is out of range"),
    ("train", ["test_ckpt=worst"], "test_ckpt='worst' is not allowed; choose one of: best, last"),
    ("train", ["data=fashion_mnist", "data.dir=/no/such/dir"], "data.dir=/no/such/dir does not exist"),
    ("train", ["data=mnist", "data.dir={dirs[corrupt]}"], "train-images-idx3-ubyte.gz: cannot read"),
    ("train", ["data=mnist", "data.dir={dirs[truncated]}"], "t10k-images-idx3-ubyte.gz: truncated or padded"),
    ("train", ["data=mnist", "data.dir={dirs[magic]}"], "train-labels-idx1-ubyte.gz: not an IDX file"),
    ("train", ["data=mnist", "data.dir={dirs[mismatch]}"], "test split: 20 images but 7 labels"),
    ("train", ["data=mnist", "data.dir={dirs[empty]}"], "test split is empty"),
    ("train", ["data=synthetic", "data.num_samples=0"], "data.num_samples=0 is out of range"),
    ("train", ["ckpt_path=/no/such.ckpt"], "ckpt_path=/no/such.ckpt does not exist"),
    ("train", ["ckpt_path={text}"], "is not a readable nnopt checkpoint"),
    ("train", ["ckpt_path={other[ckpt/last]}"], "trained with model.hidden=[32], this run has model.hidden=[300, 100]"),
    ("train", ["schedule=warmup_cosine", "schedule.warmup=500"], "schedule.warmup=500 gives 500 warm-up steps"),
    ("train", ["schedule=plateau", "schedule.monitor=val/auc"], "schedule.monitor='val/auc' is never logged"),
    ("train", ["callbacks.grad_clip.enabled=true", "callbacks.grad_clip.max_norm=0"], "max_norm=0 is out of range"),
    ("train", ["compression=prune", "compression.sparsity=1.0"], "compression.sparsity=1.0 is out of range"),
    ("train", ["compression=qat", "compression.start_epoch=99"], "compression.start_epoch=99 is not before"),
    ("train", ["compression=distill", "compression.teacher_ckpt=/no/t.ckpt"], "teacher_ckpt=/no/t.ckpt does not exist"),
    ("train", ["trainer=ddp_cpu", "trainer.devices=1"], "trainer.strategy=ddp with trainer.devices=1"),
    ("train", ["trainer=gpu"], "no CUDA GPUs are visible here"),
    ("train", ["trainer=cpu", "trainer.devices=64"], "trainer.devices=64"),
    ("train", ["optimizer=lbfgs", "trainer=ddp_cpu"], "optimizer=lbfgs cannot train on several processes"),
    ("train", ["optimizer=lbfgs", "trainer.fused_steps=4"], "trainer.fused_steps=4 cannot run optimizer=lbfgs"),
    # data checks before training
    ("train", ["data=mnist", "data.dir={dirs[labels]}"], "train-labels-idx1-ubyte.gz: label 200 is outside [0, 10)"),
    ("train", ["data.num_classes=5"], "data.name=digits: train split: label 9 is outside [0, 5)"),
    ("train", ["data=mnist", "data.dir={dirs[nan]}"], "train split: 1 samples have NaN/Inf inputs (first: sample"),
    ("train", ["data=mnist", "data.dir={dirs[shape]}"], "test inputs have shape (1, 32, 32) per sample but train"),
    ("train", ["data=mnist", "data.dir={dirs[overflow]}"], "(18446744073709551616 bytes), more than this"),
    ("train", ["data=mnist", "data.dir={dirs[bomb]}"], "truncated or padded: header says shape (20, 28, 28)"),
    # config checks before building
    ("train", ["+trainer.max_steps=0"], "trainer.max_steps=0 is out of range; allowed: -1 (no limit) or an integer"),
    ("train", ["+trainer.max_steps=-2"], "trainer.max_steps=-2 is out of range"),
    ("train", ["+trainer.val_check_interval=1.5"], "val_check_interval=1.5 is out of range; allowed: a fraction"),
    ("train", ["+trainer.val_check_interval=0"], "trainer.val_check_interval=0 is out of range"),
    ("train", ["trainer.limit_train_batches=1.5"], "trainer.limit_train_batches=1.5 is out of range"),
    ("train", ["trainer.limit_val_batches=-1"], "trainer.limit_val_batches=-1 is out of range"),
    ("train", ["trainer.limit_test_batches=2.0"], "trainer.limit_test_batches=2.0 is out of range"),
    ("train", ["+trainer.limit_predict_batches=0"], "trainer.limit_predict_batches=0 is out of range"),
    ("train", ["trainer.overfit_batches=-1"], "trainer.overfit_batches=-1 is out of range"),
    ("train", ["trainer=cpu", "trainer.devices=[0,0]"], "trainer.devices=[0, 0] lists device 0 twice"),
    ("train", ["callbacks.model_checkpoint.monitor=val/auc"], "callbacks.model_checkpoint.monitor='val/auc' is never"),
    ("train", ["callbacks.early_stopping.monitor=val_acc"], "callbacks.early_stopping.monitor='val_acc' is never"),
    ("train", ["seed=4294967296"], "seed=4294967296 is out of range; allowed: an integer >= 0 and <= 4294967295"),
    ("train", ["optimizer.betas=[0.9]"], "optimizer.betas=[0.9] must have exactly 2 values"),
    ("train", ["optimizer.betas=[0.9,0.99,0.999]"], "optimizer.betas=[0.9, 0.99, 0.999] must have exactly 2 values"),
    ("train", ["callbacks.lr_finder.enabled=true"], "callbacks.lr_finder.num_training_steps=100 exceeds this run's 2"),
    ("train", ["hydra.run.dir=/proc/nnopt"], "hydra.run.dir=/proc/nnopt cannot be created"),
    ("train", ["hydra.run.dir={text}/run"], "notes.ckpt is not a directory"),
    ("train", ["-m", "hydra.sweep.dir=/proc/nnopt", "seed=1,2"], "hydra.sweep.dir=/proc/nnopt cannot be created"),
    ("train", ["hparams_search=digits_tpe", "hydra.sweep.dir=/proc/tpe"], "sweep.dir=/proc/tpe cannot be created"),
    # every other bounded schema value (test_every_bounded_schema_key_has_a_case keeps this list complete)
    ("train", ["l1=-1"], "l1=-1 is out of range"),
    ("train", ["data.eval_batch_size=0"], "data.eval_batch_size=0 is out of range"),
    ("train", ["data.test_fraction=1.0"], "data.test_fraction=1.0 is out of range"),
    ("train", ["data.size=2"], "data.size=2 is out of range; allowed: an integer >= 4 and <= 512"),
    ("train", ["data.split_seed=-1"], "data.split_seed=-1 is out of range"),
    ("train", ["data=synthetic", "data.num_classes=1"], "data.num_classes=1 is out of range"),
    ("train", ["data=synthetic", "data.shape=[1,0,28]"], "data.shape[1]=0 is out of range"),
    ("train", ["data=synthetic", "data.noise=-1"], "data.noise=-1 is out of range"),
    ("train", ["model=cnn", "model.channels=[0,64]"], "model.channels[0]=0 is out of range"),
    ("train", ["optimizer.eps=0"], "optimizer.eps=0 is out of range"),
    ("train", ["optimizer=rmsprop", "optimizer.alpha=1.0"], "optimizer.alpha=1.0 is out of range"),
    ("train", ["optimizer=adagrad", "optimizer.lr_decay=-1"], "optimizer.lr_decay=-1 is out of range"),
    ("train", ["trainer.accelerator=tpu"], "trainer.accelerator='tpu' is not allowed; choose one of: auto, cpu"),
    ("train", ["trainer.min_epochs=-1"], "trainer.min_epochs=-1 is out of range"),
    ("train", ["trainer.gradient_clip_val=0"], "trainer.gradient_clip_val=0 is out of range"),
    ("train", ["trainer.check_val_every_n_epoch=0"], "trainer.check_val_every_n_epoch=0 is out of range"),
    ("train", ["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps=0 is out of range"),
    ("train", ["trainer.num_nodes=0"], "trainer.num_nodes=0 is out of range"),
    # issue 23: values that used to end in a traceback, exit 1, or a silent wrong value
    ("train", ["trainer.limit_val_batches=0"], "limit_val_batches=0: validation is off, but callbacks.model"),
    ("train", ["task_name=" + "x" * 300], "(300 characters) is not allowed; allowed: a plain name of at most 200"),
    ("train", ["hydra.run.dir={root}/" + "y" * 300], "cannot be created (File name too long)"),
    ("train", ["efficiency.latency_repeats=0"], "latency_repeats=0 is out of range; allowed: an integer >= 1"),
    ("train", ["efficiency.latency_repeats=-3"], "efficiency.latency_repeats=-3 is out of range"),
    ("train", ["efficiency.latency_warmup=-1"], "latency_warmup=-1 is out of range; allowed: an integer >= 0"),
    ("train", ["callbacks.model_checkpoint.save_top_k=-5"], "save_top_k=-5 is out of range; allowed: -1 (every"),
    ("train", ["tags=5"], "tags=5 must be a list of strings"),
    ("train", ["tags=[ok,3]"], "tags[1]=3 has the wrong type; expected a string"),
    ("train", ["secrets.redact=MY_VAR"], "secrets.redact='MY_VAR' must be a list of strings"),
    ("train", ["data=mnist", "data.dir={dirs[labels]}", "data.max_gb=0.0001"], "more than data.max_gb=0.0001"),
    ("train", ["data.max_gb=0"], "data.max_gb=0 is out of range"),
    ("train", ["data=mnist", "data.dir={dirs[nanlabels]}"], "label NaN (sample 7) is not a number"),
    ("train", ["data=mnist", "data.dir={dirs[fraclabels]}"], "label 0.5 (sample 0) is not an integer (60 such"),
    ("train", ["data=mnist", "data.dir={dirs[ndim]}"], "header declares 255 dimensions; allowed: 1 to 4"),
    ("train", ["hydra.searchpath=[file:///no/such/conf]"], "entry 'file:///no/such/conf': no such directory"),
    ("train", ["hydra.searchpath=[pkg://no_such_pkg.conf]"], "entry 'pkg://no_such_pkg.conf': no such package"),
    ("train", ["hydra.searchpath=[file://{conf}]", "optimizer=tabbed"], "tabbed.yaml: not valid YAML (line 2, column"),
    ("eval", ["ckpt_path={good[ckpt/best]}", "efficiency.latency_repeats=0"], "efficiency.latency_repeats=0 is out"),
    ("eval", ["ckpt_path=/no/such.ckpt"], "ckpt_path=/no/such.ckpt does not exist"),
    ("eval", ["ckpt_path={text}"], "is not a readable nnopt checkpoint"),
    ("eval", [], "ckpt_path is required"),
]


@pytest.mark.parametrize(("entry", "args", "expected"), CASES, ids=[" ".join(c[1]) or c[0] for c in CASES])
def test_bad_input(world, entry, args, expected, monkeypatch, capfd):
    before = snapshot(world["logs"])
    args = [a.format(**world) for a in args]
    main = train.main if entry == "train" else nnopt_eval.main
    fast = FAST if entry == "train" else ["efficiency.latency_repeats=1"]
    code, err = invoke(main, [*fast, *args, f"paths.log_dir={world['logs']}"], monkeypatch, capfd)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err[-2000:]
    assert lines and lines[-1].startswith("nnopt: error: "), err[-2000:]
    assert expected in lines[-1], lines[-1]
    assert "Traceback" not in err
    after = snapshot(world["logs"])
    assert {k: after.get(k) for k in before} == before, "a bad input changed earlier runs' files"
    for name in set(after) - set(before):  # a run rejected after start-up may keep its failed summary
        if name.endswith(S.FILENAME):
            assert json.loads((world["logs"] / name).read_text())[S.STATUS] == S.FAILED
    summary = json.loads((world["logs"] / "train" / "runs" / "good" / S.FILENAME).read_text())
    assert summary[S.STATUS] == S.COMPLETED


def _bounded_schema_keys() -> set[str]:
    """Every config key whose schema gives a range or a list of choices (what a bad value can violate)."""
    from dataclasses import fields

    from nnopt.config.schema import CHECKED_KEYS, GROUP_SCHEMAS, RootSchema
    from nnopt.rundir import COMPONENT_KEYS

    keys = set(CHECKED_KEYS) | set(COMPONENT_KEYS)  # bounded by validate()'s own checks, by the run-dir checks
    for prefix, schema in [("", RootSchema), *GROUP_SCHEMAS.items()]:
        for f in fields(schema):
            meta = f.metadata
            if meta["each"] or any(meta[k] is not None for k in ("gt", "ge", "lt", "le", "choices")):
                keys.add(f"{prefix}.{f.name}" if prefix else f.name)  # `each`: a non-list is a bad value
    return keys


def test_every_bounded_schema_key_has_a_case():
    """A new range in the schema needs a battery case proving its bad value ends in one line."""
    covered = {arg.split("=", 1)[0].lstrip("+~") for _, args, _ in CASES for arg in args if "=" in arg}
    assert sorted(_bounded_schema_keys() - covered) == []


@pytest.mark.parametrize(
    ("group", "required"),
    [
        ("optimizer", {"sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad", "gd", "lbfgs"}),
        ("model", {"mlp", "lenet5", "cnn"}),
        ("data", {"digits", "fashion_mnist", "mnist", "synthetic", "breast_cancer", "diabetes"}),
    ],
)
def test_an_unknown_option_lists_at_least_the_built_in_ones(group, required, monkeypatch, capsys):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)  # it skips the pre-check
    with pytest.raises(SystemExit):
        precheck([f"{group}=nosuch"], "train")
    [line] = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert line.startswith(f"nnopt: error: unknown {group} option 'nosuch'; choose one of: ")
    assert required <= listed_options(line)  # a superset: adding an option breaks nothing


def test_cases_check_distinct_messages():
    """Two cases expecting the same text prove one check twice (or a copy-paste slip)."""
    expected = [(entry, text) for entry, _, text in CASES]
    assert sorted(t for t in set(expected) if expected.count(t) > 1) == []


def test_report_bad_inputs_are_one_line(tmp_path, capfd):
    from nnopt.report.cli import main as report_main

    empty = tmp_path / "empty"
    empty.mkdir()
    assert report_main([str(empty)]) == 2
    assert capfd.readouterr().err.strip().endswith("no job finished yet)")
    assert report_main([str(tmp_path / "missing")]) == 2
    assert len([ln for ln in capfd.readouterr().err.splitlines() if ln.strip()]) == 1
    assert not list(tmp_path.rglob("report.*"))


@pytest.mark.parametrize("task_name", ["${oc.env:MY_TOKEN}", "${oc.env:MY_TOKEN},plain"])
def test_a_secret_never_becomes_a_sweep_job_dir(world, task_name, tmp_path, monkeypatch, capfd):
    """Not only the default run dir: a job subdir template naming task_name (swept values too) is refused before
    Hydra makes any dir."""
    monkeypatch.setenv("MY_TOKEN", "tok-9f3e1c7a")
    sweep = tmp_path / "sweep"
    args = ["-m", *FAST, f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${task_name}", f"task_name={task_name}"]
    code, err = invoke(train.main, [*args, f"paths.log_dir={world['logs']}"], monkeypatch, capfd)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err[-2000:]
    assert lines[-1] == (
        "nnopt: error: hydra.sweep.subdir would put the value of $MY_TOKEN into a directory name; "
        "use a name that is no secret"
    ), err[-2000:]
    assert [p for p in tmp_path.rglob("*") if "tok-9f3e1c7a" in str(p)] == []
    assert not sweep.exists()
