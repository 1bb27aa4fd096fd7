"""Atomic file writes: every summary, report and checkpoint is either the old file or the complete new one.

Lightning's own "atomic" checkpoint save (replaced by `nnopt.checkpoint.AtomicCheckpointIO`, built on
:func:`write_with`) goes through an fsspec transaction that writes to `$TMPDIR` and then moves the file: across
file systems that move is a plain copy, so a full disk or a kill leaves a truncated checkpoint. Here the temp
file lives in the target's own directory (so `os.replace` is a rename), is fsynced before the rename, and the
directory is fsynced after it. A failed write removes the temp file, leaves the old file untouched and raises
:class:`WriteError` (one line naming the path and the cause).

A full disk is an environment failure, not bad input: the entry points report it as
`nnopt: error: run failed: WriteError: cannot write <path>: No space left on device` and exit 1.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["WriteError", "write_atomic", "write_with"]


class WriteError(OSError):
    """A file could not be written (disk full, read-only or missing directory): an environment failure."""

    def __init__(self, path: str | Path, cause: BaseException) -> None:
        reason = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
        super().__init__(getattr(cause, "errno", None), f"cannot write {path}: {reason}")
        self.path = Path(path)

    def __str__(self) -> str:
        return self.strerror or ""


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask is a set-and-restore race)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; some file systems cannot fsync a directory (then there is nothing to do)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_with(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Atomically replace `path` with what `write(binary_file)` writes; WriteError (old file intact) on failure."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600; others' files get the umask's mode
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise WriteError(path, exc) from exc
    finally:
        if tmp is not None:  # any failure, KeyboardInterrupt included: no temp file is left behind
            Path(tmp).unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return path


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write text (UTF-8) or bytes to `path` atomically: readers see the old or the new file, never a part."""
    payload = data.encode() if isinstance(data, str) else bytes(data)
    return write_with(path, lambda fh: fh.write(payload))
