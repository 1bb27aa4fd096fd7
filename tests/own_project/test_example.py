"""Issue 13 item 5: examples/own_project (its own package, conf/ and command) runs end to end: a single run,
a 2-job multirun, export of its model (data from its own test_dataloader) and Lightning-native loading."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nnopt.errors import CheckpointError
from nnopt.export import export_run
from nnopt.metrics import summary as S
from nnopt.tasks.classification import Classifier
from tests.helpers import CLI_TIMEOUT, QUIET, ROOT, cli_env

EXAMPLE = ROOT / "examples" / "own_project"


def residual_mlp_params(width: int, depth: int = 2) -> int:
    """Parameters of ResidualMLP(width, depth) on wine's 13 features and 3 classes."""
    return (13 * width + width) + depth * (2 * width + width * width + width) + (width * 3 + 3)


def nnopt_train(*args: str, log_dir: Path) -> subprocess.CompletedProcess:
    """The documented command, from the example's folder with its package importable."""
    flags = [a for a in args if a.startswith("-")]  # Hydra's flags before the overrides
    overrides = [a for a in args if not a.startswith("-")]
    cmd = [
        str(Path(sys.executable).parent / "nnopt-train"),
        *flags,
        "-cd",
        "conf",
        "experiment=wine",
        "debug=fast",
        *QUIET,
        *overrides,
        f"paths.log_dir={log_dir}",
    ]
    env = cli_env(PYTHONPATH=str(EXAMPLE))
    return subprocess.run(cmd, cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT)


@pytest.fixture(scope="module")
def example_run(tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("example")
    run_dir = tmp / "run"
    result = nnopt_train(
        "trainer.max_epochs=3", "trainer.limit_train_batches=1.0", f"hydra.run.dir={run_dir}", log_dir=tmp
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, json.loads((run_dir / S.FILENAME).read_text())


def test_single_run(example_run):
    run_dir, summary = example_run
    assert summary[S.STATUS] == S.COMPLETED
    assert summary[S.CHOICES]["data"] == "wine" and summary[S.CHOICES]["model"] == "residual_mlp"
    assert summary[S.PARAMS] == residual_mlp_params(64)
    assert summary[S.LATENCY_B1] > 0 and summary[S.SIZE_BYTES] > 0  # efficiency measured on declared input_shape
    assert 0.5 <= summary[S.TEST_ACC] <= 1.0  # 3 epochs on wine: far above chance (1/3)
    assert (run_dir / "confusion_matrix.png").is_file()


def test_two_job_multirun(tmp_path):
    result = nnopt_train("-m", "model.width=16,32", log_dir=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in sorted(tmp_path.rglob(f"multiruns/*/*/{S.FILENAME}"))]
    assert len(summaries) == 2
    assert sorted(s[S.PARAMS] for s in summaries) == [residual_mlp_params(16), residual_mlp_params(32)]
    assert all(s[S.STATUS] == S.COMPLETED and s[S.CHOICES]["data"] == "wine" for s in summaries)


def test_export_evaluates_through_the_modules_test_dataloader(example_run, tmp_path, monkeypatch):
    run_dir, summary = example_run
    monkeypatch.syspath_prepend(str(EXAMPLE))
    report = export_run(run_dir, tmp_path / "onnx", config_dir=EXAMPLE / "conf")
    entry = report["models"]["float"]
    assert entry["acc_onnx"] == pytest.approx(entry["acc_torch"], abs=1e-6)
    # last.ckpt after 3 epochs; the summary tested the best checkpoint: same model only if the last was the best
    assert report["input"]["input_shape"] == ["N", 13]
    assert report["input"]["num_classes"] == 3 and report["input"]["data_set"] == "wine"
    assert report["input"]["standardisation_in_graph"] is False  # the module standardises in its own transform


def test_load_from_checkpoint_trusts_the_users_model_only_when_told(example_run, monkeypatch):
    run_dir, summary = example_run
    monkeypatch.syspath_prepend(str(EXAMPLE))
    ckpt = summary[S.CKPT_BEST]
    with pytest.raises(CheckpointError, match=r"_target_='own_project\.\w+\.\w+' is not a target any config"):
        Classifier.load_from_checkpoint(ckpt)
    trusted = ["own_project.model.ResidualMLP", "own_project.data.WineDataModule"]
    by_name = Classifier.load_from_checkpoint(ckpt, trusted=trusted)
    model = Classifier.load_from_checkpoint(ckpt, config_dir=EXAMPLE / "conf")
    pairs = zip(by_name.state_dict().values(), model.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    from own_project.data import WineDataModule

    dm = WineDataModule()
    dm.setup("test")
    correct = seen = 0
    with torch.inference_mode():
        for x, y in dm.test_dataloader():
            correct += int((model(x).argmax(1) == y).sum())
            seen += len(y)
    assert correct / seen == pytest.approx(summary[S.TEST_ACC], abs=1e-6)


def test_nnopt_eval_with_the_same_config_dir(example_run, tmp_path):
    run_dir, summary = example_run
    cmd = [
        str(Path(sys.executable).parent / "nnopt-eval"),
        "-cd",
        "conf",
        f"ckpt_path={summary[S.CKPT_BEST]}",
        f"hydra.run.dir={tmp_path / 'eval'}",
        f"paths.log_dir={tmp_path}",
    ]
    env = cli_env(PYTHONPATH=str(EXAMPLE))
    result = subprocess.run(cmd, cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads((tmp_path / "eval" / S.FILENAME).read_text())
    assert evaluated[S.TEST_ACC] == pytest.approx(summary[S.TEST_ACC], abs=1e-6)
