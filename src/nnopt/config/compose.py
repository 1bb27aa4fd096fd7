"""Compose a run config in-process, exactly as the `nnopt-train` / `nnopt-eval` apps do (for scripts and tests)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from nnopt import runtime
from nnopt.config import CONFIG_DIR


def compose_run_config(out_dir: Path, overrides: list[str], config_name: str = "train") -> DictConfig:
    """The composed config with all output under `out_dir`, ready for `nnopt.train.run(cfg)`."""
    runtime.configure()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # choices/overrides in summary.json come from here
    with open_dict(cfg):
        cfg.paths.output_dir = str(out_dir)
        cfg.paths.log_dir = str(Path(out_dir) / "logs")
        del cfg.hydra
    return cfg
