"""An honest IDX header can still ask for more memory than there is: refused from the header, and a load that fits
keeps compact dtypes until the float32 tensors are made (peak RSS measured in a subprocess)."""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib

import numpy as np
import pytest

from nnopt.data import memory
from nnopt.data.idx import IDX_FILES, IDXDataModule
from nnopt.errors import DataError
from tests.helpers import CLI_TIMEOUT, ROOT, cli_env
from tests.helpers.data import write_idx, write_mnist_dir

IMAGES = IDX_FILES["x_train"] + ".gz"


def _honest_zeros(path, n: int) -> int:
    """A gzip IDX file of `n` 28x28 zero images whose header is true; small on disk, written as a stream."""
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    body = n * 28 * 28
    chunk = bytes(1 << 22)
    with path.open("wb") as fh:
        fh.write(comp.compress(struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", n, 28, 28)))
        for _ in range(body // len(chunk)):
            fh.write(comp.compress(chunk))
        fh.write(comp.compress(bytes(body % len(chunk))))
        fh.write(comp.flush())
    return body


def _need(n_train: int, n_test: int) -> int:
    """Memory a load of uint8 28x28 images and uint8 labels needs: the decoded files, then float32 images and int64
    labels beside them."""
    n = n_train + n_test
    return n * 28 * 28 * (1 + 4) + n * (1 + 8)


def test_a_data_set_larger_than_the_available_memory_is_refused_before_inflating(tmp_path, monkeypatch):
    folder = write_mnist_dir(tmp_path / "m")
    n = 342_000  # 268 MB of uint8 pixels, ~1.1 GB as float32: the header is honest, the gzip file ~1.3 MB
    _honest_zeros(folder / IMAGES, n)
    write_idx(folder / (IDX_FILES["y_train"] + ".gz"), np.arange(n) % 10)
    monkeypatch.setattr(memory, "available_memory", lambda: 200 * 10**6)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(DataError) as info:
            IDXDataModule(dir=str(folder), name="mnist").prepare()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert f"{folder / IMAGES}: header declares shape ({n}, 28, 28)" in message, message
    assert f"needs {_need(n, 20) / 1e9:.3g} GB in memory" in message, message
    assert "more than the 0.2 GB of memory available" in message, message
    assert peak < 16 << 20, f"the refusal allocated {peak >> 20} MB: it inflated the file"
    assert time.perf_counter() - start < 5


def test_data_max_gb_refuses_a_data_set_that_needs_more(tmp_path):
    folder = write_mnist_dir(tmp_path / "m", n_train=600, n_test=200)
    need = _need(600, 200)
    with pytest.raises(DataError) as info:
        IDXDataModule(dir=str(folder), name="mnist", max_gb=need / 1e9 * 0.9).prepare()
    message = str(info.value)
    assert f"{folder / IMAGES}: header declares shape (600, 28, 28)" in message, message
    assert f"needs {need / 1e9:.3g} GB in memory" in message, message
    assert f"more than data.max_gb={need / 1e9 * 0.9}" in message, message
    dm = IDXDataModule(dir=str(folder), name="mnist", max_gb=need / 1e9 * 1.1, val_fraction=0.0)
    dm.prepare()
    assert dm.split_sizes() == {"train": 600, "val": 0, "test": 200}


_MEASURE = """
import json, os, resource, sys
import torch
from nnopt.data.idx import IDXDataModule
def max_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
IDXDataModule(dir=sys.argv[2], name="warm-up").prepare()  # the code the load runs is resident before it is measured
dm = IDXDataModule(dir=sys.argv[1], name="fashion_mnist", val_fraction=0.0833, on_device=False)
# the high-water mark so far, not the current RSS: on a loaded machine pages of the baseline may be out when it is
# read and come back during the load, which would count them as the load's
before = max_rss()
dm.prepare()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
tensors = sum(x.nbytes + y.nbytes for x, y in dm.tensors.values())
print(json.dumps({"before": before, "peak": peak, "tensors": tensors, "dtype": str(dm.tensors["train"][0].dtype)}))
"""


def test_peak_memory_of_a_fashion_mnist_sized_load(tmp_path):
    """60k + 10k 28x28 images: decoding keeps uint8 and copies little, so the load peaks near the float32 tensors
    it trains on (it used to hold the raw bytes, a float32 copy of everything and float32 copies of the splits)."""
    folder = tmp_path / "fm"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for key, shape in (("x_train", (60_000, 28, 28)), ("x_test", (10_000, 28, 28))):
        pixels = rng.integers(0, 256, (64, 28, 28), dtype=np.uint8)[np.arange(shape[0]) % 64]
        header = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", *shape)
        (folder / f"{IDX_FILES[key]}.gz").write_bytes(gzip.compress(header + pixels.tobytes(), compresslevel=1))
    write_idx(folder / f"{IDX_FILES['y_train']}.gz", np.arange(60_000) % 10)
    write_idx(folder / f"{IDX_FILES['y_test']}.gz", np.arange(10_000) % 10)
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(folder), str(write_mnist_dir(tmp_path / "small"))],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=cli_env(),
        timeout=CLI_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    m = json.loads(done.stdout.strip().splitlines()[-1])
    assert m["dtype"] == "torch.float32"
    assert m["tensors"] == 70_000 * 28 * 28 * 4 + 70_000 * 8
    grew = m["peak"] - m["before"]
    assert grew <= 1.5 * m["tensors"], f"peak {grew / 1e6:.0f} MB over baseline for {m['tensors'] / 1e6:.0f} MB"
