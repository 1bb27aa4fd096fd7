"""A thin Hydra sweeper on current Optuna (5.x): TPE or any sampler, sqlite resume, any summary key as
objective, multi-objective, constraints, and pruning through `nnopt.sweep.optuna_pruning.OptunaPruning`.

Why not hydra-optuna-sweeper 1.3: it pins optuna<3 (which needs sqlalchemy<2) and cannot prune trials.

Search space: Hydra's override grammar, in `hydra.sweeper.params` or on the command line:
`choice(a,b)`, `range(lo,hi[,step])`, `interval(lo,hi)`, `int(interval(lo,hi))`, `tag(log, interval(lo,hi))`.
Each trial is one job of the configured launcher; its objective values are read from the job's summary.

Shared studies: several sweeper processes (workers, e.g. a SLURM array: scripts/sbatch_study.sh) may run one study in
one storage (any SQLAlchemy URL: `postgresql+psycopg://user@host:port/db`, `sqlite:///file.db`; or
`journal:///path/file.log`, Optuna's journal file, for workers on one host). `n_trials` is the study's total over all
workers. Each worker keeps at most `n_jobs` of its trials in flight and asks for the next one as soon as one ends (no
batch barrier); it records a heartbeat for each of its running trials every `heartbeat_interval` seconds. A trial whose
heartbeat is older than `grace_period` (its worker died) is failed by whichever worker looks next
(`optuna.storages.fail_stale_trials`) and queued again once (`RetryHeartbeatStaleTrialCallback(max_retry)`); the
journal file (no heartbeat in Optuna) finds dead workers on its host by process id. A worker never touches another
live worker's trials. Idle workers wait until the whole study is finished, so the results file and the sweep report
written last cover every trial.
Length: a Hydra Sweeper plugin must be one module (search space, study, storage, loop, results file).
"""

# no `from __future__ import annotations`: Hydra loads plugin modules outside sys.modules, and dataclasses
# then cannot resolve string annotations
import concurrent.futures as futures
import logging
import math
import os
import socket
import threading
import time
import warnings
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

from nnopt._compat import fail_trial, heartbeat_interval, record_heartbeat, trial_state

log = logging.getLogger("nnopt")
#: the callbacks.<name> node the sweeper hands each trial's number to (see conf/hparams_search/)
PRUNING_CALLBACK = "optuna_pruning"
#: the study's outcome in the sweep dir: the official hydra-optuna-sweeper's file name and keys
RESULTS_FILE = "optimization_results.yaml"
CONSTRAINTS_ATTR = "constraints"
#: study user attribute: what the study searches and optimises (a joining worker must agree)
STUDY_ATTR = "nnopt_study"
#: trial user attributes: the worker running it (host:pid:start), a trial asked beyond n_trials (never run)
WORKER_ATTR, SURPLUS_ATTR = "nnopt_worker", "nnopt_surplus"
JOURNAL = "journal:"


@dataclass
class NnoptOptunaSweeperConf:
    _target_: str = "hydra_plugins.nnopt_optuna_sweeper.optuna_sweeper.NnoptOptunaSweeper"
    _recursive_: bool = False  # the sweeper builds sampler/pruner itself (it may add constraints_func)
    objective: Any = "val/acc_best"  # a summary key (a validation one: test is reported, never tuned on), or a list
    direction: Any = "maximize"  # one per objective
    study_name: str = "nnopt"
    storage: Any = None  # e.g. sqlite:///logs/optuna/nnopt.db: an interrupted study resumes from it
    n_trials: int = 20  # total trials in the study: a re-run tops it up to this number
    n_jobs: int = 1  # this worker's trials in flight at once (parallel with joblib/submitit launchers)
    heartbeat_interval: int = 10  # seconds between heartbeats of each running trial (RDB storages)
    grace_period: Any = None  # seconds without a heartbeat before a trial counts as dead (None: 2 x interval)
    max_retry: int = 1  # a dead worker's trial is run again this many times at most
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


