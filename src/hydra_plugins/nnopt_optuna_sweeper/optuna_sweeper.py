"""A thin Hydra sweeper on current Optuna (5.x): TPE or any sampler, sqlite resume, any summary key as
objective, multi-objective, constraints, and pruning through `nnopt.sweep.optuna_pruning.OptunaPruning`.

Why not hydra-optuna-sweeper 1.3: it pins optuna<3 (which needs sqlalchemy<2) and cannot prune trials.

Search space: Hydra's override grammar, in `hydra.sweeper.params` or on the command line:
`choice(a,b)`, `range(lo,hi[,step])`, `interval(lo,hi)`, `int(interval(lo,hi))`, `tag(log, interval(lo,hi))`.
Each trial is one job of the configured launcher; its objective values are read from the job's summary.
Length: a Hydra Sweeper plugin must be one module (search space, study, loop, results file).
"""

# no `from __future__ import annotations`: Hydra loads plugin modules outside sys.modules, and dataclasses
# then cannot resolve string annotations
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from nnopt._compat import set_trial_user_attr, trial_state

log = logging.getLogger("nnopt")
#: the callbacks.<name> node the sweeper hands each trial's number to (see conf/hparams_search/)
PRUNING_CALLBACK = "optuna_pruning"
#: the study's outcome in the sweep dir: the official hydra-optuna-sweeper's file name and keys
RESULTS_FILE = "optimization_results.yaml"
CONSTRAINTS_ATTR = "constraints"


@dataclass
class NnoptOptunaSweeperConf:
    _target_: str = "hydra_plugins.nnopt_optuna_sweeper.optuna_sweeper.NnoptOptunaSweeper"
    _recursive_: bool = False  # the sweeper builds sampler/pruner itself (it may add constraints_func)
    objective: Any = "val/acc_best"  # a summary key (a validation one: test is reported, never tuned on), or a list
    direction: Any = "maximize"  # one per objective
    study_name: str = "nnopt"
    storage: Any = None  # e.g. sqlite:///logs/optuna/nnopt.db: an interrupted study resumes from it
    n_trials: int = 20  # total trials in the study: a re-run tops it up to this number
    n_jobs: int = 1  # trials launched together (parallel with a parallel launcher)
    sampler: Any = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "n_startup_trials": 5})
    pruner: Any = None  # e.g. {_target_: optuna.pruners.MedianPruner}; needs callbacks.optuna_pruning
    constraints: dict[str, float] = field(default_factory=dict)  # summary key -> upper bound (value <= bound)
    params: dict[str, str] = field(default_factory=dict)


ConfigStore.instance().store(group="hydra/sweeper", name="nnopt_optuna", node=NnoptOptunaSweeperConf, provider="nnopt")


def _constraints(trial: Any) -> Sequence[float]:
    """TPE's constraints_func: values <= 0 are feasible (set per trial from its summary)."""
    return trial.user_attrs.get(CONSTRAINTS_ATTR, [1.0])


