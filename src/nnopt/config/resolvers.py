"""OmegaConf resolvers used by conf/ (registered on import)."""

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
    stamp = os.environ.get(STAMP_ENV)
    if not stamp:
        stamp = f"{datetime.now():%Y-%m-%d_%H-%M-%S}_{uuid.uuid4().hex[:6]}"
        os.environ[STAMP_ENV] = stamp
    return stamp


def project_root() -> str:
    """The checkout holding conf/ (editable install), else the current directory."""
    root = Path(__file__).resolve().parents[3]
    return str(root if (root / "conf").is_dir() else Path.cwd())


def register() -> None:
    for name, fn in {"run_stamp": run_stamp, "nnopt_root": project_root}.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register()
