"""MNIST-format IDX files read with numpy (no torchvision, no download)."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from nnopt.data.base import Arrays, InMemoryDataModule, check_labels
from nnopt.errors import DataError

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


#: deflate cannot shrink data by more than ~1032:1, so a gzip file whose header claims more is not genuine
GZIP_MAX_RATIO = 1100
_CHUNK = 1 << 24


def _read_exact(fh: BinaryIO, size: int) -> bytearray:
    """Up to `size` bytes in chunks (never one huge allocation a lying header asked for)."""
    out = bytearray()
    while len(out) < size:
        chunk = fh.read(min(_CHUNK, size - len(out)))
        if not chunk:
            break
        out += chunk
    return out


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped); raise DataError naming the file on any defect.

    The header is checked first with Python integers (no overflow), and a gzipped body is decompressed as a
    stream capped at the size the header implies: a gzip bomb costs at most that much, never gigabytes.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            gzipped = fh.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rb") if gzipped else path.open("rb") as fh:
            head = fh.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _DTYPES:
                raise DataError(f"{path}: not an IDX file (bad magic number {head.hex() or 'empty'})")
            ndim = head[3]
            dims_raw = fh.read(4 * ndim)
            if ndim == 0 or len(dims_raw) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header")
            dims = struct.unpack(f">{ndim}I", dims_raw)
            dtype = np.dtype(_DTYPES[head[2]])
            expected = math.prod(dims) * dtype.itemsize  # Python ints: a lying header cannot overflow
            room = size * GZIP_MAX_RATIO if gzipped else size
            if expected > room:
                raise DataError(
                    f"{path}: header says shape {dims} ({expected} bytes), more than this "
                    f"{size}-byte file can hold; it is corrupt or not an IDX file"
                )
            body = _read_exact(fh, expected)
            extra = len(fh.read(1))
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read ({exc.__class__.__name__}: {exc}); the file is corrupt") from None
    if len(body) != expected or extra:
        found = f"{len(body)}" if not extra else f"more than {expected}"
        raise DataError(
            f"{path}: truncated or padded: header says shape {dims} ({expected} bytes), file has {found} data bytes"
        )
    return np.frombuffer(body, dtype).reshape(dims)


def find_idx(directory: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (directory / name).is_file():
            return directory / name
    raise DataError(f"data.dir={directory}: missing {stem}.gz (expected the four MNIST-format IDX files there)")


class IDXDataModule(InMemoryDataModule):
    """MNIST / Fashion-MNIST: 60k train (val split off it) + 10k test, 28x28 grey."""

    def __init__(self, dir: str, test_fraction: float = 0.0, **kwargs) -> None:
        super().__init__(test_fraction=test_fraction, **kwargs)
        self.dir = Path(dir)

    def load_arrays(self) -> Arrays:
        if not self.dir.is_dir():
            hint = " (apt-get install dataset-fashion-mnist)" if "fashion" in self.name else ""
            raise DataError(f"data.dir={self.dir} does not exist; it must hold the four IDX .gz files{hint}")
        arrays = {key: read_idx(find_idx(self.dir, stem)) for key, stem in IDX_FILES.items()}
        for key in ("x_train", "x_test"):
            if arrays[key].ndim != 3:
                raise DataError(f"{IDX_FILES[key]}: expected images of shape (N, H, W), got {arrays[key].shape}")
        for key in ("y_train", "y_test"):
            if arrays[key].ndim != 1:
                raise DataError(f"{IDX_FILES[key]}: expected labels of shape (N,), got {arrays[key].shape}")
            check_labels(arrays[key], self.num_classes, str(find_idx(self.dir, IDX_FILES[key])))
        return Arrays(
            np.multiply(arrays["x_train"], 1 / 255, dtype=np.float32),
            arrays["y_train"].astype(np.int64),
            np.multiply(arrays["x_test"], 1 / 255, dtype=np.float32),
            arrays["y_test"].astype(np.int64),
        )
