"""Experiment trackers: the one place loggers are built and fed.

`build_loggers(cfg)` instantiates every node of the `logger` group from its `_target_`. What a tracker needs beyond
its constructor arguments is decided by the logger's *class* (any key name, user configs included):

- W&B (`WandbLogger` or a subclass): offline unless `online: true` and an API key exist, driven through W&B's
  environment variables (only the environment stops its telemetry thread from reaching the network); all its files
  under the run dir; in a multirun group = the sweep and tags = the job's overrides; the run id is kept in the run
  dir so a resumed run continues the same W&B run.
- MLflow (`MLFlowLogger` or a subclass): a local file store (no server, no network), telemetry off; a multirun's jobs
  share the sweep's store, one parent run per sweep and a child run per job (:func:`mlflow_args`).
- `online` is an nnopt key of every logger node (only W&B uses it) and is never passed to a constructor;
  `if_installed: <module>` (another nnopt key) skips the node where that module is missing (`logger=many`).

At the end of a completed run :func:`log_final_summary` gives every logger the whole run: the summary numbers, the
config group choices as parameters, the confusion matrix image and summary.json plus the composed config as files.
Length: it is the one entry point for every logger (csv, tensorboard, W&B, MLflow), by design.
"""

from __future__ import annotations

import csv
import importlib.util
import logging
import netrc
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nnopt import _compat, hydra_env
from nnopt.secrets import redact

log = logging.getLogger("nnopt")
WANDB_ID_FILE = "wandb_run_id.txt"
#: overrides that do not make a job different (kept out of W&B tags)
_PLUMBING = ("paths.", "hydra.", "callbacks.progress_bar", "callbacks.model_summary", "resume=")


# -- W&B environment -------------------------------------------------------------------------------------
def has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def configure_wandb(online: bool, run_dir: str | Path) -> str:
    """Set W&B's environment before it starts; returns the mode. A user's WANDB_MODE=disabled is respected."""
    wandb_dir = Path(run_dir)
    wandb_dir.mkdir(parents=True, exist_ok=True)
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        os.environ[var] = str(wandb_dir / ("" if var == "WANDB_DIR" else f".{var.lower()[6:-4]}"))
    os.environ.setdefault("WANDB_SILENT", "true")
    if os.environ.get("WANDB_MODE") == "disabled":
        return "disabled"
    mode = "offline"
    if online:
        if has_wandb_key():
            mode = "online"
        else:
            log.warning("logger online=true but no W&B API key is configured: logging offline")
    os.environ["WANDB_MODE"] = mode
    return mode


def finish_wandb() -> None:
    """End the W&B run so the next job of a multirun starts its own."""
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()


def _is_logger(target: str, name: str) -> bool:
    """Whether `target` is Lightning's logger class `name` or a subclass (decided by class, not by key)."""
    try:
        import pytorch_lightning.loggers as pl_loggers
        from hydra.utils import get_class

        return issubclass(get_class(target), getattr(pl_loggers, name))
    except Exception:  # noqa: BLE001 - an unknown target (or a missing optional package) is reported by instantiate
        return False


def _is_wandb(target: str) -> bool:
    return _is_logger(target, "WandbLogger")


