"""Data checks before training: labels vs declared classes, NaN/Inf, shape mismatch, lying IDX headers, gzip bombs."""

from __future__ import annotations

import gzip
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

from nnopt.data.base import Arrays, InMemoryDataModule
from nnopt.data.digits import DigitsDataModule
from nnopt.data.idx import IDXDataModule, read_idx
from nnopt.data.synthetic import SyntheticDataModule
from nnopt.errors import DataError
from tests.helpers.data import write_idx, write_mnist_dir


class Given(InMemoryDataModule):
    """A source returning fixed arrays (to plant one defect)."""

    def __init__(self, arrays: Arrays, **kwargs) -> None:
        super().__init__(val_fraction=0.0, name="given", **kwargs)
        self.arrays = arrays

    def load_arrays(self) -> Arrays:
        return self.arrays


def images(n: int, size: int = 4) -> np.ndarray:
    return np.random.default_rng(0).random((n, size, size)).astype(np.float32)


def test_label_outside_declared_classes_names_file_and_label(tmp_path):
    folder = write_mnist_dir(tmp_path / "m")
    labels = np.arange(60) % 10
    labels[17] = 200
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: label 200 is outside \[0, 10\) \(1 such"):
        IDXDataModule(dir=str(folder)).prepare()
    dm = IDXDataModule(dir=str(folder), num_classes=201)  # declared: then 200 is a valid class
    dm.prepare()
    assert dm.num_classes == 201


def test_declared_classes_are_the_model_width_not_the_largest_label():
    dm = DigitsDataModule(size=8)
    dm.prepare()
    assert dm.num_classes == 10
    with pytest.raises(DataError, match=r"data.name=digits5: train split: label 9 is outside \[0, 5\)"):
        DigitsDataModule(size=8, num_classes=5, name="digits5").prepare()
    arrays = Arrays(images(20), np.arange(20) % 3, images(10), np.full(10, -1))
    with pytest.raises(DataError, match=r"test split: label -1 is outside \[0, 3\)"):
        Given(arrays, num_classes=3).prepare()
    assert SyntheticDataModule(num_samples=60, num_classes=4).input_shape == (1, 28, 28)


@pytest.mark.parametrize(("split", "bad"), [("train", np.nan), ("test", np.inf), ("train", -np.inf)])
def test_non_finite_inputs_are_refused_naming_the_split(split, bad):
    x_tr, x_te = images(20), images(10)
    (x_tr if split == "train" else x_te)[3, 1, 2] = bad
    arrays = Arrays(x_tr, np.arange(20) % 2, x_te, np.arange(10) % 2)
    with pytest.raises(DataError, match=rf"^{split} split: 1 samples have NaN/Inf inputs \(first: sample 3\)"):
        Given(arrays, num_classes=2).prepare()


def test_non_finite_inputs_in_an_idx_file(tmp_path):
    folder = write_mnist_dir(tmp_path / "m")
    x = np.zeros((20, 28, 28), dtype=">f4")
    x[5, 0, 0] = np.nan
    header = struct.pack(">BBBB", 0, 0, 0x0D, 3) + struct.pack(">3I", *x.shape)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + x.tobytes()))
    with pytest.raises(DataError, match=r"test split: 1 samples have NaN/Inf inputs \(first: sample 5\)"):
        IDXDataModule(dir=str(folder)).prepare()


def test_train_test_shape_mismatch_is_refused(tmp_path):
    folder = write_mnist_dir(tmp_path / "m")
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((20, 32, 32)))
    expected = r"test inputs have shape \(1, 32, 32\) per sample but train inputs \(1, 28, 28\)"
    with pytest.raises(DataError, match=expected):
        IDXDataModule(dir=str(folder), name="mnist").prepare()


def test_header_sizes_use_python_integers(tmp_path):
    # (2^32-1)^3 overflows int64: np.prod would wrap around (possibly to a small number); Python ints do not
    path = tmp_path / "huge"
    path.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1))
    with pytest.raises(DataError, match=r"header says shape \(4294967295, 4294967295, 4294967295\) \(\d{29} bytes\)"):
        read_idx(path)
    wraps = tmp_path / "wraps"  # 2^21 * 2^21 * 2^22 = 2^64 bytes: exactly 0 in int64 arithmetic
    wraps.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", 2**21, 2**21, 2**22))
    with pytest.raises(DataError, match="18446744073709551616 bytes"):
        read_idx(wraps)


def _bomb(path, header: bytes, zeros: int) -> None:
    """A gzip file whose body inflates to `zeros` zero bytes after `header` (built in a stream: small memory)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 22)
    with path.open("wb") as fh:
        fh.write(comp.compress(header))
        for _ in range(zeros // len(chunk)):
            fh.write(comp.compress(chunk))
        fh.write(comp.flush())


def test_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    path = tmp_path / "bomb.gz"
    _bomb(path, struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", 10, 28, 28), 256 << 20)
    assert path.stat().st_size < 1 << 20  # < 1 MB on disk, 256 MB inflated
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"truncated or padded: header says shape \(10, 28, 28\) \(7840 bytes\)"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"reading the bomb allocated {peak >> 20} MB"


def test_gzip_header_claiming_more_than_the_file_can_hold(tmp_path):
    path = tmp_path / "liar.gz"
    path.write_bytes(gzip.compress(struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", 100_000, 280, 280)))
    with pytest.raises(DataError, match=r"more than this \d+-byte file can hold"):
        read_idx(path)
