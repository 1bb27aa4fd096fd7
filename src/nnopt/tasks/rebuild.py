"""The one way to build a task module: from a run's config, or from a checkpoint alone.

From a checkpoint it is always the same path — read the file safely, trust only targets a user chose, build the
network, build the task module, load the weights — with one set of error messages. `nnopt-eval`, `nnopt-export`,
`nnopt-sensitivity`, `TaskModule.load_from_checkpoint`, fine-tune sources and distillation teachers all use it, so
a change of what a checkpoint stores (e.g. shrunk layer widths) is taught here once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from nnopt import checkpoint, fused, secrets
from nnopt.config.instantiate import build_net, instantiate_node, target_class
from nnopt.errors import CheckpointError, ConfigError
from nnopt.tasks import spec

if TYPE_CHECKING:
    from nnopt.tasks.module import TaskModule

#: keys of a `task` config that select it or tell the callbacks (checkpoint, early stopping) what to watch
_TASK_META = ("_target_", "name", "monitor", "mode")


def task_class(cfg: DictConfig, task_name: str) -> type:
    """The LightningModule class of this run: the `task` config's `_target_` (your own), else nnopt's module for the
    data's task (`data.task`)."""
    node = cfg.get("task")
    if isinstance(node, DictConfig) and node.get("_target_"):
        cls = target_class(OmegaConf.to_container(node, resolve=True), "task")
    else:
        cls = target_class({"_target_": spec.get(task_name).module}, "task")
    if not isinstance(cls, type) or not hasattr(cls, "task") or not hasattr(cls, "training_step"):
        raise ConfigError(f"task._target_={cls!r} is not a TaskModule subclass (nnopt.tasks.module.TaskModule)")
    return cls


def _task_options(cfg: DictConfig) -> dict[str, Any]:
    node = cfg.get("task")
    if not isinstance(node, DictConfig):
        return {}
    options = OmegaConf.to_container(node, resolve=True)
    return {k: v for k, v in options.items() if k not in _TASK_META}


def build_task_module(cfg: DictConfig, shapes: Any) -> TaskModule:
    """The run's network wrapped in its task module.

    `shapes` is the data module (or a namespace of what a checkpoint stores of it): `input_shape`, `num_classes`,
    `task` and the task's own attributes (e.g. `target_mean`); the module class takes what it needs of them in
    `from_config`.
    """
    cls = task_class(cfg, getattr(shapes, "task", spec.CLASSIFICATION.name))
    common = dict(
        net=build_net(cfg, tuple(shapes.input_shape), int(shapes.num_classes)),
        optimizer=instantiate_node(cfg.optimizer),
        l1=cfg.get("l1", 0.0),
        run_config=secrets.run_config(cfg),  # ${oc.env:...} kept unresolved, secret values redacted
        schedule=instantiate_node(cfg.schedule) if cfg.get("schedule") and "_target_" in cfg.schedule else None,
        fusion=fused.from_trainer(cfg.get("trainer")),
    )
    try:
        module = cls(**common, **{**cls.config_kwargs(cfg, shapes), **_task_options(cfg)})  # the task config wins
    except TypeError as exc:  # a task option its constructor does not take
        raise ConfigError(f"task._target_={cls.__module__}.{cls.__name__}: cannot build it ({exc})") from None
    if cfg.get("compile"):
        module.compile_net(torch.zeros(2, *shapes.input_shape))
    return module


def data_info(dm: Any, cfg: DictConfig) -> dict[str, Any]:
    """What a trained model needs to know about its inputs, stored in checkpoints (`checkpoint.DATA_KEY`): shapes
    for rebuilding without data, the task, and the input standardisation for self-contained exports."""

    def plain(value: Any) -> Any:
        return value.tolist() if isinstance(value, torch.Tensor) else value

    info: dict[str, Any] = {
        "input_shape": [int(v) for v in dm.input_shape],
        "num_classes": int(dm.num_classes),
        "name": (cfg.data.get("name") if isinstance(cfg.get("data"), DictConfig) else None) or type(dm).__name__,
        "task": getattr(dm, "task", spec.CLASSIFICATION.name),
    }
    regression = ("target_mean", "target_std") if info["task"] == spec.REGRESSION.name else ()  # original units
    for key in ("input_mean", "input_std", "input_scale", *regression):
        if getattr(dm, key, None) is not None:
            info[key] = plain(getattr(dm, key))
    return info