def configure_mlflow() -> None:
    """MLflow offline: no telemetry; its local file store (`file:` URIs) is allowed."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


#: nnopt's local MLflow store: `<sweep dir>/mlruns` for every job of a multirun, `<run dir>/mlruns` for a single run
MLFLOW_STORE = "mlruns"
#: tags of nnopt's MLflow runs: the run dir of a job, and which runs are a sweep's parent
MLFLOW_RUN_DIR_TAG, MLFLOW_SWEEP_TAG = "nnopt.run_dir", "nnopt.sweep"
MLFLOW_PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag of nested runs (its UI nests them under the parent)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (jobs of a parallel launcher prepare the sweep's store one at a time)."""
    try:
        import fcntl
    except ImportError:  # no POSIX locks (Windows): jobs there run one after another anyway
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def mlflow_args(node: dict[str, Any], run_dir: str | Path, resuming: bool) -> dict[str, Any]:
    """Arguments of the MLflow logger beyond its config: with `tracking_uri: null`, nnopt's local file store.

    The experiment is created here (Lightning would warn "Experiment ... not found. Creating it." on every new
    store). In a multirun every job logs to the sweep's store: one parent run per sweep (named like the W&B group),
    each job a child run (MLflow's `mlflow.parentRunId` tag, named by its overrides); a resumed job continues its
    own run. An explicit `tracking_uri` (a server of yours) gets only the tags.
    """
    from pytorch_lightning.utilities import rank_zero_only

    hydra = hydra_env.multirun_config()
    args: dict[str, Any] = {"tags": {**(node.get("tags") or {}), MLFLOW_RUN_DIR_TAG: str(Path(run_dir).resolve())}}
    uri = node.get("tracking_uri")
    if not uri:
        store = (Path(hydra.sweep.dir) if hydra is not None else Path(run_dir)) / MLFLOW_STORE
        uri = args["tracking_uri"] = f"file:{store.resolve()}"
    if hydra is not None and node.get("run_name") is None:
        overrides = [o for o in hydra_env.task_overrides(hydra) if not o.lstrip("+~").startswith(_PLUMBING)]
        args["run_name"] = f"{hydra.job.num}: {' '.join(overrides)}"[:250]
    if rank_zero_only.rank != 0:
        return args
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    lock = Path(str(uri).removeprefix("file:")).parent / ".mlflow.lock" if str(uri).startswith("file:") else None
    with _locked(lock) if lock is not None else nullcontext():
        name = str(node.get("experiment_name") or "lightning_logs")
        experiment = client.get_experiment_by_name(name)
        exp_id = (
            experiment.experiment_id
            if experiment is not None
            else client.create_experiment(name, artifact_location=node.get("artifact_location"))
        )
        if resuming:
            mine = client.search_runs([exp_id], f"tags.`{MLFLOW_RUN_DIR_TAG}` = '{args['tags'][MLFLOW_RUN_DIR_TAG]}'")
            if mine:
                args["run_id"] = mine[0].info.run_id
        if hydra is not None:
            sweep = sweep_name(hydra.sweep.dir)
            found = client.search_runs([exp_id], f"tags.`{MLFLOW_SWEEP_TAG}` = '{sweep}'")
            parent = found[0] if found else client.create_run(exp_id, tags={MLFLOW_SWEEP_TAG: sweep}, run_name=sweep)
            args["tags"][MLFLOW_PARENT_TAG] = parent.info.run_id
    return args


# -- multirun and resume ---------------------------------------------------------------------------------
def sweep_name(sweep_dir: str | Path) -> str:
    path = Path(sweep_dir)
    return f"{path.parent.parent.name}/{path.name}" if path.parent.name == "multiruns" else path.name


def wandb_sweep_args(tags: list[str] | None = None) -> dict[str, Any]:
    """In a multirun: W&B group = the sweep's name, tags = run tags + the job's overrides (W&B: <= 64 chars)."""
    hydra = hydra_env.multirun_config()
    if hydra is None:
        return {}
    overrides = [o for o in hydra_env.task_overrides(hydra) if not o.lstrip("+~").startswith(_PLUMBING)]
    merged = list(dict.fromkeys([*(tags or []), *overrides]))
    return {"group": sweep_name(hydra.sweep.dir), "tags": [t[:64] for t in merged]}


