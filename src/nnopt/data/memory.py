"""Memory a data set needs, what this machine has, and the conversion to float32 that copies little.

A data set is refused before it is decoded when it cannot fit (a truthful header can still declare a bomb); arrays
stay in their compact dtype (uint8 images) until each split becomes float32 once, in chunks.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from nnopt.errors import DataError


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.3g}"


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> int | None:
    """Bytes this process can still allocate: the kernel's MemAvailable, or less under a cgroup memory limit;
    None when unknown (then only `data.max_gb` limits a data set)."""
    found: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),  # v1
    ):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:
            found.append(max(0, limit - usage))
    return min(found) if found else None


def check_fits(need: int, what: str, max_gb: float | None = None) -> None:
    """Refuse a data set needing `need` bytes of memory when that is more than `data.max_gb` or than the memory
    available; `what` names the file (or source) and its declared size."""
    limits = []
    if max_gb is not None:
        limits.append((max_gb * 1e9, f"data.max_gb={max_gb}"))
    free = available_memory()
    if free is not None:
        limits.append((free, f"the {_gb(free)} GB of memory available"))
    if not limits:
        return
    limit, text = min(limits, key=lambda item: item[0])
    if need > limit:
        raise DataError(
            f"{what}; the data set needs {_gb(need)} GB in memory (decoded data and float32 tensors), more than "
            f"{text}; use fewer samples or a machine with more memory"
            + (" (or raise data.max_gb)" if text.startswith("data.max_gb") else "")
        )


def memory_need(x: np.ndarray, y: np.ndarray | None = None) -> int:
    """Bytes a split costs while its tensors are made: the source's arrays plus float32 inputs and 8-byte targets."""
    need = x.nbytes + x.size * 4
    if y is not None:
        need += y.nbytes + len(y) * 8
    return need


ROWS_CHUNK = 1 << 24  # elements converted at a time: the temporary copy of a chunk stays small


def float_tensor(x: np.ndarray, index: np.ndarray | None, factor: float | None) -> torch.Tensor:
    """Rows `index` of `x` (all when None) as one new float32 tensor, converted chunk by chunk: no full-size float64
    or uint8 intermediate, and the source array keeps its compact dtype."""
    n = len(x) if index is None else len(index)
    out = torch.empty((n, *x.shape[1:]), dtype=torch.float32)
    dest = out.numpy()
    step = max(1, ROWS_CHUNK // max(1, math.prod(x.shape[1:])))
    for start in range(0, n, step):
        stop = min(start + step, n)
        rows = x[start:stop] if index is None else x[index[start:stop]]
        if factor is None:
            dest[start:stop] = rows
        else:
            np.multiply(rows, factor, out=dest[start:stop], dtype=np.float32)
    return out
