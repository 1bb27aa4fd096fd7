"""Experiment-tracker set-up: W&B offline-first, driven through its environment variables."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path

log = logging.getLogger(__name__)


def has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def configure_wandb(online: bool, run_dir: str | Path) -> str:
    """Set W&B's environment before it starts; returns the mode.

    The mode goes through WANDB_MODE (not `offline=`), because only the environment stops the
    telemetry thread from reaching the network. A user's WANDB_MODE=disabled is respected.
    """
    wandb_dir = Path(run_dir)
    wandb_dir.mkdir(parents=True, exist_ok=True)
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        os.environ[var] = str(wandb_dir / ("" if var == "WANDB_DIR" else f".{var.lower()[6:-4]}"))
    os.environ.setdefault("WANDB_SILENT", "true")
    if os.environ.get("WANDB_MODE") == "disabled":
        return "disabled"
    mode = "offline"
    if online:
        if has_wandb_key():
            mode = "online"
        else:
            log.warning("logger.wandb.online=true but no W&B API key is configured: logging offline")
    os.environ["WANDB_MODE"] = mode
    return mode


def finish_wandb() -> None:
    """End the W&B run so the next job of a multirun starts its own."""
    import sys

    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()
