"""OmegaConf resolvers used by conf/ (registered by nnopt.runtime.configure)."""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from pathlib import Path

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


def project_root() -> str:
    """The checkout nnopt runs from (editable install), else the current directory (installed wheel).

    A checkout is recognised by its layout (src/nnopt next to pyproject.toml and conf/), so an installed
    package never writes next to site-packages; NNOPT_ROOT (read in conf/paths/default.yaml) overrides both.
    """
    package = Path(__file__).resolve().parents[1]
    root = package.parents[1]
    is_checkout = package.parent.name == "src" and (root / "pyproject.toml").is_file() and (root / "conf").is_dir()
    return str(root if is_checkout else Path.cwd())


#: nnopt's resolvers by name (stored configs may use these; see nnopt.checkpoint.STORED_RESOLVERS)
RESOLVERS = {"run_stamp": run_stamp, "nnopt_root": project_root}
NAMES = tuple(RESOLVERS)


def register() -> None:
    for name, fn in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