# -- from a checkpoint ---------------------------------------------------------------------------------------
@dataclass
class Rebuilt:
    """A checkpoint's task module with its weights (eval mode), the trusted config and the file's contents."""

    module: TaskModule
    config: DictConfig
    ckpt: dict[str, Any]
    info: dict[str, Any]


def read(
    path: str | Path,
    key: str = "ckpt_path",
    *,
    trusted: Sequence[str] = (),
    config_dir: str | Path | None = None,
    chosen: Any = None,
) -> tuple[dict[str, Any], DictConfig]:
    """The checkpoint's contents and its stored config, once every target in it is one the user chose: named by a
    config on the search path, by `chosen` (this command's config), in `trusted`, or by the configs of `config_dir`.

    Raises:
        CheckpointError: unreadable, not an nnopt checkpoint, or a target nobody chose.
    """
    from nnopt.config import resolvers
    from nnopt.config.targets import targets_in_dir

    resolvers.register()  # stored configs keep `${oc.env:...}` (and nnopt's resolvers) unresolved
    if config_dir is not None and not Path(config_dir).is_dir():
        raise CheckpointError(f"--config-dir {config_dir}: no such directory")
    ckpt = checkpoint.load(path, key)
    own = [*trusted, *(targets_in_dir(config_dir) if config_dir is not None else ())]
    allowed = [*([chosen] if chosen is not None else []), *({"_target_": str(t)} for t in own)]
    return ckpt, checkpoint.trusted_config(ckpt, path, key, chosen=allowed or None)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite_numbers(value: Any) -> list[float] | None:
    """`value` (a number or a flat list of numbers) as floats, or None when it is anything else or not finite."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in items):
        return None
    numbers = [float(v) for v in items]
    return numbers if all(math.isfinite(v) for v in numbers) else None


def stored_shapes(ckpt: dict[str, Any], path: str | Path, key: str) -> SimpleNamespace:
    """The input contract a checkpoint stores (shapes, task, standardisation) as the attributes a data module has.

    Every value is checked before anything is built from it (a checkpoint is untrusted input): positive integer
    dimensions and classes, a known task, finite statistics of the inputs' width (one, or one per feature) with
    positive spreads.

    Raises:
        CheckpointError: the file stores none (written by an older nnopt), or a value that cannot be one.
    """
    info = ckpt.get(checkpoint.DATA_KEY)
    if not isinstance(info, dict) or not info.get("input_shape") or not info.get("num_classes"):
        raise CheckpointError(
            f"{key}={path} stores no input shape (written by an older nnopt): evaluate it with nnopt-eval ckpt_path=..."
        )

    def bad(name: str, allowed: str) -> CheckpointError:
        shown = repr(info[name])
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return CheckpointError(
            f"{key}={path}: its stored {checkpoint.DATA_KEY}.{name}={shown} is invalid; allowed: {allowed}"
        )

    shape = info["input_shape"]
    if not isinstance(shape, (list, tuple)) or not 1 <= len(shape) <= 4 or not all(_is_int(v) and v > 0 for v in shape):
        raise bad("input_shape", "1 to 4 positive integers, e.g. [1, 28, 28]")
    if not _is_int(info["num_classes"]) or info["num_classes"] < 1:
        raise bad("num_classes", "a positive integer")
    if "task" in info and info["task"] not in spec.names():
        raise bad("task", ", ".join(spec.names()))
    widths = {1, int(shape[-1])} if len(shape) == 1 else {1}  # one statistic, or one per tabular feature
    for name, positive in (("input_mean", False), ("input_std", True)):
        if info.get(name) is None:
            continue
        numbers = _finite_numbers(info[name])
        if numbers is None or len(numbers) not in widths or (positive and min(numbers) <= 0):
            what = "positive" if positive else "finite"
            raise bad(name, f"a {what} number{' or one per feature' if len(shape) == 1 else ''}")
    for name in ("input_scale", "target_std"):
        if info.get(name) is not None and (
            (_finite_numbers(info[name]) or [0.0])[0] <= 0 or isinstance(info[name], list)
        ):
            raise bad(name, "a positive number")
    if info.get("target_mean") is not None and (
        _finite_numbers(info["target_mean"]) is None or isinstance(info["target_mean"], list)
    ):
        raise bad("target_mean", "a finite number")
    return SimpleNamespace(**{**info, "input_shape": tuple(shape), "num_classes": int(info["num_classes"])})


def restore(
    cfg: DictConfig,
    shapes: Any,
    ckpt: dict[str, Any],
    path: str | Path,
    key: str = "ckpt_path",
    *,
    weights: bool = True,
    strict: bool = True,
) -> TaskModule:
    """Build the task module of `cfg` for `shapes` and load the checkpoint's weights into it (eval mode).

    Raises:
        CheckpointError: the config does not build for these inputs, or the weights do not fit.
    """
    with open_dict(cfg):
        cfg.compile = False  # a rebuilt model runs eagerly; compile it yourself if you want
    try:
        module = build_task_module(cfg, shapes)
    except Exception as exc:  # noqa: BLE001 - any failure here means the stored config does not rebuild
        first = " ".join(str(exc).split())[:200]
        raise CheckpointError(
            f"{key}={path}: its config does not build a model for inputs {tuple(shapes.input_shape)} with "
            f"{shapes.num_classes} outputs ({type(exc).__name__}: {first})"
        ) from None
    stored = ckpt.get(checkpoint.DATA_KEY)
    module.data_info = dict(stored) if isinstance(stored, dict) else {}
    qat = weights and holds_qat_model(ckpt)
    if qat:  # a QAT run saves the fake-quantized network: prepare the same one (its observers resize on load)
        from nnopt.compression.quantization.ops import prepare

        module.net = prepare(module.net, _qat_backend(cfg), qat=True)
    if weights:
        try:
            if not qat:
                checkpoint.check_weights_fit(module, ckpt, path, key)
            module.load_state_dict(ckpt["state_dict"], strict=strict)
        except (RuntimeError, CheckpointError) as exc:
            first = str(exc).splitlines()[0].removeprefix(f"{key}={path}: ")[:200]
            raise CheckpointError(f"{key}={path}: weights do not fit the model its config builds ({first})") from None
    return module.eval()


def holds_qat_model(ckpt: dict[str, Any]) -> bool:
    """Whether a checkpoint's weights are a fake-quantized (QAT-prepared) network: observer/fake-quant tensors."""
    state = ckpt.get("state_dict")
    return isinstance(state, dict) and any("fake_quant" in k or "activation_post_process" in k for k in state)


