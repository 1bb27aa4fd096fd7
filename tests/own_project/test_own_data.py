"""Issue 13 item 4: any LightningDataModule (its own DataLoaders and transforms) trains, is measured, tested and
exported; num_classes/input_shape come from the data config or the module; nnopt's in-memory path stays the default."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl

from nnopt import build
from nnopt.data.base import InMemoryDataModule
from nnopt.errors import ConfigError
from nnopt.export import export_run
from nnopt.metrics import summary as S
from nnopt.train import run
from tests.helpers import ROOT, make_cfg

EXAMPLE = ROOT / "examples" / "own_project"
WINE = ["~data", "+data._target_=own_project.data.WineDataModule", "+data.name=wine", "+data.batch_size=32"]


@pytest.fixture(autouse=True)
def _example_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))


@pytest.mark.parametrize("declared", [[], ["+data.input_shape=[1,28,28]"]])
def test_in_memory_path_is_the_default(tmp_path, declared):
    dm = build.build_datamodule(make_cfg(tmp_path, *declared))  # a declared input_shape is accepted, not needed
    assert isinstance(dm, InMemoryDataModule)
    assert dm.tensors is not None and dm.input_shape == (1, 28, 28)


def test_declared_shapes_are_attributes_and_input_shape_can_be_read_off_a_batch(tmp_path):
    declared = build.build_datamodule(make_cfg(tmp_path, *WINE, "+data.num_classes=3", "+data.input_shape=[13]"))
    inferred = build.build_datamodule(make_cfg(tmp_path, *WINE, "+data.num_classes=3"))
    for dm in (declared, inferred):
        assert isinstance(dm, pl.LightningDataModule) and not isinstance(dm, InMemoryDataModule)
        assert (dm.input_shape, dm.num_classes) == ((13,), 3)


@pytest.mark.parametrize(
    ("overrides", "text"),
    [
        (WINE, "data.num_classes is required for data._target_=own_project.data.WineDataModule"),
        (
            ["~data", "+data._target_=builtins.dict", "+data.name=x", "+data.batch_size=1", "+data.num_classes=2"],
            "data._target_=builtins.dict built a dict, not a LightningDataModule",
        ),
        ([*WINE, "+data.num_classes=3", "+data.bogus=1"], "unexpected keyword argument 'bogus'"),
    ],
)
def test_bad_data_configs_are_one_line_errors(tmp_path, overrides, text):
    with pytest.raises(ConfigError) as err:
        build.build_datamodule(make_cfg(tmp_path, *overrides))
    assert text in str(err.value) and "\n" not in str(err.value)


def test_own_data_module_trains_tests_measures_and_exports(tmp_path):
    cfg = make_cfg(
        tmp_path,
        *WINE,
        "+data.num_classes=3",
        "+data.input_shape=[13]",
        "model.hidden=[32]",
        "trainer.max_epochs=3",
        "test_ckpt=last",
    )
    summary = run(cfg)
    assert summary[S.STATUS] == S.COMPLETED
    assert summary[S.PARAMS] == 13 * 32 + 32 + 32 * 3 + 3  # the MLP built for the declared shapes
    assert summary[S.LATENCY_B1] > 0 and summary[S.SIZE_BYTES_GZIP] > 0
    assert (tmp_path / "confusion_matrix.png").is_file()
    report = export_run(tmp_path, tmp_path / "onnx", config_dir=EXAMPLE / "conf")  # its own test_dataloader
    entry = report["models"]["float"]
    assert entry["acc_torch"] == pytest.approx(summary[S.TEST_ACC], abs=1e-6)
    assert entry["acc_onnx"] == pytest.approx(entry["acc_torch"], abs=1e-6)
