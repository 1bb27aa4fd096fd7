"""`nnopt-export` on a model of your own: traced with a batch of 2 and checked with a batch of 3 (a dynamic batch
axis that really works), a model whose graph is tied to the traced batch size refused in one line with no file
left behind, and output places that cannot be written refused in one line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from nnopt.export import main as export_main
from nnopt.train import run
from tests.helpers import ONE_EPOCH, make_cfg

MODELS = '''
import torch
from torch import nn


class Flat(nn.Module):
    """Fine for export: the batch size stays symbolic."""

    def __init__(self, in_shape, num_classes):
        super().__init__()
        self.fc = nn.Linear(int(torch.tensor(in_shape).prod()), num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


class BatchFrozen(nn.Module):
    """Python arithmetic on the batch size: the trace records the traced batch size as a constant."""

    def __init__(self, in_shape, num_classes):
        super().__init__()
        self.fc = nn.Linear(int(torch.tensor(in_shape).prod()), num_classes)

    def forward(self, x):
        return self.fc(x.reshape(int(x.shape[0]), -1))
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export_own")
    (root / "exportproject").mkdir()
    (root / "exportproject" / "__init__.py").write_text("")
    (root / "exportproject" / "models.py").write_text(textwrap.dedent(MODELS))
    for name in ("Flat", "BatchFrozen"):
        (root / "conf" / "model").mkdir(parents=True, exist_ok=True)
        (root / "conf" / "model" / f"{name.lower()}.yaml").write_text(f"_target_: exportproject.models.{name}\n")
    return root


def trained(project: Path, tmp_path: Path, model: str, monkeypatch) -> Path:
    monkeypatch.syspath_prepend(str(project))
    out = tmp_path / model
    summary = run(make_cfg(out, *ONE_EPOCH, f"model={model}", f"hydra.searchpath=[file://{project / 'conf'}]"))
    assert summary["status"] == "completed"
    return out


def export(*argv: str) -> int:
    try:
        export_main(list(argv))
    except SystemExit as exc:
        return int(exc.code)
    return 0


def test_own_model_exports_with_a_batch_axis_that_takes_any_size(project, tmp_path, monkeypatch, capsys) -> None:
    out = trained(project, tmp_path, "flat", monkeypatch)
    assert export(str(out), "--config-dir", str(project / "conf")) == 0
    session = ort.InferenceSession(str(out / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    shape = json.loads((out / "onnx" / "export.json").read_text())["input"]["input_shape"][1:]
    for batch in (1, 5):
        logits = session.run(None, {"input": np.zeros((batch, *shape), dtype=np.float32)})[0]
        assert logits.shape == (batch, 10)
    assert "acc_onnx" in (out / "onnx" / "export.json").read_text()


def test_batch_bound_graph_is_refused_in_one_line_and_leaves_no_file(project, tmp_path, monkeypatch, capsys) -> None:
    out = trained(project, tmp_path, "batchfrozen", monkeypatch)
    capsys.readouterr()
    assert export(str(out), "--config-dir", str(project / "conf"), "--no-verify") == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("nnopt: error:")]
    assert len(errors) == 1 and "batch of 3" in errors[0]
    assert sorted(p.name for p in (out / "onnx").iterdir()) == []


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_out_that_cannot_be_written_is_one_line(project, tmp_path, monkeypatch, capsys, where) -> None:
    out = trained(project, tmp_path, "flat", monkeypatch)
    blocker = tmp_path / "blocker"
    blocker.write_text("mine\n")
    target = blocker if where == "a file" else blocker / "onnx"
    capsys.readouterr()
    assert export(str(out), "--config-dir", str(project / "conf"), "--no-verify", "--out", str(target)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nnopt: error: --out")
    assert blocker.read_text() == "mine\n"
