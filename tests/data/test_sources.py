"""Each data source yields the documented shapes; the IDX reader rejects every defect with one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnopt.data.batches import TensorBatches
from nnopt.data.digits import DigitsDataModule
from nnopt.data.idx import IDXDataModule, read_idx
from nnopt.data.synthetic import SyntheticDataModule
from nnopt.errors import DataError
from tests.helpers.data import write_idx, write_mnist_dir


def test_idx_roundtrip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a.gz", array)), array)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a", array, gz=False)), array)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda raw: raw[:-5], "truncated"),
        (lambda raw: b"\x01\x02" + raw[2:], "bad magic"),
        (lambda raw: raw[:6], "truncated"),
        (lambda raw: b"", "bad magic"),
    ],
)
def test_idx_defects(tmp_path, mutate, message):
    good = tmp_path / "good"
    write_idx(good, np.zeros((3, 4, 4)), gz=False)
    bad = tmp_path / "bad"
    bad.write_bytes(mutate(good.read_bytes()))
    with pytest.raises(DataError, match=message):
        read_idx(bad)


def test_idx_corrupt_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(DataError, match="corrupt"):
        read_idx(path)


def test_idx_datamodule_shapes_and_splits(tmp_path):
    dm = IDXDataModule(dir=str(write_mnist_dir(tmp_path / "mnist")), val_fraction=0.25, name="mnist")
    dm.prepare()
    assert dm.input_shape == (1, 28, 28)
    assert dm.num_classes == 10
    assert dm.split_sizes() == {"train": 45, "val": 15, "test": 20}
    x, y = next(iter(dm.test_dataloader()))
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (20, 1, 28, 28)


def test_idx_missing_dir_and_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        IDXDataModule(dir=str(tmp_path / "nope"), name="fashion_mnist").prepare()
    folder = write_mnist_dir(tmp_path / "m")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        IDXDataModule(dir=str(folder)).prepare()


def test_idx_label_count_mismatch(tmp_path):
    folder = write_mnist_dir(tmp_path / "m")
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(59))
    with pytest.raises(DataError, match="60 images but 59 labels"):
        IDXDataModule(dir=str(folder)).prepare()


def test_digits_shapes():
    dm = DigitsDataModule(size=8, batch_size=32)
    assert dm.input_shape == (1, 8, 8)
    sizes = dm.split_sizes()
    assert sum(sizes.values()) == 1797 and sizes["test"] == round(1797 * 0.15)
    up = DigitsDataModule(size=28)
    assert up.input_shape == (1, 28, 28)
    x, _ = up.tensors["train"]
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3  # standardised on train stats


def test_splits_fixed_by_split_seed_not_run_seed():
    a, b = DigitsDataModule(size=8, seed=1), DigitsDataModule(size=8, seed=2)
    a.prepare(), b.prepare()
    assert torch.equal(a.tensors["test"][1], b.tensors["test"][1])


def test_synthetic_shapes():
    dm = SyntheticDataModule(num_samples=100, num_classes=3, shape=(2, 5, 5), val_fraction=0.2, test_fraction=0.2)
    assert dm.input_shape == (2, 5, 5)
    assert dm.num_classes == 3
    assert dm.split_sizes() == {"train": 60, "val": 20, "test": 20}


def test_empty_dataset_is_rejected():
    dm = SyntheticDataModule(num_samples=1, val_fraction=0.0, test_fraction=0.5)
    with pytest.raises(DataError, match="empty"):
        dm.prepare()


def test_tensor_batches_cover_data_and_reshuffle_per_epoch():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    epoch = {"n": 0}
    batches = TensorBatches(x, y, batch_size=4, shuffle=True, seed=3, epoch_fn=lambda: epoch["n"])
    assert len(batches) == 3
    first = torch.cat([b[1] for b in batches])
    assert sorted(first.tolist()) == list(range(10))
    assert torch.equal(first, torch.cat([b[1] for b in batches]))  # same epoch: same order (resume-safe)
    epoch["n"] = 1
    assert not torch.equal(first, torch.cat([b[1] for b in batches]))


def test_tensor_batches_split_global_batch_across_ranks():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    ranks = [list(TensorBatches(x, y, 4, rank=r, world_size=2)) for r in range(2)]
    for step in range(3):
        joined = torch.cat([ranks[0][step][1], ranks[1][step][1]])
        assert torch.equal(joined, y[step * 4 : step * 4 + 4])
