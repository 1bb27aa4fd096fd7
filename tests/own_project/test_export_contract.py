"""Exported ONNX models (float and int8) are self-contained: fed the data set's raw 8-bit pixels
/ 255 (float32, N x 1 x 28 x 28) they score what torch scores; the input contract is in the file and export.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from nnopt import build
from nnopt.data.idx import IDX_FILES
from nnopt.export import export_run
from nnopt.metrics import summary as S
from nnopt.tasks.classification import Classifier
from nnopt.train import run
from tests.helpers import make_cfg
from tests.helpers.data import write_idx

N_TRAIN = 1500


def digits_as_idx(folder) -> tuple[np.ndarray, np.ndarray]:
    """sklearn's digits as an 8-bit 28x28 MNIST-format data set (learnable, no download); returns the raw test split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)[:, 0]
    pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    labels = digits.target.astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "x_train": pixels[:N_TRAIN],
        "y_train": labels[:N_TRAIN],
        "x_test": pixels[N_TRAIN:],
        "y_test": labels[N_TRAIN:],
    }
    for key, stem in IDX_FILES.items():
        write_idx(folder / f"{stem}.gz", arrays[key])
    return arrays["x_test"], arrays["y_test"]


def onnx_accuracy(path, x: np.ndarray, y: np.ndarray) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": x})[0]
    return float((logits.argmax(1) == y).mean())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    x_raw, y = digits_as_idx(tmp / "idx")
    summary = run(
        make_cfg(
            tmp / "run",
            "data=mnist",
            f"data.dir={tmp / 'idx'}",
            "model.hidden=[64]",
            "trainer.max_epochs=3",
            "test_ckpt=last",
            "compression=ptq_static",
        )
    )
    report = export_run(tmp / "run", tmp / "onnx")
    raw01 = (x_raw.astype(np.float32) / 255.0)[:, None]  # the contract: raw pixels / 255, N x 1 x 28 x 28
    return summary, report, raw01, y.astype(np.int64)


def test_float_and_int8_onnx_take_raw_pixels_scaled_to_unit_range(exported):
    summary, report, raw01, y = exported
    float_entry, int8_entry = report["models"]["float"], report["models"]["int8"]
    acc_float = onnx_accuracy(float_entry["path"], raw01, y)
    assert acc_float == pytest.approx(float_entry["acc_torch"], abs=1e-6)
    assert acc_float == pytest.approx(summary[S.TEST_ACC_FLOAT], abs=1e-6)
    assert acc_float > 0.8  # learnable data: a wrong input scaling would not get here
    acc_int8 = onnx_accuracy(int8_entry["path"], raw01, y)
    assert acc_int8 == pytest.approx(int8_entry["acc_onnx"], abs=1e-6)
    assert abs(acc_int8 - summary[S.TEST_ACC]) <= 0.01  # torch's int8 model on the same test split


def test_onnx_logits_on_raw_inputs_equal_torch_logits_on_standardised_inputs(exported):
    summary, report, raw01, _ = exported
    cfg = make_cfg(Path(summary[S.RUN_DIR]), "data=mnist", f"data.dir={Path(summary[S.RUN_DIR]).parent / 'idx'}")
    x_standardised, _ = build.build_datamodule(cfg).tensors["test"]
    net = Classifier.load_from_checkpoint(summary[S.CKPT_LAST]).net
    with torch.inference_mode():
        expected = net(x_standardised).numpy()
    session = ort.InferenceSession(report["models"]["float"]["path"], providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": raw01})[0], expected, rtol=1e-4, atol=1e-4)


def test_input_contract_in_metadata_and_export_json(exported):
    _, report, _, _ = exported
    contract = report["input"]
    assert contract["input_shape"] == ["N", 1, 28, 28] and contract["num_classes"] == 10
    assert contract["data_set"] == "mnist" and contract["input_dtype"] == "float32"
    assert contract["input_scaling"].startswith("raw values scaled to [0, 1] (8-bit images: pixel / 255)")
    on_disk = json.loads((Path(report["models"]["float"]["path"]).parent / "export.json").read_text())
    assert on_disk["input"] == contract
    for entry in report["models"].values():
        props = {p.key: p.value for p in onnx.load(entry["path"]).metadata_props}
        assert json.loads(props["input_shape"]) == ["N", 1, 28, 28]
        assert props["num_classes"] == "10" and props["data_set"] == "mnist"
        assert props["input_scaling"] == contract["input_scaling"]
