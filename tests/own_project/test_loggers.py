"""Issue 13 item 8: every logger gets the whole run. `logger=many` (CSV, TensorBoard, W&B offline, MLflow local
file store): the final summary numbers, the config group choices as parameters, the confusion matrix image and
summary.json plus the composed config as run files, read back from each tracker's own files."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from nnopt import tracking
from nnopt.metrics import summary as S
from tests.foundation.test_cli import wandb_records
from tests.helpers import CLI_TIMEOUT, ROOT, TINY, cli_env, make_cfg, run_cli

ACC = f"{tracking.SUMMARY_PREFIX}{S.TEST_ACC}"  # summary/test/acc
CHOICE = f"{tracking.CHOICE_PREFIX}optimizer"  # choices/optimizer


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("loggers")
    run_dir = tmp / "run"
    result = run_cli("train", "logger=many", "optimizer=momentum", *TINY, f"hydra.run.dir={run_dir}", log_dir=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / S.FILENAME).read_text())
    assert summary[S.STATUS] == S.COMPLETED
    return run_dir, summary


def test_csv_gets_a_final_row_and_the_choices(logged_run):
    run_dir, summary = logged_run
    with (run_dir / "csv" / "metrics.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get(ACC)]
    assert len(rows) == 1
    assert float(rows[0][ACC]) == pytest.approx(summary[S.TEST_ACC], rel=1e-6)
    assert float(rows[0][f"{tracking.SUMMARY_PREFIX}{S.PARAMS}"]) == summary[S.PARAMS]
    hparams = yaml.safe_load((run_dir / "csv" / "hparams.yaml").read_text())
    assert hparams[CHOICE] == "momentum" and hparams[f"{tracking.CHOICE_PREFIX}data"] == "digits"


def test_tensorboard_hparams_with_metrics_and_the_confusion_image(logged_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run_dir, summary = logged_run
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams[CHOICE].string_value == "momentum"
    assert start.hparams["optimizer/_target_"].string_value == "torch.optim.SGD"  # why the choice is logged too
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert ACC in {m.name.tag for m in experiment.metric_infos}  # the HPARAMS tab's metric columns
    assert events.Scalars(ACC)[-1].value == pytest.approx(summary[S.TEST_ACC], rel=1e-6)
    assert "confusion_matrix" in events.Tags()["images"]


def test_mlflow_file_store_has_metrics_choices_and_artifacts(logged_run):
    run_dir, summary = logged_run
    runs = [p for p in (run_dir / "mlruns").glob("*/*") if (p / "meta.yaml").is_file()]
    assert len(runs) == 1
    run = runs[0]
    assert (run / "params" / "choices" / "optimizer").read_text() == "momentum"
    timestamp, value, step = (run / "metrics" / "summary" / "test" / "acc").read_text().split()
    assert float(value) == pytest.approx(summary[S.TEST_ACC], rel=1e-6)
    assert {p.name for p in (run / "artifacts").iterdir()} >= {S.FILENAME, "config.yaml", "confusion_matrix.png"}
    assert json.loads((run / "artifacts" / S.FILENAME).read_text())[S.TEST_ACC] == summary[S.TEST_ACC]


def test_wandb_offline_summary_config_files_and_image(logged_run):
    from wandb.proto import wandb_internal_pb2

    run_dir, summary = logged_run
    (run_file,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    summary_items, config_items = {}, {}
    for data in wandb_records(run_file.read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.HasField("summary"):
            summary_items.update({i.key or "/".join(i.nested_key): i.value_json for i in record.summary.update})
        if record.HasField("config"):
            config_items.update({i.key: i.value_json for i in record.config.update})
    assert json.loads(summary_items[ACC]) == pytest.approx(summary[S.TEST_ACC], rel=1e-6)
    assert json.loads(config_items[CHOICE]) == "momentum"
    files = run_file.parent / "files"
    assert json.loads((files / S.FILENAME).read_text())[S.TEST_ACC] == summary[S.TEST_ACC]
    assert (files / ".hydra" / "config.yaml").is_file()
    assert list((files / "media" / "images").glob("confusion_matrix*.png"))


def test_many_skips_mlflow_only_where_it_is_not_installed(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path, "logger=many", "logger.wandb=null")
    assert [type(lg).__name__ for lg in tracking.build_loggers(cfg)] == [
        "CSVLogger",
        "TensorBoardLogger",
        "MLFlowLogger",
    ]
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    assert [type(lg).__name__ for lg in tracking.build_loggers(cfg)] == ["CSVLogger", "TensorBoardLogger"]


def test_precheck_names_the_extra_for_logger_mlflow_but_not_for_many(tmp_path, capsys, monkeypatch):
    from nnopt.cli import extras
    from nnopt.errors import BAD_INPUT_EXIT

    monkeypatch.setattr(extras, "installed", lambda module: module != "mlflow")
    extras.check_optional(make_cfg(tmp_path, "logger=many"))  # no exit: many runs without mlflow
    with pytest.raises(SystemExit) as stop:
        extras.check_optional(make_cfg(tmp_path, "logger=mlflow"))
    assert stop.value.code == BAD_INPUT_EXIT
    line = capsys.readouterr().err.strip()
    assert line == "nnopt: error: logger.mlflow needs the 'mlflow-skinny' package: pip install 'nnopt[mlflow]'"


# -- where a project's logs land --------------------------------------------------------------------------------
def _source(path: Path, provider: str = "command-line") -> dict:
    return {"path": str(path), "schema": "file", "provider": provider}


def test_project_root_is_the_folder_holding_the_users_config_dir(tmp_path, monkeypatch) -> None:
    from nnopt.config import CONFIG_DIR, resolvers

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "conf").mkdir(parents=True)
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    nnopt_own = [_source(Path(CONFIG_DIR), "main"), {"path": "hydra.conf", "schema": "pkg", "provider": "hydra"}]
    assert resolvers.project_root([*nnopt_own, _source(project / "conf")]) == str(project)  # -cd / searchpath
    assert resolvers.project_root([*nnopt_own, _source(project / "conf", "hydra.searchpath in command-line")]) == str(
        project
    )
    assert resolvers.project_root(nnopt_own) == str(elsewhere)  # no config dir of the user's: the working dir
    own_app = [_source(project / "conf", "main"), nnopt_own[1]]  # a Hydra app of the user's, on nnopt's groups
    assert resolvers.project_root(own_app) == str(project)
    pkg = {"path": "my_project.conf", "schema": "pkg", "provider": "hydra.searchpath in command-line"}
    assert resolvers.project_root([*nnopt_own, pkg]) == str(elsewhere)  # configs in a package: the working dir
    monkeypatch.chdir(ROOT / "src")  # nnopt's own runs, from inside its checkout: the checkout
    assert resolvers.project_root(nnopt_own) == str(ROOT)


@pytest.mark.parametrize("multirun", [False, True], ids=["run", "sweep"])
def test_own_project_run_writes_logs_under_the_project_not_nnopts_checkout(tmp_path, multirun) -> None:
    import subprocess
    import sys
    import uuid

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "conf" / "model").mkdir(parents=True)
    (project / "conf" / "model" / "small.yaml").write_text(
        "_target_: nnopt.models.mlp.MLP\nname: small\nhidden: [16]\n"
    )
    elsewhere.mkdir()
    task = f"own_logs_{uuid.uuid4().hex[:8]}"  # this run's folder name under <root>/logs/
    cmd = [sys.executable, "-m", "nnopt.train", "-cd", str(project / "conf"), "model=small", f"task_name={task}", *TINY]
    cmd[3:3] = ["-m"] if multirun else []  # a flag before the overrides
    cmd += ["optimizer=sgd,adam"] if multirun else []
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT, env=cli_env(), cwd=elsewhere)
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = sorted((project / "logs" / task).rglob(S.FILENAME))
    assert [json.loads(p.read_text())[S.STATUS] for p in summaries] == [S.COMPLETED] * (2 if multirun else 1)
    if multirun:  # the sweep dir (resolved before any job runs) is the jobs' parent, with its report
        (marker,) = (project / "logs" / task).rglob("multirun.yaml")
        assert {p.parent.parent for p in summaries} == {marker.parent}
        assert (marker.parent / "report.md").is_file()
    assert not (elsewhere / "logs").exists()
    assert not (ROOT / "logs" / task).exists()  # nothing in nnopt's checkout