def wandb_resume_args(run_dir: str | Path, resuming: bool, node: dict[str, Any] | None = None) -> dict[str, Any]:
    """W&B run id kept in the run dir: a resumed run continues the same W&B run. An `id` set in the config wins."""
    from pytorch_lightning.utilities import rank_zero_only

    if (node or {}).get("id"):
        return {}
    path = Path(run_dir) / WANDB_ID_FILE
    if resuming and path.is_file() and path.read_text().strip():
        return {"id": path.read_text().strip(), "resume": "allow"}
    if rank_zero_only.rank != 0:
        return {}
    run_id = uuid.uuid4().hex[:8]  # W&B's own id format: 8 lower-case alphanumerics
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return {"id": run_id}


# -- building --------------------------------------------------------------------------------------------
def build_loggers(cfg: DictConfig, resuming: bool = False) -> list[Any]:
    """Instantiate every `logger.<name>` node (null nodes are skipped); see the module docstring."""
    from nnopt.config.instantiate import instantiate

    loggers = []
    for node in (cfg.get("logger") or {}).values():
        if node is None:
            continue
        node = redact(OmegaConf.to_container(node, resolve=True))  # W&B files keep no secret values
        online = bool(node.pop("online", False))
        needs = node.pop("if_installed", None)
        if needs and importlib.util.find_spec(str(needs)) is None:
            log.info("logger %s skipped: %s is not installed", node.get("_target_"), needs)
            continue
        if _is_logger(str(node.get("_target_", "")), "MLFlowLogger"):
            configure_mlflow()
            node.update(mlflow_args(node, cfg.paths.output_dir, resuming))
        if _is_wandb(str(node.get("_target_", ""))):
            configure_wandb(online, cfg.paths.output_dir)
            node.update(wandb_sweep_args(node.get("tags")))
            node.update(wandb_resume_args(cfg.paths.output_dir, resuming, node))
        logger = instantiate(node, _convert_="all")
        if _is_wandb(str(node.get("_target_", ""))):
            _drop_unset_anonymous(logger)
        loggers.append(logger)
    return loggers


def _drop_unset_anonymous(logger: Any) -> None:
    """Lightning's WandbLogger passes `anonymous=None` to `wandb.init`, which W&B 0.31 answers on every run with
    "The anonymous setting has no effect and will be removed": an unset value is left out (a user's own is kept)."""
    init = _compat.wandb_init_arguments(logger)
    if init is not None and init.get("anonymous", "") is None:
        del init["anonymous"]


#: prefix of the final summary numbers in every logger (`summary/test/acc`), apart from the per-epoch curves
SUMMARY_PREFIX = "summary/"
#: prefix of the config group choices logged as parameters (`choices/optimizer=momentum`)
CHOICE_PREFIX = "choices/"
CONFUSION_PNG = "confusion_matrix.png"


