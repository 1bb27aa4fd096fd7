"""OmegaConf resolvers used by conf/ (registered by nnopt.runtime.configure)."""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

STAMP_ENV = "NNOPT_RUN_STAMP"


def run_stamp() -> str:
    """Timestamp plus random suffix, fixed for this process tree.

    Stored in the environment so DDP children and launcher workers resolve the same run/sweep dir,
    while two commands started in the same second still get different dirs.
    """
    return os.environ.get(STAMP_ENV) or set_run_stamp(f"{datetime.now():%Y-%m-%d_%H-%M-%S}_{uuid.uuid4().hex[:6]}")


def set_run_stamp(stamp: str) -> str:
    """The one writer of NNOPT_RUN_STAMP (child processes inherit it: same run/sweep dir)."""
    os.environ[STAMP_ENV] = stamp
    return stamp


def _checkout() -> Path | None:
    """nnopt's own checkout (editable install), recognised by its layout, or None (an installed wheel)."""
    package = Path(__file__).resolve().parents[1]
    root = package.parents[1]
    is_checkout = package.parent.name == "src" and (root / "pyproject.toml").is_file() and (root / "conf").is_dir()
    return root if is_checkout else None


def _config_sources(root: Any = None) -> list[Any]:
    """Hydra's config sources of this run (`hydra.runtime.config_sources`): from the config being resolved where it
    still holds its `hydra` node (a multirun's sweep dir, resolved before any job), else from Hydra's runtime (a job);
    empty outside a Hydra app."""
    try:
        node = OmegaConf.select(root, "hydra.runtime.config_sources") if root is not None else None
        if node:
            return list(node)
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().runtime.config_sources) if HydraConfig.initialized() else []
    except Exception:  # noqa: BLE001 - no Hydra run (compose, tests): no config dirs of the user's
        return []


def project_root(sources: list[Any] | None = None, _root_: Any = None) -> str:
    """The project a run belongs to, where its `logs/` (and `data/`) go.

    - the folder holding the user's config dir (`-cd <dir>`, `hydra.searchpath=[file://<dir>]`, or the primary
      config dir of a Hydra app of the user's own): a project's runs land in that project, wherever the command was
      started;
    - else nnopt's own checkout when the command runs inside it (nnopt's own runs, editable install);
    - else the working directory (an installed wheel never writes next to site-packages).

    `sources`: Hydra's config sources (default: this run's; `_root_` is the config OmegaConf resolves, passed by it).
    NNOPT_ROOT (read in conf/paths/default.yaml) overrides.
    """
    from nnopt.config import CONFIG_DIR

    own = Path(CONFIG_DIR).resolve()
    for source in _config_sources(_root_) if sources is None else sources:
        get = source.get if isinstance(source, dict) else lambda key, s=source: getattr(s, key, None)
        if get("schema") != "file":  # pkg:// (configs inside a package) and structured:// name no folder
            continue
        folder = Path(str(get("path")).removeprefix("file://")).resolve()
        if folder != own and folder.is_dir():
            return str(folder.parent)
    checkout, cwd = _checkout(), Path.cwd()
    return str(checkout if checkout is not None and cwd.resolve().is_relative_to(checkout) else cwd)


#: nnopt's resolvers by name (stored configs may use these; see nnopt.config.stored.STORED_RESOLVERS)
RESOLVERS = {"run_stamp": run_stamp, "nnopt_root": project_root}
NAMES = tuple(RESOLVERS)


def register() -> None:
    for name, fn in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
