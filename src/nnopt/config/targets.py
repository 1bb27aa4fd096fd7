"""The `_target_`s a user chose: those named by any config on the search path, or by this command's own config.

A checkpoint stores the run config it was trained with; that file is untrusted input, so code that rebuilds a model
or data module from it may only instantiate targets from this set (see :func:`nnopt.checkpoint.trusted_config`).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

TARGET_KEY = "_target_"


def targets_in(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key path, value) of every `_target_` anywhere in a nested config / container."""
    if isinstance(node, (DictConfig, ListConfig)):
        node = OmegaConf.to_container(node, resolve=False)
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key == TARGET_KEY:
                yield where, value
            else:
                yield from targets_in(value, where)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from targets_in(value, f"{path}[{i}]")


def _scan(loader: Any) -> frozenset[str]:
    from hydra.core.object_type import ObjectType

    found: set[str] = set()
    for source in loader.get_sources():
        stack = [""]
        while stack:
            group = stack.pop()
            for name in source.list(group, ObjectType.GROUP):
                stack.append(f"{group}/{name}" if group else name)
            for name in source.list(group, ObjectType.CONFIG):
                try:
                    config = source.load_config(f"{group}/{name}" if group else name).config
                except Exception:  # noqa: BLE001 - an unreadable file names no target
                    continue
                found.update(str(v) for _, v in targets_in(config) if isinstance(v, str))
    return frozenset(found)


@lru_cache(maxsize=4)
def _scan_dir(config_dir: str) -> frozenset[str]:
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        return _scan(GlobalHydra.instance().config_loader())


def targets_in_dir(config_dir: str | Path) -> frozenset[str]:
    """Targets named by the configs of `config_dir` (a user's own conf/, e.g. `nnopt-export --config-dir`)."""
    return _scan_dir(str(Path(config_dir).resolve()))


def known_targets() -> frozenset[str]:
    """Targets named by the configs Hydra can see now (the running app's search path), else nnopt's own configs."""
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return _scan(GlobalHydra.instance().config_loader())
    from nnopt.config import CONFIG_DIR

    return _scan_dir(CONFIG_DIR)
