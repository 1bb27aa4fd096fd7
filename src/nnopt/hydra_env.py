"""The one place that asks Hydra's runtime what kind of run this is: multirun or not, the chosen options, the
command line's overrides. Every other module calls these instead of reading `HydraConfig` itself."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf


def current() -> DictConfig | None:
    """Hydra's runtime config, or None outside a Hydra app (an in-process call, a test)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def mode_name() -> str | None:
    """ "RUN" or "MULTIRUN" when Hydra runs us, else None."""
    hydra = current()
    return None if hydra is None else str(hydra.mode).rsplit(".", 1)[-1]  # an enum, or its name in a saved config


def is_multirun() -> bool:
    return mode_name() == "MULTIRUN"


def is_single_run() -> bool:
    return mode_name() == "RUN"


def multirun_config() -> DictConfig | None:
    """Hydra's runtime config in a multirun job, else None."""
    return current() if is_multirun() else None


def overrides() -> list[str]:
    """This job's command-line overrides (a sweep job: its own parameters and the sweep's fixed ones), as typed."""
    hydra = current()
    return task_overrides(hydra) if hydra is not None else []


def task_overrides(hydra: DictConfig) -> list[str]:
    """`hydra.overrides.task` of a Hydra config as typed: iterating the ListConfig would resolve an override's
    `${oc.env:...}` into the variable's value, which then lands in summaries, run names and tags."""
    return [str(o) for o in OmegaConf.to_container(hydra.overrides.task, resolve=False)]


def job_name() -> str | None:
    hydra = current()
    return None if hydra is None else str(hydra.job.name)


def chosen_options() -> dict[str, Any]:
    """The chosen option of every non-Hydra config group, as Hydra composed them (empty outside Hydra)."""
    hydra = current()
    if hydra is None:
        return {}
    return {k: v for k, v in hydra.runtime.choices.items() if not k.startswith("hydra")}
