"""Building objects from config nodes: Hydra's instantiate with nnopt's one-line errors, constructor-argument
filtering, and the network of a config (`build_net`). Every layer that builds from config (the run's assembly,
loggers, compression callbacks, checkpoint rebuilds) uses these, so a bad target reads the same everywhere."""

from __future__ import annotations

import inspect
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_object
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from nnopt.errors import ConfigError, NnoptError

#: keys of a group option that describe it but are not constructor arguments
#: (`full_batch`, `early_stopping_patience`: optimizer=gd/lbfgs, read by build_datamodule and
#: callbacks.early_stopping; `enabled: false` switches a callback node off)
META_KEYS = ("name", "full_batch", "early_stopping_patience")
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


def target_class(node: dict[str, Any], what: str) -> Any:
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


def build_net(cfg: DictConfig, in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Any `_target_` that returns an nn.Module; `in_shape`/`num_classes` are passed where its constructor takes
    them (by name, or through **kwargs)."""
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    name = model_cfg.pop("name", None)
    cls = target_class(model_cfg, "model")
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
