"""Optional packages: which extra installs each, and the one-line message when one is missing."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.util import find_spec
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nnopt.errors import fail

#: optional packages: import name -> (distribution, nnopt extra that installs it)
OPTIONAL = {
    "wandb": ("wandb", "wandb"),
    "tensorboard": ("tensorboard", "tensorboard"),
    "mlflow": ("mlflow-skinny", "mlflow"),
    "optuna": ("optuna", "sweep"),
    "hydra_plugins.hydra_joblib_launcher": ("hydra-joblib-launcher", "sweep"),
    "hydra_plugins.hydra_submitit_launcher": ("hydra-submitit-launcher", "sweep"),
    "onnx": ("onnx", "export"),
    "onnxscript": ("onnxscript", "export"),
    "onnxruntime": ("onnxruntime", "export"),
}
#: config `_target_`s (by class name) -> the optional package they import
TARGET_NEEDS = {
    "WandbLogger": "wandb",
    "TensorBoardLogger": "tensorboard",
    "MLFlowLogger": "mlflow",
    "NnoptOptunaSweeper": "optuna",
}
#: Hydra plugin options (hydra/<group>=<name>) -> the optional package that registers them
PLUGIN_OPTIONS = {
    ("hydra/launcher", "joblib"): "hydra_plugins.hydra_joblib_launcher",
    ("hydra/launcher", "submitit_local"): "hydra_plugins.hydra_submitit_launcher",
    ("hydra/launcher", "submitit_slurm"): "hydra_plugins.hydra_submitit_launcher",
}


def installed(module: str) -> bool:
    """Whether `module` can be imported (without importing it: the check must stay cheap)."""
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing, or the module is blocked in sys.modules
        return False


def missing_extra(module: str, what: str) -> str:
    """The one-line message for `what` needing optional `module`: which extra to install."""
    distribution, extra = OPTIONAL[module]
    return f"{what} needs the {distribution!r} package: pip install 'nnopt[{extra}]'"


def extra_for(exc: ModuleNotFoundError) -> str | None:
    """The optional package an import failure is about (None for anything else)."""
    name = exc.name or ""
    return next((m for m in OPTIONAL if name == m or name.startswith(m + ".")), None)


def _targets(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted path, `_target_`) of every instantiable node in a config (as plain containers, unresolved)."""
    if isinstance(node, dict):
        if isinstance(node.get("_target_"), str):
            yield path, node["_target_"]
        for key, child in node.items():
            yield from _targets(child, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _targets(child, f"{path}[{i}]")


def check_optional(cfg: DictConfig) -> None:
    """One line naming the extra to install when the composed config uses a package that is not installed."""
    choices = OmegaConf.select(cfg, "hydra.runtime.choices", default=None) or {}
    for path, target in _targets(OmegaConf.to_container(cfg, resolve=False)):
        module = TARGET_NEEDS.get(target.rsplit(".", 1)[-1])
        if module is None or installed(module):
            continue
        if OmegaConf.select(cfg, f"{path}.if_installed", default=None) == module:  # e.g. logger=many: skipped
            continue
        group = path.split(".")[0]
        if group == "hydra":
            group = "/".join(path.split(".")[:2])
        choice = choices.get(group)
        fail(missing_extra(module, f"{group}={choice}" if choice is not None else path))
