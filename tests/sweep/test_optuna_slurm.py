"""Optuna sweeper (sqlite study, resume, pruning, interrupted trials) and the SLURM submission text."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from optuna.trial import TrialState

from nnopt._compat import record_heartbeat
from nnopt.config import CONFIG_DIR
from nnopt.metrics import summary as S
from nnopt.sweep.optuna_pruning import OptunaPruning
from tests.helpers import TINY, run_cli

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.slow
def test_optuna_search_recorded_in_sqlite_and_resumed(tmp_path: Path) -> None:
    db = tmp_path / "study.db"
    args = [
        "hparams_search=digits_tpe",
        *TINY,
        f"hydra.sweeper.storage=sqlite:///{db}",
        "hydra.sweeper.sampler.n_startup_trials=3",
    ]
    res = run_cli("train", *args, "hydra.sweeper.n_trials=6", log_dir=tmp_path / "logs")
    assert res.returncode == 0, res.stderr[-2000:]
    study = optuna.load_study(study_name="digits_tpe", storage=f"sqlite:///{db}")
    assert len(study.trials) == 6 and all(t.state == TrialState.COMPLETE for t in study.trials)
    lrs = {t.params["optimizer.lr"] for t in study.trials}
    assert len(lrs) == 6 and all(1e-4 <= lr <= 3e-1 for lr in lrs)
    # each trial's objective is its job's summary value
    first_sweep = next((tmp_path / "logs").glob("*/multiruns/*"))
    for trial in study.trials:
        summary = S.read_summary(first_sweep / str(trial.number))
        assert trial.value == pytest.approx(summary[S.VAL_ACC_BEST])  # the preset selects on validation data
        assert summary["overrides"][-4:-1] == [f"{k}={v}" for k, v in trial.params.items()]
    assert (first_sweep / "optimization_results.yaml").is_file() and (first_sweep / "report.md").is_file()

    # a trial left RUNNING by a killed sweep: once its heartbeat is older than the grace period it is failed (not
    # counted) and its parameters run again; a RUNNING trial is never failed just for being RUNNING
    study = optuna.load_study(study_name="digits_tpe", storage=f"sqlite:///{db}")
    stale = study.ask({"optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 3e-1, log=True)})
    record_heartbeat(study, stale)
    time.sleep(3)
    beat = ["hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=2"]
    res = run_cli("train", *args, *beat, "hydra.sweeper.n_trials=8", log_dir=tmp_path / "logs")
    assert res.returncode == 0, res.stderr[-2000:]
    trials = optuna.load_study(study_name="digits_tpe", storage=f"sqlite:///{db}").trials
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == 8 and trials[stale.number].state == TrialState.FAIL
    assert trials[stale.number + 1].system_attrs["failed_trial"] == stale.number
    assert trials[stale.number + 1].params["optimizer.lr"] == stale.params["optimizer.lr"]


def test_missing_objective_and_empty_search_are_one_line(tmp_path: Path) -> None:
    db = f"hydra.sweeper.storage=sqlite:///{tmp_path / 'x.db'}"
    res = run_cli("train", "hparams_search=digits_tpe", *TINY, db, "hydra.sweeper.n_trials=0", log_dir=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("nnopt: error: hydra.sweeper.n_trials=0")
    res = run_cli(
        "train",
        "hparams_search=digits_tpe",
        *TINY,
        db,
        "hydra.sweeper.n_trials=1",
        "hydra.sweeper.objective=test/nope",
        log_dir=tmp_path,
    )
    assert res.returncode == 2
    assert "nnopt: error: hydra.sweeper.objective: no run has test/nope; summary keys:" in res.stderr


def test_pruning_callback_stops_a_bad_trial(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'p.db'}"
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    study = optuna.create_study(study_name="p", storage=storage, direction="maximize", pruner=pruner)
    good = study.ask()
    for epoch in range(3):
        good.report(0.9, epoch)
    study.tell(good, 0.9)
    bad = study.ask()
    callback = OptunaPruning("val/acc", storage, "p", bad.number, pruner=pruner)
    trainer = SimpleNamespace(
        sanity_checking=False,
        is_global_zero=True,
        current_epoch=0,
        should_stop=False,
        callback_metrics={"val/acc": 0.2},
    )
    callback.on_validation_end(trainer, None)
    assert trainer.should_stop and callback.pruned_at == 0
    frozen = optuna.load_study(study_name="p", storage=storage).trials[bad.number]
    assert frozen.state == TrialState.PRUNED and frozen.intermediate_values == {0: 0.2}
    # a plain run (no trial number) never touches a study
    idle = OptunaPruning("val/acc", storage, "p", None)
    trainer.should_stop = False
    idle.on_validation_end(trainer, None)
    assert not trainer.should_stop


def test_slurm_submission_renders_nodes_and_gpus(tmp_path: Path, monkeypatch) -> None:
    """The real hydra-submitit SlurmLauncher builds the sbatch file; only the `sbatch` call is replaced."""
    import submitit.slurm.slurm as slurm
    from hydra.utils import instantiate

    from nnopt.config import resolvers

    resolvers.register()  # the sweep dir is ${run_stamp:}-based, as in nnopt-train
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            return_hydra_config=True,
            overrides=[
                "hydra/launcher=slurm",
                "hydra.launcher.partition=gpu",
                "hydra.launcher.nodes=2",
                "hydra.launcher.gpus_per_node=4",
                "hydra.launcher.tasks_per_node=4",
                "hydra.job.name=nnopt",
                f"paths.log_dir={tmp_path}",
            ],
        )
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "NnoptSlurmLauncher" and launcher.params["max_num_timeout"] == 3
    launcher.setup(hydra_context=None, task_function=lambda c: None, config=cfg)
    rendered: list[str] = []

    class Submitted(Exception):
        pass

    def fake_submit(self, command: str):
        rendered.append(self._make_submission_file_text(command, "uid"))
        raise Submitted

    monkeypatch.setattr(slurm.SlurmExecutor, "_submit_command", fake_submit)
    monkeypatch.setattr(slurm.SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # "srun is installed"
    with pytest.raises(Submitted):
        launcher.launch([["optimizer=sgd"], ["optimizer=adam"]], initial_job_idx=0)
    text = rendered[0]
    for flag in (
        "#SBATCH --partition=gpu",
        "#SBATCH --nodes=2",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=32GB",
        "#SBATCH --time=240",
        "#SBATCH --array=0-1%2",
        "#SBATCH --signal=USR2@120",  # the pre-timeout signal nnopt's launcher turns into checkpoint + requeue
    ):
        assert flag in text, (flag, text)
    assert "srun" in text and "submitit.core._submit" in text
