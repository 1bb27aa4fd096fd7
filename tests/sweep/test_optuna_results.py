"""The Optuna sweeper's results file has the official hydra-optuna-sweeper's name and keys, plus nnopt's."""

from __future__ import annotations

import optuna
import pytest
from omegaconf import OmegaConf

from hydra_plugins.nnopt_optuna_sweeper.optuna_sweeper import RESULTS_FILE, NnoptOptunaSweeper


def _study(directions: list[str], trials: list[tuple[float, list[float]]]) -> optuna.Study:
    study = optuna.create_study(directions=directions)
    dist = {"lr": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)}
    for lr, values in trials:
        study.add_trial(optuna.trial.create_trial(params={"lr": lr}, distributions=dist, values=values))
    return study


@pytest.fixture
def sweeper() -> NnoptOptunaSweeper:
    return NnoptOptunaSweeper(objective="val/acc_best", direction="maximize", params={})


def test_single_objective_uses_official_keys(tmp_path, sweeper):
    study = _study(["maximize"], [(0.1, [0.80]), (0.01, [0.93]), (0.5, [0.40])])
    sweeper._write_results(study, tmp_path, ["val/acc_best"])
    assert RESULTS_FILE == "optimization_results.yaml"
    results = OmegaConf.to_container(OmegaConf.load(tmp_path / RESULTS_FILE))
    assert results["name"] == "optuna"
    assert results["best_params"] == {"lr": 0.01} and results["best_value"] == pytest.approx(0.93)
    assert results["best"] == [{"number": 1, "values": {"val/acc_best": pytest.approx(0.93)}, "params": {"lr": 0.01}}]
    assert results["n_trials"] == 3 and results["states"] == {"COMPLETE": 3}


def test_multi_objective_lists_the_pareto_front(tmp_path, sweeper):
    keys = ["val/acc_best", "model/size_bytes_gzip"]
    study = _study(["maximize", "minimize"], [(0.1, [0.9, 100.0]), (0.01, [0.8, 50.0]), (0.5, [0.7, 200.0])])
    sweeper._write_results(study, tmp_path, keys)
    results = OmegaConf.to_container(OmegaConf.load(tmp_path / RESULTS_FILE))
    assert "best_value" not in results
    assert sorted(s["params"]["lr"] for s in results["solutions"]) == [0.01, 0.1]  # trial 2 is dominated
    assert sorted(b["number"] for b in results["best"]) == [0, 1]
