"""Lightning callback that reports each validation to an Optuna trial and stops a trial the pruner rejects.

The nnopt Optuna sweeper gives the trial's number (`trial_number`); with none (a plain run) it does nothing.
It reaches the study through its storage, so it works in launcher workers and on other machines too.
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
from typing_extensions import override

log = logging.getLogger("nnopt")


class OptunaPruning(pl.Callback):
    """Report `monitor` after every validation to the running Optuna trial; stop training when it is pruned.

    Args:
        monitor: the logged metric the study optimises.
        storage: the study's Optuna storage URL.
        study_name: the study's name in `storage`.
        trial_number: this job's trial; None (a plain run, no sweeper) disables the callback.
        pruner: the sweeper's optuna pruner (instantiated from the same config), which decides.
    """

    def __init__(
        self,
        monitor: str = "val/acc",
        storage: str | None = None,
        study_name: str | None = None,
        trial_number: int | None = None,
        pruner: Any = None,
    ) -> None:
        self.monitor = monitor
        self.pruner = pruner
        self.enabled = trial_number is not None and bool(storage) and bool(study_name)
        self.storage, self.study_name, self.trial_number = storage, study_name, trial_number
        self.pruned_at: int | None = None
        self._trial: Any = None

    def _get_trial(self) -> Any:
        if self._trial is None:
            import optuna

            from nnopt._compat import running_trial

            study = optuna.load_study(study_name=self.study_name, storage=self.storage, pruner=self.pruner)
            self._trial = running_trial(study, self.trial_number)
        return self._trial

    @override
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
            epoch, number = trainer.current_epoch, self.trial_number
            log.info("optuna: trial %d pruned after epoch %d (%s=%.4f)", number, epoch, self.monitor, float(value))

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"pruned_at": self.pruned_at}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pruned_at = state_dict.get("pruned_at")
