"""Instantiate data, model, LightningModule, callbacks, loggers and trainer from a validated config.

Callbacks come from two places, all name-keyed: `callbacks.*` and the `compression` group (an option with a
`_target_` is one callback; an option with a `callbacks:` mapping adds several). The `schedule` group is not a
callback: its factory goes to the LightningModule, whose `configure_optimizers` hands it to Lightning.
Length: one instantiate-from-config step per kind of object (data, net, module, callbacks, trainer), kept together
so the run is built in one readable place.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_object
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from nnopt import checkpoint, fused, secrets, threads
from nnopt.callbacks.on_signal import SaveOnSignal
from nnopt.callbacks.rank_agreement import RankAgreement
from nnopt.callbacks.throughput import TrainThroughput
from nnopt.data.base import InMemoryDataModule
from nnopt.errors import CheckpointError, ConfigError, NnoptError
from nnopt.io import with_atomic_checkpoint_io
from nnopt.lit import Classifier
from nnopt.optim import full_batch

log = logging.getLogger(__name__)

#: keys of a group option that describe it but are not constructor arguments
#: (`full_batch`, `early_stopping_patience`: optimizer=gd/lbfgs, read by build_datamodule and
#: callbacks.early_stopping; `enabled: false` switches a callback node off)
META_KEYS = ("name", "full_batch", "early_stopping_patience")
CALLBACK_GROUPS = ("compression",)


#: constructor failures that mean "this config does not fit this target" (bad input, one line, exit 2)
_BAD_ARGUMENTS = (TypeError, ValueError, ImportError)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def instantiate(node: Any, *args: Any, what: str | None = None, **kwargs: Any) -> Any:
    """Hydra's instantiate; our own bad-input errors come out unwrapped (one clean line).

    With `what` (the config key, e.g. "model"), a target that cannot be imported or rejects its arguments is bad
    input: a ConfigError naming `<what>._target_` and the underlying exception's message. Any other failure keeps
    its traceback, with the cause's message on the first line (Hydra's own first line names only the target).
    """
    try:
        return hydra_instantiate(node, *args, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        while cause is not None and not isinstance(cause, NnoptError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        target = node.get("_target_") if isinstance(node, (dict, DictConfig)) else None
        inner = exc.__cause__
        if inner is None:
            raise
        if what is not None and isinstance(inner, _BAD_ARGUMENTS):
            detail = _one_line(inner.__cause__ if isinstance(inner, ImportError) and inner.__cause__ else inner)
            raise ConfigError(f"{what}._target_={target}: cannot build it ({detail})") from None
        raise InstantiationException(f"cannot build {target}: {_one_line(inner)}") from inner


def accepted(target: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The part of `kwargs` that the callable `target` accepts by name (all of it when it takes **kwargs).

    nnopt offers models `in_shape`/`num_classes` and data modules `seed`/`num_classes`/...; a user's class that has
    no use for them simply does not declare them.
    """
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):  # no introspectable signature (builtins): offer everything
        return dict(kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return dict(kwargs)
    by_name = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = {p.name for p in params if p.kind in by_name}
    return {k: v for k, v in kwargs.items() if k in names}


def _target_class(node: dict[str, Any], what: str) -> Any:
    target = node.get("_target_")
    if not target:
        raise ConfigError(f"{what}._target_ is missing: a {what} config names the class to build")
    try:
        return get_object(str(target)) if "." in str(target) else None  # a class or a factory function
    except Exception as exc:  # noqa: BLE001 - any import failure is a wrong target path
        raise ConfigError(f"{what}._target_={target}: cannot import it ({_one_line(exc.__cause__ or exc)})") from None


def instantiate_node(node: DictConfig | dict[str, Any], **kwargs: Any) -> Any:
    """Instantiate a group option; `None` when it carries `enabled: false` (opt-in callbacks)."""
    node = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    for key in META_KEYS:
        node.pop(key, None)
    if not node.pop("enabled", True):
        return None
    return instantiate(node, **kwargs, _convert_="all")


#: data config keys nnopt reads itself; passed to the data module's constructor only where it accepts them
DATA_KEYS = ("name", "num_classes", "input_shape")


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    """Any LightningDataModule. nnopt's in-memory sources load and check their arrays now; for other modules the
    data config declares `num_classes` and `input_shape` (or the module has them as attributes; a missing
    `input_shape` is read off the first training batch). Both end up as attributes of the returned module."""
    node = OmegaConf.to_container(cfg.data, resolve=True)
    cls = _target_class(node, "data")
    declared = {k: node.pop(k) for k in DATA_KEYS if k in node}
    if isinstance(cls, type) and issubclass(cls, InMemoryDataModule):
        declared.pop("input_shape", None)  # known once its arrays are loaded; **kwargs would hand it to the base
    offered = accepted(cls, {**declared, "seed": cfg.seed}) if cls is not None else {**declared, "seed": cfg.seed}
    dm = instantiate({**node, **offered}, what="data", _convert_="all")
    if not isinstance(dm, pl.LightningDataModule):
        raise ConfigError(f"data._target_={node['_target_']} built a {type(dm).__name__}, not a LightningDataModule")
    if isinstance(dm, InMemoryDataModule):
        dm.prepare()  # load and check now: shapes are needed for the model, errors must come before training
    else:
        _declare_shapes(dm, declared, str(node["_target_"]))
    full_batch.check(cfg)  # optimizer=gd/lbfgs settings Lightning cannot run
    if (cfg.get("optimizer") or {}).get("full_batch"):  # gd/lbfgs: one step per epoch over the whole split
        if not hasattr(dm, "split_sizes"):
            name = cfg.optimizer.get("name")
            raise ConfigError(f"optimizer={name} (full batch) needs an nnopt in-memory data module (load_arrays)")
        dm.batch_size = dm.split_sizes()["train"]
    fusion = fused.from_trainer(cfg.get("trainer"))
    fused.check_callbacks(fusion, cfg.get("callbacks"))
    if fusion.enabled:  # trainer.fused_steps: the training loader yields groups of consecutive batches
        if not isinstance(dm, InMemoryDataModule):
            raise ConfigError(f"trainer.fused_steps={fusion.steps} needs an nnopt in-memory data module; use 1")
        dm.train_grouping = fusion.grouping
    return dm


def _declare_shapes(dm: pl.LightningDataModule, declared: dict[str, Any], target: str) -> None:
    """`dm.input_shape` / `dm.num_classes` for a data module of the user's own (config wins over attributes)."""
    if declared.get("num_classes") is not None:
        dm.num_classes = int(declared["num_classes"])
    if declared.get("input_shape") is not None:
        dm.input_shape = tuple(int(v) for v in declared["input_shape"])
    if getattr(dm, "num_classes", None) is None:
        raise ConfigError(f"data.num_classes is required for data._target_={target} (or a num_classes attribute)")
    if getattr(dm, "input_shape", None) is None:  # read it off one training batch
        dm.prepare_data()
        dm.setup("fit")
        batch = next(iter(dm.train_dataloader()))
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        dm.input_shape = tuple(x.shape[1:])
    dm.input_shape = tuple(dm.input_shape)


def data_info(dm: pl.LightningDataModule, cfg: DictConfig) -> dict[str, Any]:
    """What a trained model needs to know about its inputs, stored in checkpoints (`nnopt.checkpoint.DATA_KEY`):
    shapes for rebuilding without data, and the input standardisation for self-contained exports."""

    def plain(value: Any) -> Any:
        return value.tolist() if isinstance(value, torch.Tensor) else value

    info: dict[str, Any] = {
        "input_shape": [int(v) for v in dm.input_shape],
        "num_classes": int(dm.num_classes),
        "name": (cfg.data.get("name") if isinstance(cfg.get("data"), DictConfig) else None) or type(dm).__name__,
        "task": getattr(dm, "task", "classification"),
    }
    regression = ("target_mean", "target_std") if info["task"] == "regression" else ()  # metrics' original units
    for key in ("input_mean", "input_std", "input_scale", *regression):
        if getattr(dm, key, None) is not None:
            info[key] = plain(getattr(dm, key))
    return info


def build_net(cfg: DictConfig, in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Any `_target_` that returns an nn.Module; `in_shape`/`num_classes` are passed where its constructor takes
    them (by name, or through **kwargs)."""
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    name = model_cfg.pop("name", None)
    cls = _target_class(model_cfg, "model")
    data_name = cfg.data.get("name") if isinstance(cfg.get("data"), DictConfig) else None
    if cls is not None and getattr(cls, "image_input", False) and len(in_shape) != 3:
        raise ConfigError(
            f"model={name} needs image inputs (C,H,W); data={data_name} has inputs of shape {tuple(in_shape)}"
        )
    shapes = {"in_shape": list(in_shape), "num_classes": num_classes}
    offered = accepted(cls, shapes) if cls is not None else shapes
    net = instantiate(model_cfg, what="model", **offered, _convert_="all")
    if not isinstance(net, nn.Module):
        raise ConfigError(f"model._target_={model_cfg['_target_']} built a {type(net).__name__}, not a torch nn.Module")
    return net


def net_from_checkpoint(
    path: str | Path, in_shape: tuple[int, ...], num_classes: int, key: str
) -> tuple[nn.Module, dict[str, Any], DictConfig]:
    """The network an nnopt checkpoint stores, rebuilt for inputs `in_shape` / `num_classes`, plus its weights
    (`net.` prefix removed) and the checkpoint's config. Only targets the user chose are instantiated.

    Raises:
        CheckpointError: unreadable, foreign targets, or the architecture does not fit these inputs.
    """
    ckpt = checkpoint.load(path, key)
    saved = checkpoint.trusted_config(ckpt, path, key)
    try:
        net = build_net(saved, in_shape, num_classes)
    except Exception as exc:  # noqa: BLE001 - any failure here means the checkpoint does not fit this data
        raise CheckpointError(
            f"{key}={path} does not fit this data (inputs {tuple(in_shape)}, {num_classes} classes): "
            f"{str(exc).splitlines()[0][:150]}"
        ) from None
    return net, checkpoint.net_state(ckpt["state_dict"]), saved


def build_module(cfg: DictConfig, dm: pl.LightningDataModule) -> Classifier:
    net = build_net(cfg, dm.input_shape, dm.num_classes)
    common = dict(
        net=net,
        optimizer=instantiate_node(cfg.optimizer),
        l1=cfg.get("l1", 0.0),
        run_config=secrets.run_config(cfg),  # ${oc.env:...} kept unresolved, secret values redacted
        schedule=instantiate_node(cfg.schedule) if cfg.get("schedule") and "_target_" in cfg.schedule else None,
        fusion=fused.from_trainer(cfg.get("trainer")),
    )
    if getattr(dm, "task", "classification") == "regression":  # data.task: the data config declares the task
        from nnopt.regression import Regressor

        lit = Regressor(
            target_mean=getattr(dm, "target_mean", 0.0),
            target_std=getattr(dm, "target_std", 1.0),
            loss=cfg.get("regression_loss", "mse"),
            huber_delta=cfg.get("huber_delta", 1.0),
            **common,
        )
    else:
        lit = Classifier(num_classes=dm.num_classes, label_smoothing=cfg.get("label_smoothing", 0.0), **common)
    lit.data_info = data_info(dm, cfg)  # stored in checkpoints: rebuild and export without the data
    if cfg.get("compile"):
        lit.compile_net(torch.zeros(2, *dm.input_shape))
    return lit


def _named(node: DictConfig | None) -> dict[str, Any]:
    if node is None:
        return {}
    return {k: v for k, v in node.items() if v is not None}


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    nodes = [node for node in _named(cfg.get("callbacks")).values() if "_target_" in node]
    for group in CALLBACK_GROUPS:
        node = cfg.get(group)
        if node is None:
            continue
        if "_target_" in node:
            nodes.append(node)
        nodes += [sub for sub in _named(node.get("callbacks")).values() if "_target_" in sub]
    callbacks = [cb for cb in (instantiate_node(node) for node in nodes) if cb is not None]
    callbacks += [TrainThroughput(), RankAgreement()]  # RankAgreement: DDP ranks must share one config
    # a signal (SIGTERM/SIGINT/SIGUSR1) saves last.ckpt at the end of the step and ends the run `interrupted`
    callbacks.append(SaveOnSignal(Path(cfg.paths.output_dir) / "checkpoints" / checkpoint.LAST_FILE))
    return callbacks


def build_trainer(cfg: DictConfig, callbacks: list[pl.Callback], loggers: list) -> pl.Trainer:
    node = OmegaConf.to_container(cfg.trainer, resolve=True)
    threads.apply(node)  # pops trainer.threads (not a Trainer argument), sets torch's CPU threads
    fused.trainer_kwargs(node)  # pops trainer.fused_steps; fused: the loop takes over accumulation and clipping
    # checkpoints go through a same-directory temp file + fsync + rename (nnopt.io), after the user's own plugins
    plugins = with_atomic_checkpoint_io(instantiate(node.pop("plugins", None) or [], _convert_="all"))
    return instantiate(node, callbacks=callbacks, logger=loggers or False, plugins=plugins, _convert_="all")
