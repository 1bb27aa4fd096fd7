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
    trials = [(0.1, [0.80]), (0.01, [0.93]), (0.5, [0.40])]
    study = _study(["maximize"], trials)
    sweeper._write_results(study, tmp_path, ["val/acc_best"])
    # the one file written has the official plugin's name (hydra-optuna-sweeper's _impl.py writes it)
    assert [p.name for p in tmp_path.iterdir()] == ["optimization_results.yaml"]
    results = OmegaConf.to_container(OmegaConf.load(tmp_path / RESULTS_FILE))
    number, (lr, (acc,)) = max(enumerate(trials), key=lambda item: item[1][1][0])  # the best, from the inputs
    assert (number, lr, acc) == (1, 0.01, 0.93)
    assert results["name"] == "optuna"
    assert results["best_params"] == {"lr": lr} and results["best_value"] == pytest.approx(acc)
    assert results["best"] == [{"number": number, "values": {"val/acc_best": pytest.approx(acc)}, "params": {"lr": lr}}]
    assert results["n_trials"] == len(trials) and results["states"] == {"COMPLETE": len(trials)}


def _pareto_front(values: list[list[float]], signs: list[int]) -> list[int]:
    """Indices of the non-dominated points (sign +1: larger is better), by pairwise comparison."""

    def dominates(a: list[float], b: list[float]) -> bool:
        pairs = [(s * x, s * y) for s, x, y in zip(signs, a, b, strict=True)]
        return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)

    return [i for i, v in enumerate(values) if not any(dominates(w, v) for w in values)]


def test_multi_objective_lists_the_pareto_front(tmp_path, sweeper):
    keys = ["val/acc_best", "model/size_bytes_gzip"]
    trials = [(0.1, [0.9, 100.0]), (0.01, [0.8, 50.0]), (0.5, [0.7, 200.0]), (0.2, [0.85, 100.0])]
    study = _study(["maximize", "minimize"], trials)
    sweeper._write_results(study, tmp_path, keys)
    results = OmegaConf.to_container(OmegaConf.load(tmp_path / RESULTS_FILE))
    front = _pareto_front([values for _, values in trials], [+1, -1])
    assert front == [0, 1]  # trial 2 is dominated by both, trial 3 by trial 0
    assert "best_value" not in results
    assert sorted(s["params"]["lr"] for s in results["solutions"]) == sorted(trials[i][0] for i in front)
    assert sorted(b["number"] for b in results["best"]) == front
    assert {b["number"]: b["values"] for b in results["best"]} == {
        i: dict(zip(keys, trials[i][1], strict=True)) for i in front
    }
