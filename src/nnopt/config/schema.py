"""Typed schemas for the config groups, checked before anything is built.

Each group has a dataclass whose fields carry a type and an allowed range. Only keys present in the
composed config are checked (options may carry extra keys for their targets), so adding an option never
needs a schema change, but a bad value of a known key always fails early with one line.
A group's schema is one dataclass here, named in GROUP_SCHEMAS.
Length: one dataclass per config group plus the shared checker; splitting it would scatter the allowed ranges.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from nnopt.errors import ConfigError
from nnopt.metrics import names as N
from nnopt.tasks import spec as tasks


def spec(
    kind: type | tuple[type, ...],
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    choices: Sequence[Any] | None = None,
    each: bool = False,
    nullable: bool = True,
) -> Any:
    """A schema field: `kind` of the value (of each item when `each`), optional bounds or choices."""
    return field(
        default=None,
        metadata=dict(kind=kind, gt=gt, ge=ge, lt=lt, le=le, choices=choices, each=each, nullable=nullable),
    )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _type_ok(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool):
        return bool in kinds
    if float in kinds and isinstance(value, int):
        return True
    return isinstance(value, kinds)


def _plural(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "integers", float: "numbers", str: "strings", bool: "true/false values"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _bounds_text(meta: Mapping[str, Any]) -> str:
    parts = []
    for key, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if meta[key] is not None:
            parts.append(f"{sym} {meta[key]}")
    return " and ".join(parts)


def _check_value(path: str, value: Any, meta: Mapping[str, Any]) -> None:
    kind = meta["kind"]
    allowed = _kind_name(kind)
    if meta["choices"] is not None:
        if value not in meta["choices"]:
            opts = ", ".join(str(c) for c in meta["choices"])
            raise ConfigError(f"{path}={value!r} is not allowed; choose one of: {opts}")
        return
    if not _type_ok(value, kind):
        raise ConfigError(f"{path}={value!r} has the wrong type; expected {allowed}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{path}={value!r} must be a finite number")
        ok = all(
            (
                meta["gt"] is None or value > meta["gt"],
                meta["ge"] is None or value >= meta["ge"],
                meta["lt"] is None or value < meta["lt"],
                meta["le"] is None or value <= meta["le"],
            )
        )
        if not ok:
            raise ConfigError(f"{path}={value!r} is out of range; allowed: {allowed} {_bounds_text(meta)}")


def check_node(prefix: str, node: Mapping[str, Any] | None, schema: type) -> None:
    """Check the keys of `node` that `schema` knows; raise ConfigError on the first bad one."""
    if node is None:
        return
    for f in fields(schema):
        if f.name not in node:
            continue
        value = node[f.name]
        meta = f.metadata
        path = f"{prefix}.{f.name}" if prefix else f.name
        if value is None:
            if not meta["nullable"]:
                raise ConfigError(f"{path} must be set; expected {_kind_name(meta['kind'])}")
            continue
        if meta["each"]:
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{path}={value!r} must be a list of {_plural(meta['kind'])}")
            for i, item in enumerate(value):
                _check_value(f"{path}[{i}]", item, meta)
        else:
            _check_value(path, value, meta)


@dataclass
class RootSchema:
    seed: int = spec(int, ge=0, le=2**32 - 1, nullable=False)  # numpy's seed range
    task_name: str = spec(str, nullable=False)
    tags: str = spec(str, each=True)
    train: bool = spec(bool, nullable=False)
    test: bool = spec(bool, nullable=False)
    test_ckpt: str = spec(str, choices=("best", "last"))
    ckpt_path: str = spec(str)
    label_smoothing: float = spec(float, ge=0.0, lt=1.0)
    l1: float = spec(float, ge=0.0)
    compile: bool = spec(bool)


@dataclass
class DataSchema:
    name: str = spec(str, nullable=False)
    batch_size: int = spec(int, gt=0, nullable=False)
    eval_batch_size: int = spec(int, gt=0)
    val_fraction: float = spec(float, ge=0.0, lt=1.0)
    test_fraction: float = spec(float, ge=0.0, lt=1.0)
    size: int = spec(int, ge=4, le=512)
    num_samples: int = spec(int, gt=0)
    num_classes: int = spec(int, ge=2)
    shape: int = spec(int, gt=0, each=True)
    noise: float = spec(float, ge=0.0)
    dir: str = spec(str)
    on_device: bool = spec(bool)
    split_seed: int = spec(int, ge=0)
    max_gb: float = spec(float, gt=0.0)


@dataclass
class ModelSchema:
    name: str = spec(str, nullable=False)
    channels: int = spec(int, gt=0, each=True)
    batch_norm: bool = spec(bool)
    dropout: float = spec(float, ge=0.0, lt=1.0)


@dataclass
class OptimizerSchema:
    lr: float = spec(float, gt=0.0, nullable=False)
    weight_decay: float = spec(float, ge=0.0)
    momentum: float = spec(float, ge=0.0, lt=1.0)
    nesterov: bool = spec(bool)
    betas: float = spec(float, ge=0.0, lt=1.0, each=True)
    eps: float = spec(float, gt=0.0)
    alpha: float = spec(float, gt=0.0, lt=1.0)
    lr_decay: float = spec(float, ge=0.0)


PRECISIONS = ("32", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64", "64-true")


@dataclass
class TrainerSchema:
    accelerator: str = spec(str, choices=("auto", "cpu", "gpu", "cuda", "mps"))
    max_epochs: int = spec(int, ge=1, nullable=False)
    min_epochs: int = spec(int, ge=0)
    precision: str = spec((str, int), choices=PRECISIONS + (32, 64, 16))
    deterministic: bool = spec(bool)
    accumulate_grad_batches: int = spec(int, ge=1)
    gradient_clip_val: float = spec(float, gt=0.0)
    check_val_every_n_epoch: int = spec(int, ge=1)
    log_every_n_steps: int = spec(int, ge=1)
    num_nodes: int = spec(int, ge=1)
    limit_train_batches: float = spec((int, float), gt=0)
    limit_val_batches: float = spec((int, float), ge=0)
    limit_test_batches: float = spec((int, float), gt=0)
    limit_predict_batches: float = spec((int, float), gt=0)
    overfit_batches: float = spec((int, float), ge=0)
    max_steps: int = spec(int)
    val_check_interval: float = spec((int, float), gt=0)


@dataclass
class EfficiencySchema:
    latency_repeats: int = spec(int, ge=1)  # the median of no timings is no latency
    latency_warmup: int = spec(int, ge=0)


@dataclass
class SecretsSchema:
    redact: str = spec(str, each=True)


#: group name -> schema (add a group's schema here)
GROUP_SCHEMAS: dict[str, type] = {
    "data": DataSchema,
    "model": ModelSchema,
    "optimizer": OptimizerSchema,
    "trainer": TrainerSchema,
    "efficiency": EfficiencySchema,
    "secrets": SecretsSchema,
}
#: keys bounded by the checks of :func:`validate` beyond the fields above (a value, a sentinel or another key decides)
CHECKED_KEYS = (
    "trainer.max_steps",
    "trainer.devices",
    "trainer.limit_val_batches",
    "optimizer.betas",
    "callbacks.model_checkpoint.save_top_k",
    "callbacks.model_checkpoint.monitor",
    "callbacks.early_stopping.monitor",
)
#: a group's schema describes the classes nnopt's own options name: a node whose `_target_` starts otherwise is
#: a class of the user's own, whose constructor judges its arguments (one line: nnopt.config.instantiate)
OWN_TARGETS: dict[str, tuple[str, ...]] = {
    "data": ("nnopt.",),
    "model": ("nnopt.",),
    "optimizer": ("torch.optim.", "nnopt."),
    "trainer": ("pytorch_lightning.", "lightning."),
}


def is_nnopts(group: str, node: Any) -> bool:
    """Whether `node` of `group` builds one of the classes nnopt's schema describes (no `_target_`: nnopt's)."""
    target = node.get("_target_") if isinstance(node, Mapping) else None
    return target is None or str(target).startswith(OWN_TARGETS.get(group, ("nnopt.",)))


def _plain(cfg: Any) -> Any:
    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


def validate(cfg: DictConfig) -> None:
    """Check the composed run config; raises ConfigError naming the first bad value."""
    try:
        plain = _plain(cfg)
    except Exception as exc:  # an interpolation that cannot resolve, a missing ??? value
        raise ConfigError(f"config cannot be resolved: {str(exc).splitlines()[0]}") from None
    check_node("", plain, RootSchema)
    for group, schema in GROUP_SCHEMAS.items():
        node = plain.get(group)
        if node is not None and not isinstance(node, Mapping):
            raise ConfigError(f"{group}={node!r} must be a config group; pick an option with {group}=<name>")
        if is_nnopts(group, node):
            check_node(group, node, schema)
    model = plain.get("model") or {}
    hidden = model.get("hidden")
    if hidden is not None and is_nnopts("model", model):
        items = hidden if isinstance(hidden, list) else [hidden]
        for i, h in enumerate(items):
            if not _type_ok(h, int) or h <= 0:
                raise ConfigError(f"model.hidden[{i}]={h!r} is invalid; expected positive integers")
    trainer = plain.get("trainer") or {}
    if trainer.get("min_epochs") and trainer["min_epochs"] > trainer.get("max_epochs", math.inf):
        raise ConfigError(
            f"trainer.min_epochs={trainer['min_epochs']} exceeds trainer.max_epochs={trainer['max_epochs']}"
        )
    _check_trainer(trainer)
    betas = (plain.get("optimizer") or {}).get("betas")
    if isinstance(betas, list) and len(betas) != 2:
        raise ConfigError(f"optimizer.betas={betas!r} must have exactly 2 values (beta1, beta2), got {len(betas)}")
    _check_monitors(plain)
    _check_file_names(plain)
    _check_checkpointing(plain)


def check_root(cfg: DictConfig) -> None:
    """The top-level keys of :class:`RootSchema` alone, each resolved on its own (one that cannot be resolved yet is
    left to :func:`validate`): what the command line's pre-check can refuse before a run records anything."""
    found = {}
    for f in fields(RootSchema):
        if f.name in cfg:
            try:
                found[f.name] = _plain(OmegaConf.select(cfg, f.name, throw_on_missing=True))
            except Exception:  # noqa: BLE001 - `???`, `${hydra:...}`: only known once Hydra runs
                continue
    check_node("", found, RootSchema)