def summary_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The summary's numbers (not flags, names or None), keyed `summary/<key>`."""
    return {
        f"{SUMMARY_PREFIX}{k}": float(v)
        for k, v in summary.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def choice_params(summary: dict[str, Any]) -> dict[str, str]:
    """`choices/<group>` = the option picked (e.g. optimizer=momentum, where the optimizer class is just SGD)."""
    from nnopt.metrics import summary as S

    return {f"{CHOICE_PREFIX}{k}": str(v) for k, v in (summary.get(S.CHOICES) or {}).items() if v is not None}


def run_files(summary: dict[str, Any]) -> list[Path]:
    """Files every tracker stores with the run: summary.json and the composed config (Hydra's .hydra/*.yaml)."""
    from nnopt.metrics import summary as S

    run_dir = Path(str(summary.get(S.RUN_DIR) or "."))
    candidates = [run_dir / S.FILENAME, run_dir / ".hydra" / "config.yaml", run_dir / ".hydra" / "overrides.yaml"]
    return [p for p in candidates if p.is_file()]


def _run_dir_of(path: Path) -> Path:
    return path.parent.parent if path.parent.name == ".hydra" else path.parent


def log_final_summary(loggers: list[Any], summary: dict[str, Any]) -> None:
    """Give every logger the whole run (after summary.json is written).

    - numbers: TensorBoard hparams with metrics (the HPARAMS tab compares runs), MLflow metrics, W&B summary,
      a final CSV row; the group choices as parameters everywhere;
    - the confusion matrix image to TensorBoard, W&B and MLflow (artifact);
    - summary.json and the composed config as W&B files / MLflow artifacts (CSV and TensorBoard live in the run dir).

    A tracker that fails here only costs a warning: the run itself completed and its files are written.
    """
    from nnopt.metrics import summary as S

    metrics, params, files = summary_metrics(summary), choice_params(summary), run_files(summary)
    image = Path(str(summary.get(S.RUN_DIR) or ".")) / CONFUSION_PNG
    image = image if image.is_file() else None
    for logger in loggers:
        try:
            _log_final(logger, metrics, params, files, image, int(summary.get(S.TRAIN_STEPS) or 0))
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log.warning(
                "logger %s: the final summary was not logged (%s: %s)",
                type(logger).__name__,
                type(exc).__name__,
                str(exc).splitlines()[0][:200] if str(exc) else "",
            )


def _log_final(
    logger: Any, metrics: dict[str, float], params: dict[str, str], files: list[Path], image: Path | None, step: int
) -> None:
    from pytorch_lightning import loggers as pl_loggers

    if isinstance(logger, pl_loggers.TensorBoardLogger):
        # one hparams record with metrics: the run config logged at the start plus the choices
        logger.log_hyperparams({**dict(logger.hparams), **params}, metrics=metrics, step=step)
        if image is not None:
            import matplotlib.image

            logger.experiment.add_image(
                "confusion_matrix", matplotlib.image.imread(image)[..., :3], step, dataformats="HWC"
            )
        logger.experiment.flush()
    elif isinstance(logger, pl_loggers.WandbLogger):
        run = logger.experiment
        run.config.update(params, allow_val_change=True)
        run.summary.update(metrics)
        if image is not None:
            logger.log_image("confusion_matrix", [str(image)])
        for path in files:  # paths as in the run dir: W&B keeps its own config.yaml beside .hydra/config.yaml
            run.save(str(path), base_path=str(_run_dir_of(path)), policy="now")
    elif isinstance(logger, pl_loggers.MLFlowLogger):
        logger.log_hyperparams(params)
        logger.log_metrics(metrics, step=step)
        client, run_id = logger.experiment, logger.run_id
        for path in [*files, *([image] if image is not None else [])]:
            client.log_artifact(run_id, str(path))
        parent = client.get_run(run_id).data.tags.get(MLFLOW_PARENT_TAG)
        if parent:  # a sweep's parent run: finished with each job (its children say how each ended)
            client.set_terminated(parent)
    else:  # CSV and other loggers: parameters and one final row of metrics
        logger.log_hyperparams(params)
        logger.log_metrics(metrics, step=step)
    logger.save()


def log_report_to_wandb(config: DictConfig, sweep_dir: Path, paths: list[Path]) -> None:
    """When the sweep logs to W&B: its report as a table plus an artifact, in the sweep's group."""
    nodes = [n for n in (config.get("logger") or {}).values() if n is not None and _is_wandb(str(n.get("_target_")))]
    if not nodes:
        return
    node = nodes[0]
    if configure_wandb(bool(node.get("online", False)), sweep_dir) == "disabled":
        return
    import wandb

    name = sweep_name(sweep_dir)
    run = wandb.init(
        project=node.get("project", "nnopt"),
        entity=node.get("entity"),
        group=name,
        job_type="report",
        name=f"report {name}",
        dir=str(sweep_dir),
        reinit="finish_previous",
    )
    with (sweep_dir / "report.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    run.log({"sweep/report": wandb.Table(columns=rows[0], data=rows[1:])})
    artifact = wandb.Artifact(f"report-{sweep_dir.name}", type="sweep-report")
    for path in paths:
        if path.is_file():
            artifact.add_file(str(path))
    run.log_artifact(artifact)
    run.finish()