def _qat_backend(cfg: DictConfig) -> str:
    """The quantized engine the run's QAT callback used (`compression.backend`, or that of a callback inside it)."""
    node = cfg.get("compression")
    nodes = [node, *((node.get("callbacks") or {}).values() if isinstance(node, DictConfig) else ())]
    for candidate in nodes:
        if isinstance(candidate, DictConfig) and "QuantizationAware" in str(candidate.get("_target_", "")):
            return str(candidate.get("backend", "x86"))
    return "x86"


def int8_model(path: str | Path, key: str = "ckpt_path", **kwargs: Any) -> Any:
    """The int8 model a QAT/PTQ run saved beside checkpoint `path` (`checkpoints/model_int8.pt`), rebuilt around
    the checkpoint's own network, in eval mode: what the run tested and measured (CPU int8 kernels).

    Raises:
        CheckpointError: the run saved no int8 model, or it does not fit the checkpoint's network.
    """
    from nnopt.compression.quantization.int8_file import INT8_FILE, load_int8

    int8_path = Path(path).parent / INT8_FILE
    if not int8_path.is_file():
        raise CheckpointError(f"{key}={path}: no {INT8_FILE} beside it (only QAT and PTQ runs save an int8 model)")
    ckpt, cfg = read(path, key, **kwargs)
    shapes = stored_shapes(ckpt, path, key)
    float_net = restore(cfg, shapes, ckpt, path, key, weights=False).net
    return load_int8(int8_path, float_net, tuple(shapes.input_shape))


def from_checkpoint(
    path: str | Path,
    key: str = "ckpt_path",
    *,
    trusted: Sequence[str] = (),
    config_dir: str | Path | None = None,
    chosen: Any = None,
    shapes: Any = None,
    weights: bool = True,
    strict: bool = True,
) -> Rebuilt:
    """The whole path: :func:`read`, then :func:`restore` for `shapes` (default: the shapes the file stores)."""
    ckpt, cfg = read(path, key, trusted=trusted, config_dir=config_dir, chosen=chosen)
    shapes = shapes if shapes is not None else stored_shapes(ckpt, path, key)
    module = restore(cfg, shapes, ckpt, path, key, weights=weights, strict=strict)
    return Rebuilt(module, cfg, ckpt, dict(module.data_info))