def _check_file_names(plain: Mapping[str, Any]) -> None:
    """A secret's value in a callback's file name would be written into the file system in plain text."""
    from nnopt import secrets

    for name, node in (plain.get("callbacks") or {}).items():
        if not isinstance(node, Mapping):
            continue
        for key in ("filename", "dirpath"):
            leaked = secrets.leaked_in(str(node.get(key) or ""))
            if leaked:
                raise ConfigError(
                    f"callbacks.{name}.{key} holds the value of ${leaked}: a file name is written in plain text; "
                    "use a name without secrets"
                )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_trainer(trainer: Mapping[str, Any]) -> None:
    """Trainer values whose meaning depends on their type (count vs fraction) or that only one sentinel allows."""
    steps = trainer.get("max_steps")
    if _is_count(steps) and steps != -1 and steps < 1:
        raise ConfigError(f"trainer.max_steps={steps} is out of range; allowed: -1 (no limit) or an integer >= 1")
    for key in (
        "limit_train_batches",
        "limit_val_batches",
        "limit_test_batches",
        "limit_predict_batches",
        "overfit_batches",
        "val_check_interval",
    ):
        value = trainer.get(key)
        if isinstance(value, float) and not 0.0 <= value <= 1.0:
            raise ConfigError(
                f"trainer.{key}={value!r} is out of range; allowed: a fraction in [0.0, 1.0] or a whole number "
                f"of batches (an integer, e.g. {max(1, round(value))})"
            )
    devices = trainer.get("devices")
    if isinstance(devices, str) and "," in devices:
        devices = [d.strip() for d in devices.split(",") if d.strip()]
    if isinstance(devices, list):
        seen = [d for i, d in enumerate(devices) if d in devices[:i]]
        if seen:
            raise ConfigError(f"trainer.devices={trainer['devices']!r} lists device {seen[0]!r} twice; list each once")
        if not devices:
            raise ConfigError("trainer.devices=[] selects no device; give a count or a list of device indices")