def distribution(override: Override) -> Any:
    """Optuna distribution for one sweep override, or None for a fixed value."""
    import optuna.distributions as D

    if not override.is_sweep_override():
        return None
    value = override.value()
    if isinstance(value, ChoiceSweep):
        return D.CategoricalDistribution([str(v) if not isinstance(v, (int, float)) else v for v in value.list])
    if isinstance(value, RangeSweep):
        if all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
            high = value.start + value.step * ((value.stop - value.start - 1) // value.step)
            return D.IntDistribution(value.start, high, step=value.step)
        return D.CategoricalDistribution(list(override.sweep_iterator()))
    if isinstance(value, IntervalSweep):
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return D.IntDistribution(value.start, value.end, log=log_scale)
        return D.FloatDistribution(value.start, value.end, log=log_scale)
    raise ValueError(f"cannot search over {override.input_line}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _summary(ret: Any) -> dict[str, Any]:
    """A job's summary: what the task returned (None when it failed before writing one)."""
    try:
        value = ret.return_value  # re-raises the job's exception when it failed
    except Exception:  # noqa: BLE001 - a failed job simply has no summary
        return {}
    return value if isinstance(value, dict) else {}


def _fail(message: str) -> None:
    from nnopt.errors import fail

    fail(message)


class NnoptOptunaSweeper(Sweeper):
    def __init__(self, **conf: Any) -> None:
        self.conf = OmegaConf.to_container(OmegaConf.create(conf), resolve=True)
        self.config: DictConfig | None = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # -- search space and study ---------------------------------------------------------------------------
    def _space(self, arguments: list[str]) -> tuple[dict[str, Any], list[str]]:
        params = [f"{k}={v}" for k, v in (self.conf.get("params") or {}).items()]
        parser = OverridesParser.create()
        space: dict[str, Any] = {}
        fixed: list[str] = []
        for override, arg in zip(parser.parse_overrides(params + arguments), params + arguments, strict=True):
            dist = distribution(override)
            key = override.get_key_element()
            if dist is None:
                fixed = [f for f in fixed if f.split("=", 1)[0] != arg.split("=", 1)[0]] + [arg]
                space.pop(key, None)
            else:
                space[key] = dist
        return space, fixed

    def _objectives(self) -> tuple[list[str], list[str]]:
        as_list = lambda v: list(v) if isinstance(v, (list, tuple)) else [v]  # noqa: E731
        keys, directions = as_list(self.conf["objective"]), as_list(self.conf["direction"])
        if len(keys) != len(directions):
            _fail(f"hydra.sweeper.objective has {len(keys)} keys but direction has {len(directions)}; give one each")
        bad = [d for d in directions if d not in ("maximize", "minimize")]
        if bad:
            _fail(f"hydra.sweeper.direction={bad[0]!r} is not allowed; choose maximize or minimize")
        return keys, directions

    def _study(self, directions: list[str]) -> Any:
        import optuna
        from hydra.utils import instantiate

        sampler_conf = dict(self.conf.get("sampler") or {})
        if self.conf.get("constraints"):
            sampler_conf["constraints_func"] = _constraints
        sampler = instantiate(sampler_conf) if sampler_conf else None
        pruner = instantiate(self.conf["pruner"]) if self.conf.get("pruner") else optuna.pruners.NopPruner()
        storage = self.conf.get("storage")
        if storage and str(storage).startswith("sqlite:///"):
            Path(str(storage)[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        return optuna.create_study(
            study_name=self.conf["study_name"],
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            directions=directions,
            load_if_exists=True,
        )

    @staticmethod
    def _requeue_interrupted(study: Any) -> None:
        """Trials left RUNNING by a killed sweep: mark failed (not counted) and run their params again."""
        from optuna.trial import TrialState

        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            set_trial_user_attr(study, trial, "interrupted", True)
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            study.enqueue_trial(trial.params, skip_if_exists=False)
            log.info("optuna: trial %d was interrupted; its parameters are queued again", trial.number)

    @staticmethod
    def _counted(study: Any) -> int:
        return sum(t.state.is_finished() and not t.user_attrs.get("interrupted") for t in study.get_trials(False))

    # -- the loop -------------------------------------------------------------------------------------------
    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None
        from optuna.trial import TrialState

        keys, directions = self._objectives()
        n_trials, n_jobs = int(self.conf["n_trials"]), int(self.conf["n_jobs"])
        if n_trials < 1 or n_jobs < 1:
            _fail(f"hydra.sweeper.n_trials={n_trials} / n_jobs={n_jobs}: both must be >= 1 (empty search)")
        space, fixed = self._space(arguments)
        if not space:
            _fail("hydra.sweeper: nothing to search; give params such as optimizer.lr='tag(log, interval(1e-4, 1e-1))'")
        pruning = self._pruning_override(len(keys))
        study = self._study(directions)
        self._requeue_interrupted(study)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        where = self.conf.get("storage") or "in memory"
        log.info("optuna: study %r (%s), %d of %d trials done", study.study_name, where, self._counted(study), n_trials)
        have: set[str] = set()  # numeric summary keys seen so far, to name a missing objective early
        while (remaining := n_trials - self._counted(study)) > 0:
            trials = [study.ask(space) for _ in range(min(n_jobs, remaining))]
            batch = [[*fixed, *(f"{k}={v}" for k, v in t.params.items()), *pruning(t.number)] for t in trials]
            returns = self.launcher.launch(batch, initial_job_idx=trials[0].number)
            for trial, ret in zip(trials, returns, strict=True):
                state = trial_state(study, trial)
                if state.is_finished():  # pruned by its callback
                    log.info("optuna: trial %d %s", trial.number, state.name)
                    continue
                summary = _summary(ret)
                have |= {k for k, v in summary.items() if _number(v)}
                values = [summary.get(k) for k in keys]
                if summary.get("status") != "completed" or not all(_number(v) for v in values):
                    study.tell(trial, state=TrialState.FAIL)
                    continue
                if self.conf.get("constraints"):
                    bounds = self.conf["constraints"].items()
                    trial.set_user_attr(CONSTRAINTS_ATTR, [float(summary.get(k, math.inf)) - b for k, b in bounds])
                study.tell(trial, values)
            missing = [k for k in keys if k not in have]
            if have and missing:
                _fail(
                    f"hydra.sweeper.objective: no run has {', '.join(missing)}; summary keys: {', '.join(sorted(have))}"
                )
        self._write_results(study, sweep_dir, keys)
        return None

    def _pruning_override(self, n_objectives: int) -> Any:
        """Hands the trial number to callbacks.optuna_pruning (single objective only: Optuna's rule)."""
        node = (self.config.get("callbacks") or {}).get(PRUNING_CALLBACK) if self.config else None
        if not node or not self.conf.get("pruner") or n_objectives > 1:
            if self.conf.get("pruner") and n_objectives > 1:
                log.warning("optuna: pruning needs a single objective; trials are not pruned")
            return lambda number: []
        if not self.conf.get("storage"):
            _fail("hydra.sweeper.pruner needs hydra.sweeper.storage (trials report to the study through it)")
        return lambda number: [f"++callbacks.{PRUNING_CALLBACK}.trial_number={number}"]

    def _write_results(self, study: Any, sweep_dir: Path, keys: list[str]) -> None:
        from optuna.trial import TrialState

        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        trials = study.get_trials(deepcopy=False)
        states = {s.name: sum(t.state == s for t in trials) for s in TrialState}
        results: dict[str, Any] = {
            "study_name": study.study_name,
            "objective": keys,
            "n_trials": len(trials),
            "states": {k: v for k, v in states.items() if v},
        }
        if done:
            best = study.best_trials if len(keys) > 1 else [study.best_trial]
            # the official plugin's keys first: best_params/best_value (one objective), solutions (Pareto front)
            if len(keys) == 1:
                results = {"name": "optuna", "best_params": best[0].params, "best_value": best[0].value, **results}
            else:
                results = {
                    "name": "optuna",
                    "solutions": [{"params": t.params, "values": t.values} for t in best],
                    **results,
                }
            results["best"] = [
                {"number": t.number, "values": dict(zip(keys, t.values, strict=True)), "params": t.params} for t in best
            ]
        OmegaConf.save(OmegaConf.create(results), sweep_dir / RESULTS_FILE)
        log.info("optuna: %s", results.get("best") or "no completed trial")
