"""lightning-hydra-template's default job, run live in a subprocess for section 2 (`--template-dir`)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

from nnopt_bench.config import FASHION
from nnopt_bench.runner import Bench, compose_cfg

#: copied next to the template's run as `nnopt_template_timer.py`: it must import nothing from nnopt
TEMPLATE_TIMER = Path(__file__).resolve().parents[1] / "template_timer.py"


def template_data_dir(b: Bench) -> Path:
    """The bench's data as torchvision's MNIST raw files (uncompressed IDX under MNIST/raw/), so the template
    trains on the very images nnopt does, with no download."""
    raw = b.work / "template_data" / "MNIST" / "raw"
    if raw.is_dir():
        return raw.parents[1]
    raw.mkdir(parents=True)
    src = Path(str(compose_cfg(b.work / "bare", b.mode.data).data.get("dir") or FASHION))
    for stem in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        gz = src / f"{stem}.gz"
        data = gzip.decompress(gz.read_bytes()) if gz.is_file() else (src / stem).read_bytes()
        (raw / stem).write_bytes(data)
    return raw.parents[1]


def template_run(b: Bench, rep: int) -> list[dict[str, float]]:
    """One run of the template's default job (`python src/train.py`) in a subprocess, timed per epoch by
    `nnopt_bench/template_timer.py` (copied next to it); the same threads as every other variant."""
    assert b.template_dir is not None
    timer_dir = b.work / "template_timer"
    timer_dir.mkdir(exist_ok=True)
    shutil.copy(TEMPLATE_TIMER, timer_dir / "nnopt_template_timer.py")
    times = b.work / f"template_times_{rep}.json"
    args = [
        f"data.data_dir={template_data_dir(b)}",
        f"trainer.max_epochs={b.mode.epochs}",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "test=False",
        "seed=42",
        f"hydra.run.dir={b.work / f'template_run_{rep}'}",
        "+callbacks.nnopt_timer._target_=nnopt_template_timer.EpochTimer",
        f"+callbacks.nnopt_timer.path={times}",
    ]
    if b.mode.max_batches:
        args.append(f"++trainer.limit_train_batches={b.mode.max_batches}")
    cmd = [b.template_python, "src/train.py", *args]
    b.template_command = " ".join(["python src/train.py", *args[1:5], "(+ an epoch timer)"])
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(b.threads),
        MKL_NUM_THREADS=str(b.threads),
        PYTHONPATH=os.pathsep.join([str(timer_dir), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    proc = subprocess.run(cmd, cwd=b.template_dir, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0 or not times.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"template run failed (exit {proc.returncode}): {tail}")
    return json.loads(times.read_text())