def logged_metrics(task: str = tasks.CLASSIFICATION.name) -> tuple[str, ...]:
    """Every name nnopt's module for `task` logs during fit (what a callback's `monitor` may name)."""
    return tasks.get(task).logged()


def _check_monitors(plain: Mapping[str, Any]) -> None:
    """A callback that monitors a metric nothing logs would save/stop on nothing (or fail after training)."""
    callbacks = plain.get("callbacks") or {}
    if not isinstance(callbacks, Mapping):
        return
    task = (plain.get("data") or {}).get("task") or tasks.CLASSIFICATION.name
    target = plain["task"].get("_target_") if isinstance(plain.get("task"), Mapping) else None
    if target is not None:  # a task class of the user's own logs what it logs: its names are its business
        task = next((name for name in tasks.names() if tasks.get(name).module == target), None)
    if task not in tasks.names():
        return
    logged = logged_metrics(task)
    for name, node in callbacks.items():
        if not isinstance(node, Mapping) or "_target_" not in node or node.get("enabled") is False:
            continue
        monitor = node.get("monitor")
        if monitor is None:
            continue
        if monitor not in logged and not str(monitor).startswith(f"{N.TRAIN_LOSS}_"):
            raise ConfigError(
                f"callbacks.{name}.monitor={monitor!r} is never logged; choose one of: {', '.join(logged)}"
            )
        limit = (plain.get("trainer") or {}).get("limit_val_batches")
        if limit is not None and not isinstance(limit, bool) and limit == 0 and str(monitor).startswith("val/"):
            raise ConfigError(
                f"trainer.limit_val_batches={limit!r}: validation is off, but callbacks.{name}.monitor={monitor!r} "
                f"watches a validation metric; allowed: trainer.limit_val_batches > 0, or callbacks.{name}=null"
            )


def _check_checkpointing(plain: Mapping[str, Any]) -> None:
    """ModelCheckpoint's `save_top_k`: -1 keeps every checkpoint, k >= 0 the best k; anything else is no setting."""
    callbacks = plain.get("callbacks") or {}
    if not isinstance(callbacks, Mapping):
        return
    for name, node in callbacks.items():
        if not isinstance(node, Mapping) or "save_top_k" not in node or node["save_top_k"] is None:
            continue
        k = node["save_top_k"]
        if not _is_count(k) or k < -1:
            raise ConfigError(
                f"callbacks.{name}.save_top_k={k!r} is out of range; allowed: -1 (every checkpoint) or an integer >= 0"
            )
