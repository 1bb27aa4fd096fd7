"""`nnopt-eval ckpt_path=...`: test a checkpoint on the test split and write the same summary.json."""

from __future__ import annotations

import logging
import sys
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict

import nnopt.config.resolvers  # noqa: F401
from nnopt import build, cli, pipeline
from nnopt.config import CONFIG_DIR
from nnopt.config.schema import validate
from nnopt.errors import CheckpointError, ConfigError
from nnopt.lit import CONFIG_KEY

log = logging.getLogger("nnopt")


def run_config_from(cfg: DictConfig, saved: dict[str, Any]) -> DictConfig:
    """The checkpoint's config, with this command's trainer/logger/paths and any `+data.*` overrides."""
    run_cfg = OmegaConf.create(saved)
    with open_dict(run_cfg):
        for key in ("trainer", "logger", "paths", "seed", "task_name", "tags", "efficiency"):
            if key in cfg:
                run_cfg[key] = cfg[key]
        if "data" in cfg:
            run_cfg.data = OmegaConf.merge(run_cfg.data, cfg.data)
        run_cfg.callbacks = {}
        run_cfg.ckpt_path = str(cfg.ckpt_path)
        run_cfg.train = False
    return run_cfg


def run(cfg: DictConfig) -> dict[str, Any]:
    with pipeline.RunRecorder(cfg) as rec:
        if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
            raise ConfigError("ckpt_path is required: nnopt-eval ckpt_path=<path/to/checkpoint.ckpt>")
        ckpt = pipeline.load_checkpoint(cfg.ckpt_path)
        run_cfg = run_config_from(cfg, ckpt[CONFIG_KEY])
        rec.summary[pipeline.S.CHOICES] = pipeline.choices(run_cfg)
        rec.summary["evaluated_ckpt"] = str(cfg.ckpt_path)
        validate(run_cfg)
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        dm = build.build_datamodule(run_cfg)
        lit = build.build_module(run_cfg, dm)
        try:
            lit.load_state_dict(ckpt["state_dict"])
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise CheckpointError(
                f"ckpt_path={cfg.ckpt_path}: weights do not fit the model ({first})"
            ) from None
        rec.loggers = build.build_loggers(run_cfg)
        trainer = build.build_trainer(run_cfg, [], rec.loggers)
        rec.summary.update(pipeline.test_and_measure(trainer, lit, dm, run_cfg, None))
    return rec.summary


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def _app(cfg: DictConfig) -> Any:
    return cli.guarded(run, cfg)


def main() -> None:
    cli.precheck(sys.argv[1:], "eval")
    _app()


if __name__ == "__main__":
    main()
