"""Every use of a private attribute of Lightning, Hydra, Optuna or torch lives here, and only here.

Each is the only way to do something nnopt needs (named in its docstring). `PRIVATE_NAMES` lists them and
`tests/test_compat.py` asserts each still exists, so an upgrade that removes one fails in one named place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

#: (importable owner, attribute) of every private name used below; checked by tests/test_compat.py
PRIVATE_NAMES: tuple[tuple[str, str], ...] = (
    ("lightning_fabric.strategies.launchers.subprocess_script", "_hydra_subprocess_cmd"),
    ("pytorch_lightning.strategies.launchers.subprocess_script", "_hydra_subprocess_cmd"),
    ("pytorch_lightning.LightningModule", "_trainer"),
    ("pytorch_lightning.loggers.wandb.WandbLogger", "_wandb_init"),
    ("pytorch_lightning.loops.training_epoch_loop._TrainingEpochLoop", "_batches_that_stepped"),
    ("pytorch_lightning.core.optimizer.LightningOptimizer", "_on_before_step"),
    ("pytorch_lightning.core.optimizer.LightningOptimizer", "_on_after_step"),
    ("pytorch_lightning.callbacks.BatchSizeFinder", "_init_val"),
    ("pytorch_lightning.loops.fit_loop._FitLoop", "min_epochs"),
    ("pytorch_lightning.utilities.exceptions", "SIGTERMException"),
    ("rich.progress.BarColumn", "bar_width"),
    ("pytorch_lightning.callbacks.progress.rich_progress", "CustomBarColumn"),
    ("pytorch_lightning.callbacks.progress.rich_progress", "ProcessingSpeedColumn"),
    ("pytorch_lightning.callbacks.RichModelSummary", "summarize"),
    ("optuna.study.Study", "_storage"),
    ("optuna.study.Study", "_study_id"),
    ("optuna.trial.FrozenTrial", "_trial_id"),
    ("optuna.storages.BaseStorage", "get_trial_id_from_study_id_trial_number"),
)


# -- Lightning -----------------------------------------------------------------------------------------------
def replace_hydra_subprocess_command(
    make: Callable[[Callable[[int], tuple[Sequence[str], str]]], Callable[[int], tuple[Sequence[str], str]]],
) -> None:
    """Replace the command Lightning's DDP launcher runs for child ranks when Hydra started the parent.

    Lightning re-runs `sys.argv` (in a multirun: the whole sweep); there is no public hook to change it.
    `make(original)` returns the new function; it may fall back to `original`.
    """
    from lightning_fabric.strategies.launchers import subprocess_script as fabric_launcher
    from pytorch_lightning.strategies.launchers import subprocess_script as launcher

    launcher._hydra_subprocess_cmd = make(fabric_launcher._hydra_subprocess_cmd)


def count_logged_steps(trainer: Any, extra: int) -> None:
    """Add `extra` optimizer steps to the step counter Lightning logs against (nnopt.fused: one training_step runs
    several optimizer steps, Lightning counts one); without it loggers' step axis would count training_steps.
    Saved in checkpoints by Lightning, so a resumed run continues the same axis."""
    if extra:
        trainer.fit_loop.epoch_loop._batches_that_stepped += extra


def plain_optimizer_step(optimizer: Any, before_step: Callable[[], None]) -> None:
    """`LightningOptimizer.step()` where the strategy and precision plugin would only call `before_step` (the
    `on_before_optimizer_step` hooks) and the torch optimizer's `step()`: one device, 32/64-bit (nnopt.fused).

    Lightning's layers (strategy, precision plugin, closure, a profiler context per callback) cost ~50 us per step,
    a tenth of a small model's step; the progress hooks the manual-optimisation loop installs on the optimizer
    (`_on_before_step`/`_on_after_step`: they count the step for `trainer.global_step`) are kept.
    """
    optimizer._on_before_step()
    before_step()
    optimizer.optimizer.step()
    optimizer._on_after_step()


def attached_trainer(module: Any) -> Any:
    """The trainer a LightningModule is attached to, or None (`module.trainer` raises when there is none)."""
    return module._trainer


def restart_best_tracking(trainer: Any) -> None:
    """Make every monitoring ModelCheckpoint forget its best score so far.

    Compression changes what "best" means (the best *compressed* model, not a denser/float epoch that validated
    higher); ModelCheckpoint has no public reset, so its bookkeeping attributes are set back to their initial values.
    """
    import torch

    for cb in trainer.checkpoint_callbacks:
        if getattr(cb, "monitor", None) is None:
            continue
        cb.best_k_models = {}
        cb.kth_best_model_path = ""
        cb.best_model_score = None
        cb.best_model_path = ""
        cb.kth_value = torch.tensor(torch.inf if cb.mode == "min" else -torch.inf)


def set_batch_size_finder_start(finder: Any, batch_size: int) -> None:
    """Make a `BatchSizeFinder` start its search from `batch_size` (nnopt: the configured `data.batch_size`).

    Lightning takes the start only as `init_val` in `__init__`, but the configured batch size is known only once
    the datamodule is attached (at fit start); `_init_val` is what `scale_batch_size` reads.
    """
    finder._init_val = batch_size


def raise_min_epochs(trainer: Any, epochs: int) -> None:
    """Make the running fit train at least `epochs` epochs, whatever early stopping says (compression schedules).

    The Trainer takes `min_epochs` only when it is built (`Trainer.min_epochs` is a read-only property); the fit
    loop's attribute, which its `done` check reads each epoch, is the only place to raise it during a run.
    """
    trainer.fit_loop.min_epochs = max(trainer.fit_loop.min_epochs or 0, epochs)


def is_lightning_sigterm(exc: BaseException) -> bool:
    """Whether `exc` is Lightning's `SIGTERMException` (a `SystemExit` without a code, raised after SIGTERM).

    Lightning has no public way to tell that a fit ended by SIGTERM other than this class. Lightning is not
    imported for the check (nnopt.interrupt must stay light): if it is not loaded, nothing raised its exception.
    """
    import sys

    exceptions = sys.modules.get("pytorch_lightning.utilities.exceptions")
    return exceptions is not None and isinstance(exc, exceptions.SIGTERMException)


def compact_rich_bar_columns(columns: list, bar_width: int, speed: bool) -> list:
    """`RichProgressBar.configure_columns()`'s columns with a `bar_width`-character bar and, unless `speed`,
    without the trailing it/s column.

    Lightning builds the columns in one method with no options: [description, bar, batches, time, speed]; the
    bar (a `CustomBarColumn`) and the speed column (`ProcessingSpeedColumn`) are found by these positions.
    """
    columns[1].bar_width = bar_width
    return columns if speed else columns[:-1]


def rich_model_table(
    summary_data: list[tuple[str, list[str]]], *args: Any, leave_out: Sequence[str] = (), **kwargs: Any
) -> None:
    """Print Lightning's rich model table without the columns named in `leave_out` (e.g. "In sizes").

    `RichModelSummary.summarize` is a static method Lightning's `on_fit_start` calls with the table as its first
    argument `summary_data` (a list of (column, values)) and the totals after it (`total_flops` by keyword); it
    takes no column choice, so the table is filtered before it is passed on unchanged.
    """
    from pytorch_lightning.callbacks import RichModelSummary

    data = [(name, values) for name, values in summary_data if name not in leave_out]
    RichModelSummary.summarize(data, *args, **kwargs)


def wandb_init_arguments(logger: Any) -> dict[str, Any] | None:
    """The keyword arguments Lightning's WandbLogger will pass to `wandb.init` (a dict it keeps privately; there is
    no public way to leave out one it sets itself, e.g. `anonymous=None`), or None for another logger."""
    init = getattr(logger, "_wandb_init", None)
    return init if isinstance(init, dict) else None


# -- Optuna --------------------------------------------------------------------------------------------------
def running_trial(study: Any, number: int) -> Any:
    """The live `optuna.trial.Trial` with this number, from another process (no public lookup by number)."""
    import optuna

    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return optuna.trial.Trial(study, trial_id)


def trial_state(study: Any, trial: Any) -> Any:
    """The current state of one trial as stored (a Trial object caches nothing; no public read of one trial)."""
    return study._storage.get_trial(trial._trial_id).state


def set_trial_user_attr(study: Any, trial: Any, key: str, value: Any) -> None:
    """Set a user attribute on a trial that is not the caller's live Trial object (no public API)."""
    study._storage.set_trial_user_attr(trial._trial_id, key, value)


def record_heartbeat(study: Any, trial: Any) -> None:
    """Record a heartbeat for a live trial asked with ask/tell (Optuna beats only inside `Study.optimize`)."""
    study._storage.record_heartbeat(trial._trial_id)


def fail_trial(study: Any, trial: Any) -> bool:
    """Set a running trial of any process to FAIL (as `optuna.storages.fail_stale_trials` does); False if it had
    finished meanwhile."""
    import optuna
    from optuna.trial import TrialState

    try:
        return bool(study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL))
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def heartbeat_interval(study: Any) -> int | None:
    """The heartbeat interval of the study's storage (None: it keeps no heartbeats, e.g. the journal file).

    Optuna exposes it only on the storage object, which a Study holds privately."""
    storage = study._storage
    getter = getattr(storage, "get_heartbeat_interval", None)
    return getter() if callable(getter) else None