def _retry_callback(max_retry: int) -> Any:
    """Optuna's retry helpers are "experimental" since v2.8 (a warning on each use): the behaviour nnopt tests."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)


def _retry_of(trial: Any) -> int | None:
    """The number of the dead trial whose parameters `trial` runs again (None: not a retry)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def _retry_history(trial: Any) -> list[int]:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retry_history(trial)


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

    def _open_storage(self) -> Any:
        """The storage `hydra.sweeper.storage` names, checked now: a bad or unreachable URL is one line, exit 2."""
        url = self.conf.get("storage")
        if not url:
            return None
        url = str(url)
        import optuna

        retry = _retry_callback(int(self.conf.get("max_retry", 1)))
        if url.startswith(JOURNAL):
            from optuna.storages.journal import JournalFileBackend

            path = Path(url[len(JOURNAL) :].removeprefix("//"))
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
            except OSError as exc:
                _fail(f"hydra.sweeper.storage={url}: cannot open the journal file: {exc}")
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

        try:
            parsed = make_url(url)
            parsed.get_dialect()
        except NoSuchModuleError:
            _fail(f"hydra.sweeper.storage={url}: unknown database kind {url.split(':', 1)[0]!r}")
        except (ArgumentError, ValueError):
            _fail(
                f"hydra.sweeper.storage={url}: not a storage URL; use sqlite:///<file>, "
                "postgresql+psycopg://<user>@<host>:<port>/<db> or journal:///<file>"
            )
        except ImportError as exc:
            _fail(
                f"hydra.sweeper.storage={url}: its driver is not installed ({exc.name}): pip install 'nnopt[cluster]'"
            )
        shown = parsed.render_as_string(hide_password=True)
        engine: dict[str, Any] = {"pool_pre_ping": True}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine["connect_args"] = {"timeout": 60}  # several workers on one file wait for its lock
        elif parsed.get_backend_name() == "postgresql":
            engine["connect_args"] = {"connect_timeout": 10}
        interval = int(self.conf.get("heartbeat_interval") or 0)
        grace = self.conf.get("grace_period")
        for attempt in range(4):  # workers starting together race to create the schema: the loser retries
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "heartbeat is for Study.optimize": this loop beats itself
                    return optuna.storages.RDBStorage(
                        url,
                        engine_kwargs=engine,
                        heartbeat_interval=interval or None,
                        grace_period=int(grace) if grace else None,
                        heartbeat_stale_trial_callback=retry if interval else None,
                    )
            except ImportError as exc:
                _fail(
                    f"hydra.sweeper.storage={shown}: its driver is not installed ({exc.name}): "
                    "pip install 'nnopt[cluster]'"
                )
            except SQLAlchemyError as exc:
                first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
                racing = any(word in first for word in ("already exists", "duplicate key", "locked"))
                if attempt == 3 or not racing:
                    _fail(f"hydra.sweeper.storage={shown}: cannot reach the database: {first}")
                time.sleep(0.5 + attempt)
        return None

    def _study(self, directions: list[str], keys: list[str], space: dict[str, Any]) -> Any:
        import optuna
        from hydra.utils import instantiate
        from optuna.distributions import distribution_to_json

        sampler_conf = dict(self.conf.get("sampler") or {})
        if self.conf.get("constraints"):
            sampler_conf["constraints_func"] = _constraints
        worker = _worker_index()
        if sampler_conf.get("seed") is not None and worker:  # workers of one study must not propose the same points
            sampler_conf["seed"] = int(sampler_conf["seed"]) + 1000 * worker
            log.info("optuna: worker %d samples with seed %d", worker, sampler_conf["seed"])
        sampler = instantiate(sampler_conf) if sampler_conf else None
        pruner = instantiate(self.conf["pruner"]) if self.conf.get("pruner") else optuna.pruners.NopPruner()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # nnopt logs the study and each trial itself
        storage = self._open_storage()
        name = self.conf["study_name"]
        study = optuna.create_study(
            study_name=name, storage=storage, sampler=sampler, pruner=pruner, directions=directions, load_if_exists=True
        )
        have = [d.name.lower() for d in study.directions]
        if have != directions:
            _fail(f"hydra.sweeper.direction={directions}: study {name!r} in this storage optimises {have}")
        mine = {"objective": keys, "space": {k: distribution_to_json(d) for k, d in sorted(space.items())}}
        theirs = study.user_attrs.get(STUDY_ATTR)
        if theirs is None:
            study.set_user_attr(STUDY_ATTR, mine)
        elif theirs["objective"] != keys:
            _fail(f"hydra.sweeper.objective={keys}: study {name!r} in this storage optimises {theirs['objective']}")
        elif theirs["space"] != mine["space"]:
            diff = sorted(
                k for k in set(theirs["space"]) | set(mine["space"]) if theirs["space"].get(k) != mine["space"].get(k)
            )
            _fail(
                f"hydra.sweeper.params: study {name!r} in this storage searches another space "
                f"(differs in {', '.join(diff)}); use another study_name or the same params"
            )
        return study

    # -- who counts, who is dead --------------------------------------------------------------------------
    @staticmethod
    def _tally(study: Any) -> tuple[list[Any], list[Any]]:
        """(finished, running) trials that count towards n_trials: not waiting, not a dead trial that was retried,
        not a surplus ask, not a trial an older nnopt marked interrupted."""
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        retried = {n for t in trials for n in _retry_history(t)}
        finished, running = [], []
        for t in trials:
            if t.state == TrialState.RUNNING:
                running.append(t)
            elif t.state.is_finished():
                if t.state == TrialState.FAIL and (
                    t.number in retried or t.user_attrs.get(SURPLUS_ATTR) or t.user_attrs.get("interrupted")
                ):
                    continue
                finished.append(t)
        return finished, running

    @staticmethod
    def _counted(study: Any) -> int:
        return len(NnoptOptunaSweeper._tally(study)[0])

    def _reap(self, study: Any) -> None:
        """Fail the trials of dead workers and queue them again (never a live worker's trial)."""
        import optuna
        from optuna.trial import TrialState

        if _heartbeats(study):
            before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False)
            for number in sorted(before & {t.number for t in trials if t.state == TrialState.FAIL}):
                log.info("optuna: trial %d had no heartbeat for the grace period; its worker is gone", number)
            return
        # journal / in-memory: no heartbeat in Optuna; on one host a worker is dead when its process is
        retry = _retry_callback(int(self.conf.get("max_retry", 1)))
        for t in study.get_trials(deepcopy=True, states=(TrialState.RUNNING,)):
            if _worker_dead(t.user_attrs.get(WORKER_ATTR)) and fail_trial(study, t):
                log.info("optuna: trial %d: its worker (%s) is gone", t.number, t.user_attrs.get(WORKER_ATTR))
                retry(study, t)

    # -- the loop -------------------------------------------------------------------------------------------
    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None
        keys, directions = self._objectives()
        n_trials, n_jobs = int(self.conf["n_trials"]), int(self.conf["n_jobs"])
        if n_trials < 1 or n_jobs < 1:
            _fail(f"hydra.sweeper.n_trials={n_trials} / n_jobs={n_jobs}: both must be >= 1 (empty search)")
        space, fixed = self._space(arguments)
        if not space:
            _fail("hydra.sweeper: nothing to search; give params such as optimizer.lr='tag(log, interval(1e-4, 1e-1))'")
        pruning = self._pruning_override(len(keys))
        study = self._study(directions, keys, space)
        if n_jobs > 1 and type(self.launcher).__name__ == "BasicLauncher":
            log.info("optuna: the basic launcher runs one job at a time; n_jobs=%d needs joblib or slurm", n_jobs)
            n_jobs = 1
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        where = self.conf.get("storage") or "in memory"
        log.info("optuna: study %r (%s), %d of %d trials done", study.study_name, where, self._counted(study), n_trials)
        loop = _Loop(self, study, space, keys, n_trials, n_jobs, fixed, pruning)
        try:
            loop.run()
        finally:
            loop.stop()
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
        trials, running = self._tally(study)  # the whole study, every worker's trials
        states = {s.name: sum(t.state == s for t in trials) for s in TrialState}
        retried = sum(_retry_of(t) is not None for t in trials)
        results: dict[str, Any] = {
            "study_name": study.study_name,
            "objective": keys,
            "n_trials": len(trials),
            "states": {k: v for k, v in states.items() if v},
            "retried": retried,  # trials that re-ran the parameters of a dead worker's trial
            "running": len(running),
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
        tmp = sweep_dir / f".{RESULTS_FILE}.{os.getpid()}"  # several workers: each replaces the file whole
        OmegaConf.save(OmegaConf.create(results), tmp)
        os.replace(tmp, sweep_dir / RESULTS_FILE)
        log.info("optuna: %s", results.get("best") or "no completed trial")


# -- one worker's loop ---------------------------------------------------------------------------------------
def _heartbeats(study: Any) -> bool:
    """Whether the study's storage keeps Optuna heartbeats (RDB storages with heartbeat_interval; not the journal)."""
    return bool(heartbeat_interval(study))


def _worker_index() -> int:
    """This worker's index among the workers of one study: NNOPT_STUDY_WORKER, else the SLURM array task id, else 0."""
    for name in ("NNOPT_STUDY_WORKER", "SLURM_ARRAY_TASK_ID"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def _worker_id() -> str:
    """host:pid:start-time of this process (the start time tells a reused pid apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


def _start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def _worker_dead(worker: Any) -> bool:
    """Whether the worker process named by `_worker_id()` is gone (only decidable on its own host)."""
    if not isinstance(worker, str) or worker.count(":") != 2:
        return False
    host, pid, start = worker.split(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return start != "?" and _start_time(int(pid)) not in (start, "?")


class _Loop:
    """Ask -> launch one job -> tell, with at most `n_jobs` jobs in flight and no barrier between them.

    Launcher calls run in threads (one job each); every storage write is made here, in the calling thread, except
    the heartbeats, which a background thread records for this worker's running trials."""

    def __init__(self, sweeper: NnoptOptunaSweeper, study: Any, space, keys, n_trials, n_jobs, fixed, pruning) -> None:
        self.sweeper, self.study, self.space, self.keys = sweeper, study, space, keys
        self.n_trials, self.n_jobs, self.fixed, self.pruning = n_trials, n_jobs, fixed, pruning
        self.inflight: dict[futures.Future, Any] = {}
        self.pool = futures.ThreadPoolExecutor(max_workers=n_jobs, thread_name_prefix="nnopt-trial")
        self.have: set[str] = set()  # numeric summary keys seen so far, to name a missing objective early
        self.worker = _worker_id()
        interval = int(sweeper.conf.get("heartbeat_interval") or 0)
        self.beats = _heartbeats(study)
        self.poll = float(min(interval, 2) if interval else 2)
        self._stop = threading.Event()
        self._beater = threading.Thread(target=self._beat, args=(interval or 10,), daemon=True)
        self._lock = threading.Lock()
        if self.beats:
            self._beater.start()

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            with self._lock:
                trials = list(self.inflight.values())
            for trial in trials:
                try:
                    record_heartbeat(self.study, trial)
                except Exception as exc:  # noqa: BLE001 - a missed beat is retried; a dead DB ends the tell
                    log.warning("optuna: heartbeat of trial %d failed: %s", trial.number, exc)

    def stop(self) -> None:
        self._stop.set()
        self.pool.shutdown(wait=True)

    def run(self) -> None:
        while True:
            self.sweeper._reap(self.study)
            finished, running = self.sweeper._tally(self.study)
            if len(finished) >= self.n_trials and not self.inflight:
                return
            if len(self.inflight) < self.n_jobs and len(finished) + len(running) < self.n_trials:
                self._start()
                continue
            if self.inflight:
                done, _ = futures.wait(list(self.inflight), timeout=self.poll, return_when=futures.FIRST_COMPLETED)
                for future in done:
                    self._finish(future)
            else:  # every slot is another worker's running trial: wait, and take over when one of them dies
                time.sleep(self.poll)

    def _start(self) -> None:
        from optuna.trial import TrialState

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "heartbeat is supposed to be used with Study.optimize"
            trial = self.study.ask(self.space)
        if self.beats:
            record_heartbeat(self.study, trial)
        trial.set_user_attr(WORKER_ATTR, self.worker)
        finished, running = self.sweeper._tally(self.study)
        ahead = sorted(t.number for t in finished + running)
        if trial.number not in ahead[: self.n_trials]:  # another worker took the last slot at the same time
            frozen = self.study.trials[trial.number]
            trial.set_user_attr(SURPLUS_ATTR, True)
            self.study.tell(trial, state=TrialState.FAIL)
            if _retry_of(frozen) is not None:  # a retry must not be lost: queue it again
                self.study.enqueue_trial(frozen.params, user_attrs={"nnopt_requeued_from": trial.number})
            return
        retry = _retry_of(self.study.trials[trial.number])
        if retry is not None:
            log.info("optuna: trial %d runs the parameters of trial %d again (its worker died)", trial.number, retry)
        overrides = [*self.fixed, *(f"{k}={v}" for k, v in trial.params.items()), *self.pruning(trial.number)]
        launcher = self.sweeper.launcher
        future = self.pool.submit(launcher.launch, [overrides], initial_job_idx=trial.number)
        with self._lock:
            self.inflight[future] = trial

    def _finish(self, future: futures.Future) -> None:
        from optuna.trial import TrialState

        with self._lock:
            trial = self.inflight.pop(future)
        try:
            returns = future.result()
            ret = returns[0] if returns else None
        except Exception as exc:  # noqa: BLE001 - the launcher itself failed for this job: the trial failed
            log.error("optuna: trial %d: the launcher failed: %s", trial.number, exc)
            ret = None
        state = trial_state(self.study, trial)
        if state.is_finished():  # pruned by its callback, or failed as stale by another worker
            log.info("optuna: trial %d %s", trial.number, state.name)
            return
        summary = _summary(ret) if ret is not None else {}
        self.have |= {k for k, v in summary.items() if _number(v)}
        values = [summary.get(k) for k in self.keys]
        if summary.get("status") != "completed" or not all(_number(v) for v in values):
            self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        else:
            conf = self.sweeper.conf
            if conf.get("constraints"):
                bounds = conf["constraints"].items()
                trial.set_user_attr(CONSTRAINTS_ATTR, [float(summary.get(k, math.inf)) - b for k, b in bounds])
            self.study.tell(trial, values, skip_if_finished=True)
        missing = [k for k in self.keys if k not in self.have]
        if self.have and missing:
            _fail(
                f"hydra.sweeper.objective: no run has {', '.join(missing)}; "
                f"summary keys: {', '.join(sorted(self.have))}"
            )
