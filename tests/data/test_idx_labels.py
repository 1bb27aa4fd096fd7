"""IDX label and header defects that used to pass or end in a traceback: NaN labels, fractional labels, 255 dims."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from nnopt.data.idx import IDX_FILES, IDXDataModule, read_idx
from nnopt.errors import DataError
from tests.helpers.data import write_mnist_dir

LABELS = IDX_FILES["y_train"] + ".gz"


def _float_labels(path, labels: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x0D, 1) + struct.pack(">I", len(labels))
    path.write_bytes(gzip.compress(header + labels.astype(">f4").tobytes()))


def test_nan_labels_are_named_nan(tmp_path):
    folder = write_mnist_dir(tmp_path / "m")
    labels = (np.arange(60) % 10).astype(np.float32)
    labels[7] = np.nan
    _float_labels(folder / LABELS, labels)
    with pytest.raises(DataError) as info:
        IDXDataModule(dir=str(folder), name="mnist").prepare()
    assert f"{folder / LABELS}: label NaN (sample 7) is not a number (1 such labels)" in str(info.value)


def test_fractional_labels_are_refused_for_classification(tmp_path):
    folder = write_mnist_dir(tmp_path / "m")
    _float_labels(folder / LABELS, np.arange(60) % 10 + 0.5)  # 0.5 ... 9.5: all inside [0, 10), none a class
    with pytest.raises(DataError) as info:
        IDXDataModule(dir=str(folder), name="mnist").prepare()
    assert f"{folder / LABELS}: label 0.5 (sample 0) is not an integer (60 such labels)" in str(info.value)


def test_whole_float_labels_still_load(tmp_path):
    folder = write_mnist_dir(tmp_path / "m")
    _float_labels(folder / LABELS, (np.arange(60) % 10).astype(np.float32))
    dm = IDXDataModule(dir=str(folder), name="mnist", val_fraction=0.0)
    dm.prepare()
    assert sorted(dm.tensors["train"][1].tolist()) == sorted((np.arange(60) % 10).tolist())


def test_a_header_with_255_dimensions_is_one_line(tmp_path):
    path = tmp_path / "dims"
    path.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, 255) + struct.pack(">255I", *([1] * 255)) + b"\x00")
    with pytest.raises(DataError, match=r"dims: header declares 255 dimensions; allowed: 1 to 4"):
        read_idx(path)
