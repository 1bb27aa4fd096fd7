"""Entry-point plumbing shared by nnopt-train / nnopt-eval: early override checks and clean errors.

Bad input ends in one line on stderr and exit status 2 (set HYDRA_FULL_ERROR=1 for the traceback);
an unexpected failure ends in one line naming the run's traceback file and exit status 1.
In a multirun a failing job is recorded (its summary says `failed`) and the sweep goes on.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from nnopt.config import CONFIG_DIR
from nnopt.errors import NnoptError

log = logging.getLogger("nnopt")
# Lightning 2.6 on torch 2.13 warns about its own pytree use on every run: noise, not the user's problem.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
BAD_INPUT_EXIT, FAILURE_EXIT = 2, 1
#: flags that print instead of running, or that point Hydra at configs the pre-check cannot see
_SKIP_PRECHECK = {"--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc", "--config-dir", "-cd",
                  "--config-path", "-cp", "--config-name", "-cn", "--experimental-rerun"}  # fmt: skip


def full_error() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def fail(message: str, code: int = BAD_INPUT_EXIT) -> None:
    print(f"nnopt: error: {message}", file=sys.stderr)
    sys.exit(code)


def _group_options(group: str) -> list[str] | None:
    folder = Path(CONFIG_DIR) / group
    if not folder.is_dir():
        return None
    return sorted(str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.yaml"))


def precheck(argv: list[str], config_name: str) -> None:
    """Compose the config once before Hydra does, so a typo costs one line instead of a stack trace."""
    if any(a.split("=")[0] in _SKIP_PRECHECK for a in argv) or full_error():
        return
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = [a for a in argv if "=" in a and not a.startswith("-")]
    try:
        overrides = OverridesParser.create().parse_overrides(args)
    except Exception as exc:
        fail(f"cannot parse overrides: {str(exc).splitlines()[0]}")
    first: list[str] = []
    for override, arg in zip(overrides, args, strict=True):
        key = override.key_or_group.lstrip("+~")
        options = _group_options(key) if not key.startswith("hydra") else None
        if override.is_sweep_override():
            try:
                values = [str(v) for v in override.sweep_string_iterator()]
            except Exception:  # range/interval sweeps: checked by Hydra
                values = []
            if not values:
                continue
            if options is not None:
                for value in values:
                    if value not in options and value != "null":
                        fail(f"unknown {key} option {value!r}; choose one of: {', '.join(options)}")
            first.append(f"{arg.split('=', 1)[0]}={values[0]}")
            continue
        value = override.value()
        if options is not None and isinstance(value, str) and value not in options:
            fail(f"unknown {key} option {value!r}; choose one of: {', '.join(options)}")
        first.append(arg)
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            compose(config_name=config_name, overrides=first)
    except Exception as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        fail(" ".join(lines[:2]) if lines else type(exc).__name__)


def is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def guarded(task: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Run `task`; turn failures into one line (single run) or a recorded failure (multirun)."""
    try:
        return task(cfg)
    except NnoptError as exc:
        if full_error():
            raise
        if is_multirun():
            log.error("job failed: %s", exc)
            return None
        fail(str(exc), BAD_INPUT_EXIT)
    except Exception as exc:
        if full_error():
            raise
        where = Path(cfg.paths.output_dir) / "traceback.txt"
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
            where.write_text(traceback.format_exc())
        except OSError:
            where = None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        message = f"run failed: {type(exc).__name__}: {first}" + (f" (traceback: {where})" if where else "")
        if is_multirun():
            log.error(message)
            return None
        fail(message, FAILURE_EXIT)
