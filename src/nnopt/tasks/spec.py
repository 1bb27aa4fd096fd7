"""What a task is, as data: its metric names, what "best" means, and which columns consoles and reports show.

Every place that needs to know "which task is this run?" asks the run's `Task` (a module's `task`, a summary's
`task` key) instead of inferring it. Plain data with no torch import: `nnopt-report` reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nnopt.errors import ConfigError
from nnopt.metrics import names as N
from nnopt.metrics import summary as S

MAX, MIN = "max", "min"


@dataclass(frozen=True)
class Task:
    """A task family.

    Args:
        name: registry name (`data.task`, the summary's `task`).
        module: dotted path of nnopt's LightningModule for it (built when no `task` config names another class).
        metrics: what is logged on val and test every epoch (`val/<m>`, `test/<m>`).
        best: the metric that ranks epochs, checkpoints and runs; `val/<best>_best` is its best-so-far.
        mode: "max" or "min" for `best`.
        train_metrics: logged per training epoch beside `train/loss`.
        optional_metrics: logged only for some data (binary classification: auroc).
        report_metrics: the test metrics a report's table shows, in order.
    """

    name: str
    module: str
    metrics: tuple[str, ...]
    best: str
    mode: str = MAX
    train_metrics: tuple[str, ...] = ()
    optional_metrics: tuple[str, ...] = ()
    report_metrics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in (MAX, MIN):
            raise ConfigError(f"task {self.name}: mode={self.mode!r} is not allowed; choose one of: {MAX}, {MIN}")
        if self.best not in self.metrics:
            raise ConfigError(f"task {self.name}: best={self.best!r} is not one of its metrics {list(self.metrics)}")

    @property
    def monitor(self) -> str:
        """What checkpointing and early stopping watch: `val/<best>`."""
        return N.key(N.VAL, self.best)

    @property
    def best_key(self) -> str:
        """The summary key of the best validation value: `val/<best>_best`."""
        return N.key(N.VAL, f"{self.best}_best")

    @property
    def test_key(self) -> str:
        return N.key(N.TEST, self.best)

    @property
    def larger_is_better(self) -> bool:
        return self.mode == MAX

    def better(self, a: float, b: float) -> bool:
        """Whether value `a` of `best` beats `b`."""
        return a > b if self.larger_is_better else a < b

    def logged(self) -> tuple[str, ...]:
        """Every name the task's module logs during fit (what a callback's `monitor` may name)."""
        per_stage = (*self.metrics, *self.optional_metrics, N.LOSS)
        train = (N.TRAIN_LOSS, *(N.key(N.TRAIN, m) for m in self.train_metrics))
        return (*(N.key(N.VAL, m) for m in per_stage), self.best_key, *train)

    def console_metrics(self) -> tuple[str, ...]:
        """What the progress bar shows: the training loss and the monitored metric."""
        return (N.TRAIN_LOSS, self.monitor)

    def report_keys(self) -> tuple[str, ...]:
        """Summary keys of the task's columns in a report or a run's final table."""
        return (*(N.key(N.TEST, m) for m in self.report_metrics or (self.best,)), self.best_key)


_REGISTRY: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Add `task` under its name (a second registration of the same name replaces it: a re-imported module)."""
    _REGISTRY[task.name] = task
    return task


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get(name: str) -> Task:
    """The task registered as `name`.

    Raises:
        ConfigError: no such task (the message lists the registered ones).
    """
    task = _REGISTRY.get(name)
    if task is None:
        raise ConfigError(f"task={name!r} is not a registered task; choose one of: {', '.join(_REGISTRY)}")
    return task


CLASSIFICATION = register(
    Task(
        name="classification",
        module="nnopt.tasks.classification.Classifier",
        metrics=N.CLASS_METRICS,
        best=N.ACC,
        mode=MAX,
        train_metrics=(N.ACC,),
        optional_metrics=(N.AUROC,),
        report_metrics=(N.ACC, N.F1),
    )
)
REGRESSION = register(
    Task(
        name="regression",
        module="nnopt.tasks.regression.Regressor",
        metrics=N.REGRESSION_METRICS,
        best=N.MSE,
        mode=MIN,
        report_metrics=N.REGRESSION_METRICS,
    )
)


def summary_keys(task: Task) -> dict[str, Any]:
    """What a summary records of its task, so readers that never import the task's code (reports) can rank it."""
    return {S.TASK: task.name, S.TASK_BEST_KEY: task.best_key, S.TASK_MODE: task.mode}


def of_summary(summary: Mapping[str, Any]) -> Task:
    """The task of a run, from its summary.

    A registered name gives its Task; a task nnopt does not know here (a user's, read by `nnopt-report`) is
    described by the summary's own `task/best_key` and `task/mode`; a summary written before the `task` key
    existed is regression when it holds regression results, else classification.
    """
    name = summary.get(S.TASK)
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name]
    best_key, mode = summary.get(S.TASK_BEST_KEY), summary.get(S.TASK_MODE)
    if isinstance(name, str) and isinstance(best_key, str) and best_key.endswith("_best") and mode in (MAX, MIN):
        best = best_key.removeprefix(f"{N.VAL}/").removesuffix("_best")
        return Task(name=name, module="", metrics=(best,), best=best, mode=mode)
    regression = summary.get(N.key(N.TEST, N.MSE)) is not None or summary.get(N.VAL_MSE_BEST) is not None
    return REGRESSION if regression else CLASSIFICATION
