"""MNIST-format IDX files read with numpy (no torchvision, no download)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from nnopt.data.base import Arrays, InMemoryDataModule
from nnopt.errors import DataError

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped); raise DataError naming the file on any defect."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path}: cannot read ({exc.__class__.__name__}: {exc}); the file is corrupt"
        ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: truncated or padded: header says shape {dims} ({expected} bytes), "
            f"file has {len(raw) - header} data bytes"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)


def find_idx(directory: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (directory / name).is_file():
            return directory / name
    raise DataError(
        f"data.dir={directory}: missing {stem}.gz (expected the four MNIST-format IDX files there)"
    )


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
                raise DataError(
                    f"{IDX_FILES[key]}: expected images of shape (N, H, W), got {arrays[key].shape}"
                )
        for key in ("y_train", "y_test"):
            if arrays[key].ndim != 1:
                raise DataError(f"{IDX_FILES[key]}: expected labels of shape (N,), got {arrays[key].shape}")
        return Arrays(
            np.multiply(arrays["x_train"], 1 / 255, dtype=np.float32),
            arrays["y_train"].astype(np.int64),
            np.multiply(arrays["x_test"], 1 / 255, dtype=np.float32),
            arrays["y_test"].astype(np.int64),
        )
