"""Instantiate data, model, LightningModule, callbacks, loggers and trainer from a validated config.

Callbacks come from two places, all name-keyed: `callbacks.*` and the `compression` group (an option with a
`_target_` is one callback; an option with a `callbacks:` mapping adds several). The `schedule` group is not a
callback: its factory goes to the LightningModule, whose `configure_optimizers` hands it to Lightning.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from nnopt import checkpoint, threads
from nnopt.callbacks.rank_agreement import RankAgreement
from nnopt.callbacks.throughput import TrainThroughput
from nnopt.data.base import InMemoryDataModule
from nnopt.errors import CheckpointError, ConfigError, NnoptError
from nnopt.io import with_atomic_checkpoint_io
from nnopt.lit import Classifier

log = logging.getLogger(__name__)

#: keys of a group option that describe it but are not constructor arguments
#: (`full_batch`, `early_stopping_patience`: optimizer=gd/lbfgs, read by build_datamodule and
#: callbacks.early_stopping; `enabled: false` switches a callback node off)
META_KEYS = ("name", "full_batch", "early_stopping_patience")
CALLBACK_GROUPS = ("compression",)


def instantiate(node: Any, *args: Any, **kwargs: Any) -> Any:
    """Hydra's instantiate, but our own bad-input errors come out unwrapped (one clean line)."""
    try:
        return hydra_instantiate(node, *args, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        while cause is not None and not isinstance(cause, NnoptError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise


def instantiate_node(node: DictConfig | dict[str, Any], **kwargs: Any) -> Any:
    """Instantiate a group option; `None` when it carries `enabled: false` (opt-in callbacks)."""
    node = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    for key in META_KEYS:
        node.pop(key, None)
    if not node.pop("enabled", True):
        return None
    return instantiate(node, **kwargs, _convert_="all")


def build_datamodule(cfg: DictConfig) -> InMemoryDataModule:
    dm = instantiate(cfg.data, seed=cfg.seed, _convert_="all")
    dm.prepare()  # load and check now: shapes are needed for the model, errors must come before training
    if (cfg.get("optimizer") or {}).get("full_batch"):  # gd/lbfgs: one step per epoch over the whole split
        dm.batch_size = dm.split_sizes()["train"]
    return dm


def build_net(cfg: DictConfig, in_shape: tuple[int, ...], num_classes: int):
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    name = model_cfg.pop("name", None)
    target = model_cfg.get("_target_")
    if target and getattr(get_class(target), "image_input", False) and len(in_shape) != 3:
        raise ConfigError(
            f"model={name} needs image inputs (C,H,W); "
            f"data={cfg.data.get('name')} has inputs of shape {tuple(in_shape)}"
        )
    return instantiate(model_cfg, in_shape=list(in_shape), num_classes=num_classes, _convert_="all")


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


def build_module(cfg: DictConfig, dm: InMemoryDataModule) -> Classifier:
    net = build_net(cfg, dm.input_shape, dm.num_classes)
    lit = Classifier(
        net=net,
        optimizer=instantiate_node(cfg.optimizer),
        num_classes=dm.num_classes,
        label_smoothing=cfg.get("label_smoothing", 0.0),
        l1=cfg.get("l1", 0.0),
        run_config=OmegaConf.to_container(cfg, resolve=True),
        schedule=instantiate_node(cfg.schedule) if cfg.get("schedule") and "_target_" in cfg.schedule else None,
    )
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
    return callbacks


def build_trainer(cfg: DictConfig, callbacks: list[pl.Callback], loggers: list) -> pl.Trainer:
    node = OmegaConf.to_container(cfg.trainer, resolve=True)
    threads.apply(node)  # pops trainer.threads (not a Trainer argument), sets torch's CPU threads
    # checkpoints go through a same-directory temp file + fsync + rename (nnopt.io), after the user's own plugins
    plugins = with_atomic_checkpoint_io(instantiate(node.pop("plugins", None) or [], _convert_="all"))
    return instantiate(node, callbacks=callbacks, logger=loggers or False, plugins=plugins, _convert_="all")
