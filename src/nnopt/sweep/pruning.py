"""Lightning callback that reports each validation to an Optuna trial and stops a trial the pruner rejects.

The nnopt Optuna sweeper gives the trial's number (`trial_number`); with none (a plain run) it does nothing.
It reaches the study through its storage, so it works in launcher workers and on other machines too.
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl

log = logging.getLogger("nnopt")


class OptunaPruning(pl.Callback):
    def __init__(self, monitor: str = "val/acc", storage: str | None = None, study_name: str | None = None,
                 trial_number: int | None = None, pruner: Any = None) -> None:  # fmt: skip
        """`pruner`: the sweeper's optuna pruner (instantiated from the same config), which decides."""
        self.monitor = monitor
        self.pruner = pruner
        self.enabled = trial_number is not None and bool(storage) and bool(study_name)
        self.storage, self.study_name, self.trial_number = storage, study_name, trial_number
        self.pruned_at: int | None = None
        self._trial: Any = None

    def _get_trial(self) -> Any:
        if self._trial is None:
            import optuna

            study = optuna.load_study(study_name=self.study_name, storage=self.storage, pruner=self.pruner)
            # Optuna has no public lookup of a running trial by number from another process
            trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, self.trial_number)
            self._trial = optuna.trial.Trial(study, trial_id)
        return self._trial

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.enabled or trainer.sanity_checking or not trainer.is_global_zero:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        trial = self._get_trial()
        trial.report(float(value), step=trainer.current_epoch)
        if trial.should_prune():
            from optuna.trial import TrialState

            trial.study.tell(self.trial_number, state=TrialState.PRUNED)
            self.pruned_at = trainer.current_epoch
            trainer.should_stop = True
            log.info("optuna: trial %d pruned after epoch %d (%s=%.4f)", self.trial_number,
                     trainer.current_epoch, self.monitor, float(value))  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {"pruned_at": self.pruned_at}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pruned_at = state_dict.get("pruned_at")
