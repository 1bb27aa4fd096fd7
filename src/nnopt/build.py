"""Instantiate data, model, LightningModule, callbacks, loggers and trainer from a validated config.

Callbacks come from two places, all name-keyed: `callbacks.*` and the `compression` group (an option with a
`_target_` is one callback; an option with a `callbacks:` mapping adds several). The `schedule` group is not a
callback: its factory goes to the LightningModule, whose `configure_optimizers` hands it to Lightning.
Length: one instantiate-from-config step per kind of object (data, net, module, callbacks, trainer), kept together
so the run is built in one readable place.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from nnopt import checkpoint, fused, threads
from nnopt.callbacks.on_signal import SaveOnSignal
from nnopt.callbacks.rank_agreement import RankAgreement
from nnopt.callbacks.throughput import TrainThroughput
from nnopt.config.instantiate import accepted, instantiate, instantiate_node, target_class
from nnopt.data.base import InMemoryDataModule
from nnopt.errors import ConfigError
from nnopt.optim import full_batch
from nnopt.tasks import rebuild
from nnopt.tasks.module import TaskModule

log = logging.getLogger(__name__)

CALLBACK_GROUPS = ("compression",)


#: data config keys nnopt reads itself; passed to the data module's constructor only where it accepts them
DATA_KEYS = ("name", "num_classes", "input_shape")


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    """Any LightningDataModule. nnopt's in-memory sources load and check their arrays now; for other modules the
    data config declares `num_classes` and `input_shape` (or the module has them as attributes; a missing
    `input_shape` is read off the first training batch). Both end up as attributes of the returned module."""
    node = OmegaConf.to_container(cfg.data, resolve=True)
    cls = target_class(node, "data")
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


def build_module(cfg: DictConfig, dm: pl.LightningDataModule) -> TaskModule:
    """The run's task module for data module `dm`, with the input contract checkpoints store."""
    module = rebuild.build_task_module(cfg, dm)
    module.data_info = rebuild.data_info(dm, cfg)  # stored in checkpoints: rebuild and export without the data
    return module


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
    threads.set_torch_threads(node)  # pops trainer.threads (not a Trainer argument), sets torch's CPU threads
    fused.pop_trainer_options(node)  # pops trainer.fused_steps; fused: the loop takes over accumulation and clipping
    # checkpoints go through a same-directory temp file + fsync + rename (nnopt.io), after the user's own plugins
    plugins = checkpoint.with_atomic_checkpoint_io(instantiate(node.pop("plugins", None) or [], _convert_="all"))
    return instantiate(node, callbacks=callbacks, logger=loggers or False, plugins=plugins, _convert_="all")
