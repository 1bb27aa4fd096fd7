"""Write small MNIST-format IDX files for data tests (no download)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from nnopt.data.idx import IDX_FILES


def write_idx(path: Path, array: np.ndarray, gz: bool = True, magic_type: int = 0x08) -> Path:
    header = struct.pack(">BBBB", 0, 0, magic_type, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def write_mnist_dir(folder: Path, n_train: int = 60, n_test: int = 20) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28)),
        "y_train": np.arange(n_train) % 10,
        "x_test": rng.integers(0, 256, (n_test, 28, 28)),
        "y_test": np.arange(n_test) % 10,
    }
    for key, stem in IDX_FILES.items():
        write_idx(folder / f"{stem}.gz", arrays[key])
    return folder
