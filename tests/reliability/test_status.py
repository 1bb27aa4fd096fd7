"""Statuses mean what they say: an Optuna-pruned trial is `pruned` (not `completed`) and the report ranks it apart."""

from __future__ import annotations

import optuna

from nnopt import train
from nnopt.metrics import summary as S
from nnopt.report.cli import main as report_main
from tests.helpers import make_cfg


def test_pruned_trial_gets_status_pruned_and_is_ranked_apart(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    trial = study.ask()  # the trial the sweeper would hand to this job
    prune = [
        "+callbacks.prune._target_=nnopt.sweep.optuna_pruning.OptunaPruning",
        f"+callbacks.prune.storage='{storage}'",
        "+callbacks.prune.study_name=s",
        f"+callbacks.prune.trial_number={trial.number}",
        "+callbacks.prune.pruner._target_=optuna.pruners.ThresholdPruner",
        "+callbacks.prune.pruner.lower=2.0",  # accuracy is always below 2: pruned after the first validation
    ]
    run = tmp_path / "sweep" / "0"
    summary = train.run(make_cfg(run, "trainer.max_epochs=3", *prune))
    assert summary[S.STATUS] == S.PRUNED
    assert summary[S.PRUNED_AT] == 0 and summary[S.TRAIN_EPOCHS] == 1
    assert S.read_summary(run)[S.STATUS] == S.PRUNED
    assert study.trials[0].state == optuna.trial.TrialState.PRUNED
    full = train.run(make_cfg(tmp_path / "sweep" / "1", "trainer.max_epochs=1"))
    assert full[S.STATUS] == S.COMPLETED and S.PRUNED_AT not in full
    assert report_main([str(tmp_path / "sweep"), "--quiet"]) == 0  # pruning is not a failure
    md = (tmp_path / "sweep" / "report.md").read_text()
    pruned = md.split("## Pruned trials (stopped early by the pruner; not ranked)")[1]
    assert "\n| 0 |" in pruned and "\n| 1 |" not in pruned
    first = next(ln for ln in md.splitlines() if ln.startswith("| 1 |"))
    assert "trainer.max_epochs=1" in first and "| 1/1 |" in first  # the full run is ranked first
    assert "2 jobs: 1 completed, 0 failed, 0 interrupted, 0 without summary (running or killed); 1 pruned." in md
