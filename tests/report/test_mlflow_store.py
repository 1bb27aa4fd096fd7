"""MLflow as documented: a sweep logs to one local store and one experiment (a parent run for the sweep, a child
run per job) that MLflow's own client reads; a single run keeps its own store in its run dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnopt import tracking
from nnopt.metrics import summary as S

pytest.importorskip("mlflow")


def _client(store: Path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # as the README says: MLflow 3 asks for it on file stores
    return MlflowClient(tracking_uri=f"file:{store}")


def test_sweep_is_one_experiment_parent_and_a_child_per_job(many_sweep, monkeypatch) -> None:
    sweep = many_sweep.dir
    assert not [p for p in sweep.glob("*/mlruns")]  # no store per job
    client = _client(sweep / tracking.MLFLOW_STORE, monkeypatch)
    experiments = [e for e in client.search_experiments() if e.name != "Default"]
    assert [e.name for e in experiments] == ["debug"]  # the task name
    runs = client.search_runs([experiments[0].experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and len(runs) == 3
    parent = parents[0]
    assert parent.info.run_name == tracking.sweep_name(sweep)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.params["choices/optimizer"] for r in children) == ["adam", "sgd"]
    for child in children:
        job = Path(child.data.tags[tracking.MLFLOW_RUN_DIR_TAG])
        summary = json.loads((job / S.FILENAME).read_text())
        assert child.data.metrics[f"{tracking.SUMMARY_PREFIX}{S.TEST_ACC}"] == pytest.approx(summary[S.TEST_ACC])
        assert child.info.status == "FINISHED"
        assert S.FILENAME in {a.path for a in client.list_artifacts(child.info.run_id)}
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"
    out = many_sweep.result.stdout + many_sweep.result.stderr
    assert "not found. Creating it" not in out  # the store is prepared quietly
