"""Atomic writes for real: same-dir temp file, fsync, rename; a full disk loses nothing and says so in one line."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from nnopt import checkpoint, train
from nnopt import io as nio
from nnopt.metrics import summary as S
from nnopt.report.cli import main as report_main
from tests.helpers import QUIET, run_cli
from tests.reliability.test_bad_inputs import invoke

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_files_get_the_umask_mode_not_0600(tmp_path, umask022):
    nio.write_atomic(tmp_path / "a.txt", "text")
    S.write_summary(
        tmp_path / "job", {**S.empty_summary(), S.STATUS: S.COMPLETED, "overrides": ["seed=1"], S.TEST_ACC: 0.9}
    )
    assert mode(tmp_path / "a.txt") == 0o644
    assert mode(tmp_path / "job" / S.FILENAME) == 0o644
    assert report_main([str(tmp_path / "job"), "--quiet"]) == 0
    written = [p for p in (tmp_path / "job").iterdir() if p.name.startswith(("report.", "pareto", "curves"))]
    assert len(written) == 4
    assert {p.name: mode(p) for p in written} == {p.name: 0o644 for p in written}
    os.umask(0o027)
    nio.write_atomic(tmp_path / "b.bin", b"\x00\x01")
    assert mode(tmp_path / "b.bin") == 0o640


@pytest.mark.parametrize("stage", ["write", "fsync", "replace"])
def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch, stage):
    target = tmp_path / "summary.json"
    nio.write_atomic(target, "old contents\n")

    def fail(*args, **kwargs):
        raise ENOSPC

    if stage == "write":

        def writer(fh):
            fh.write(b"half of the new")
            raise ENOSPC

        call = lambda: nio.write_with(target, writer)  # noqa: E731
    else:
        monkeypatch.setattr(nio.os, stage, fail)
        call = lambda: nio.write_atomic(target, "new contents\n")  # noqa: E731
    with pytest.raises(nio.WriteError) as info:
        call()
    assert str(info.value) == f"cannot write {target}: No space left on device"
    assert info.value.errno == errno.ENOSPC
    assert target.read_text() == "old contents\n"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_interrupted_write_leaves_no_temp(tmp_path):
    def writer(fh):
        fh.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        nio.write_with(tmp_path / "x.ckpt", writer)
    assert list(tmp_path.iterdir()) == []


def _fail_checkpoints_after_first_epoch(monkeypatch, saved: dict[str, bytes]):
    """os.fsync raises ENOSPC for checkpoint temp files once epoch 0's checkpoints exist (a disk that fills up)."""
    real = os.fsync

    def fsync(fd: int) -> None:
        name = os.readlink(f"/proc/self/fd/{fd}")
        folder = Path(name).parent
        first_epoch_done = all((folder / f).is_file() for f in ("epoch000.ckpt", "last.ckpt"))
        if name.endswith(".tmp") and ".ckpt." in name and first_epoch_done:
            if not saved:
                saved.update({p.name: p.read_bytes() for p in folder.glob("*.ckpt")})
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(nio.os, "fsync", fsync)


def test_disk_full_at_a_checkpoint_through_the_trainer(tmp_path, monkeypatch, capfd, umask022):
    """The real Trainer.save_checkpoint path: ModelCheckpoint -> strategy -> AtomicCheckpointIO."""
    saved: dict[str, bytes] = {}
    _fail_checkpoints_after_first_epoch(monkeypatch, saved)
    run = tmp_path / "run"
    code, err = invoke(
        train.main,
        ["trainer.max_epochs=2", *QUIET, f"hydra.run.dir={run}", f"paths.log_dir={tmp_path}"],
        monkeypatch,
        capfd,
    )
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1, err[-2000:]
    assert "Traceback" not in err
    assert lines[-1].startswith("nnopt: error: run failed: WriteError: cannot write ")
    assert f"{run}/checkpoints/" in lines[-1] and ".ckpt: No space left on device" in lines[-1]
    ckpts = run / "checkpoints"
    assert set(saved) == {"epoch000.ckpt", "last.ckpt"}
    assert {p.name: p.read_bytes() for p in ckpts.iterdir()} == saved  # intact, and no temp file beside them
    assert torch.load(ckpts / "last.ckpt", weights_only=False)["epoch"] == 0
    summary = S.read_summary(run)
    assert summary[S.STATUS] == S.FAILED and "No space left on device" in summary[S.ERROR]
    assert {p.name: mode(p) for p in [*ckpts.iterdir(), run / S.FILENAME]} == dict.fromkeys(
        [*saved, S.FILENAME], 0o644
    )  # checkpoints and summary get the umask's mode like every other file


def _mount_tmpfs(where: Path, size: int) -> None:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a small tmpfs needs root and mount(8); the fast test covers the same path with ENOSPC")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}); the fast test covers ENOSPC")


@pytest.mark.slow
def test_disk_full_on_a_real_small_tmpfs(tmp_path):
    """A 2-epoch run on a tmpfs with room for epoch 0's two checkpoints and about half of a third."""
    args = ["trainer.max_epochs=1", *QUIET]
    probe = run_cli("train", *args, f"hydra.run.dir={tmp_path / 'probe'}", log_dir=tmp_path)
    assert probe.returncode == 0, probe.stderr[-2000:]
    size = (tmp_path / "probe" / "checkpoints" / "last.ckpt").stat().st_size
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, (int(size * 2.5) // 4096 + 1) * 4096)
    try:
        run = disk / "run"
        result = run_cli("train", "trainer.max_epochs=2", *QUIET, f"hydra.run.dir={run}", log_dir=tmp_path)
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert result.returncode == 1, result.stderr[-3000:]
        assert "Traceback" not in result.stderr
        assert lines[-1].startswith(f"nnopt: error: run failed: WriteError: cannot write {run}/checkpoints/")
        assert ".ckpt: No space left on device" in lines[-1]
        names = sorted(p.name for p in (run / "checkpoints").iterdir())
        assert names == ["epoch000.ckpt", "last.ckpt"], names
        assert not [p for p in disk.rglob("*") if p.name.endswith(".tmp")]
        for name in names:
            ckpt = torch.load(run / "checkpoints" / name, weights_only=False)
            assert ckpt["epoch"] == 0 and ckpt["state_dict"]
        assert S.read_summary(run)[S.STATUS] == S.FAILED
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_checkpoint_io_plugin_list():
    """Ours is added once; a CheckpointIO the user configured wins; it pickles (ddp_spawn sends the trainer)."""
    import pickle

    from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

    (ours,) = checkpoint.with_atomic_checkpoint_io(None)
    assert type(ours).__name__ == "AtomicCheckpointIO" and isinstance(ours, TorchCheckpointIO)
    assert type(pickle.loads(pickle.dumps(ours))) is type(ours)
    user = TorchCheckpointIO()
    assert checkpoint.with_atomic_checkpoint_io([user]) == [user]
    other = checkpoint.with_atomic_checkpoint_io("bf16")
    assert other[0] == "bf16" and type(other[1]) is type(ours)
