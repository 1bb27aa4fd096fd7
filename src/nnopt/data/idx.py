"""MNIST-format IDX files read with numpy (no torchvision, no download)."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from nnopt.data.base import Arrays, InMemoryDataModule, check_fits, check_labels
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
#: dimensions an IDX header may declare (labels 1, images 3, channels 4; numpy allows no more than 64)
MAX_NDIM = 4
_CHUNK = 1 << 24


@dataclass(frozen=True)
class IdxHeader:
    """What an IDX file's header declares, checked against the file's size (Python integers: no overflow)."""

    path: Path
    dims: tuple[int, ...]
    dtype: np.dtype
    gzipped: bool

    @property
    def nbytes(self) -> int:
        return math.prod(self.dims) * self.dtype.itemsize

    def describe(self) -> str:
        return f"{self.path}: header declares shape {self.dims} ({self.nbytes / 1e9:.3g} GB decoded)"


def _open(path: Path) -> tuple[BinaryIO, bool, int]:
    size = path.stat().st_size
    with path.open("rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    return (gzip.open(path, "rb") if gzipped else path.open("rb")), gzipped, size


def _parse_header(fh: BinaryIO, path: Path, gzipped: bool, size: int) -> IdxHeader:
    head = fh.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {head.hex() or 'empty'})")
    ndim = head[3]
    if ndim > MAX_NDIM:
        raise DataError(
            f"{path}: header declares {ndim} dimensions; allowed: 1 to {MAX_NDIM} (labels 1, images 3); "
            "it is corrupt or not an IDX file"
        )
    dims_raw = fh.read(4 * ndim)
    if ndim == 0 or len(dims_raw) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header")
    header = IdxHeader(path, struct.unpack(f">{ndim}I", dims_raw), np.dtype(_DTYPES[head[2]]), gzipped)
    room = size * GZIP_MAX_RATIO if gzipped else size
    if header.nbytes > room:
        raise DataError(
            f"{path}: header says shape {header.dims} ({header.nbytes} bytes), more than this "
            f"{size}-byte file can hold; it is corrupt or not an IDX file"
        )
    return header


def _cannot_read(path: Path, exc: BaseException) -> DataError:
    return DataError(f"{path}: cannot read ({exc.__class__.__name__}: {exc}); the file is corrupt")


def read_header(path: str | Path) -> IdxHeader:
    """The header of one IDX file (optionally gzipped), read without its body; DataError naming the file."""
    path = Path(path)
    try:
        fh, gzipped, size = _open(path)
        with fh:
            return _parse_header(fh, path, gzipped, size)
    except (OSError, EOFError, zlib.error) as exc:
        raise _cannot_read(path, exc) from None


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped); raise DataError naming the file on any defect.

    The header is checked first with Python integers (no overflow), and a gzipped body is decompressed as a
    stream capped at the size the header implies, straight into one array of the file's own dtype (uint8 images
    stay uint8; no intermediate copy): a gzip bomb costs at most that much, never gigabytes.
    """
    path = Path(path)
    try:
        fh, gzipped, size = _open(path)
        with fh:
            header = _parse_header(fh, path, gzipped, size)
            expected = header.nbytes
            body = np.empty(expected, dtype=np.uint8)  # pages are only touched as the stream fills them
            view, got = memoryview(body), 0
            while got < expected:
                n = fh.readinto(view[got : min(got + _CHUNK, expected)])
                if not n:
                    break
                got += n
            extra = len(fh.read(1))
    except (OSError, EOFError, zlib.error) as exc:
        raise _cannot_read(path, exc) from None
    if got != expected or extra:
        found = f"{got}" if not extra else f"more than {expected}"
        raise DataError(
            f"{path}: truncated or padded: header says shape {header.dims} ({expected} bytes), file has {found} "
            "data bytes"
        )
    return body.view(header.dtype).reshape(header.dims)


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
        paths = {key: find_idx(self.dir, stem) for key, stem in IDX_FILES.items()}
        headers = {key: read_header(p) for key, p in paths.items()}
        # before anything is inflated: the decoded files plus the float32 images and int64 labels made from them
        need = sum(h.nbytes + math.prod(h.dims) * (4 if key.startswith("x") else 8) for key, h in headers.items())
        check_fits(need, max(headers.values(), key=lambda h: h.nbytes).describe(), self.max_gb)
        arrays = {key: read_idx(p) for key, p in paths.items()}
        for key in ("x_train", "x_test"):
            if arrays[key].ndim != 3:
                raise DataError(f"{IDX_FILES[key]}: expected images of shape (N, H, W), got {arrays[key].shape}")
        for key in ("y_train", "y_test"):
            if arrays[key].ndim != 1:
                raise DataError(f"{IDX_FILES[key]}: expected labels of shape (N,), got {arrays[key].shape}")
            check_labels(arrays[key], self.num_classes, str(paths[key]))
            arrays[key] = arrays[key].astype(np.int64)  # integers in [0, num_classes): checked just above
        # pixels keep the file's dtype (uint8) until the data module makes the float32 tensors, scaled to [0, 1] then
        return Arrays(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], x_factor=1 / 255)
