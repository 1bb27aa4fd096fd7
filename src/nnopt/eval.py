"""`nnopt-eval ckpt_path=...`: test a checkpoint on the test split and write the same summary.json.

The model and data module are rebuilt from the checkpoint's stored config, which is untrusted data: only targets the
user chose may be instantiated (the one rebuild path, :mod:`nnopt.tasks.rebuild`).
"""

from __future__ import annotations

import sys
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from nnopt import runtime
from nnopt.cli import guard
from nnopt.cli.precheck import precheck
from nnopt.config import CONFIG_DIR

#: keys of this command's config that replace the checkpoint's (where and how to test, not what)
OWN_KEYS = ("trainer", "logger", "paths", "seed", "task_name", "tags", "efficiency")


def run_config_from(cfg: DictConfig, saved: DictConfig) -> DictConfig:
    """The checkpoint's config, with this command's trainer/logger/paths and the `data.*` values given here
    (`data.dir=...` for the keys conf/eval.yaml declares, `+data.<key>=...` for any other; an unset one, null, keeps
    the checkpoint's value)."""
    run_cfg = OmegaConf.create(OmegaConf.to_container(saved, resolve=False))
    with open_dict(run_cfg):
        for key in OWN_KEYS:
            if key in cfg:
                run_cfg[key] = cfg[key]
        if isinstance(cfg.get("data"), DictConfig):
            given = OmegaConf.to_container(cfg.data, resolve=False)
            run_cfg.data = OmegaConf.merge(run_cfg.data, {k: v for k, v in given.items() if v is not None})
        run_cfg.callbacks = {}
        run_cfg.ckpt_path = str(cfg.ckpt_path)
        run_cfg.train = False
    return run_cfg


def run(cfg: DictConfig) -> dict[str, Any]:
    import pytorch_lightning as pl

    from nnopt import build, pipeline, tracking
    from nnopt.config.schema import validate
    from nnopt.errors import ConfigError
    from nnopt.metrics import summary as S
    from nnopt.tasks import rebuild, spec

    with pipeline.RunRecorder(cfg) as rec:
        if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
            raise ConfigError("ckpt_path is required: nnopt-eval ckpt_path=<path/to/checkpoint.ckpt>")
        ckpt, saved = rebuild.read(cfg.ckpt_path, chosen=cfg)
        run_cfg = run_config_from(cfg, saved)
        rec.summary[S.CHOICES] = pipeline.choices(run_cfg)
        rec.summary[S.EVALUATED_CKPT] = str(cfg.ckpt_path)
        validate(run_cfg)
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        dm = build.build_datamodule(run_cfg)
        lit = rebuild.restore(run_cfg, dm, ckpt, cfg.ckpt_path)
        lit.data_info = rebuild.data_info(dm, run_cfg)
        rec.summary.update(spec.summary_keys(lit.task))
        rec.loggers = tracking.build_loggers(run_cfg)
        trainer = build.build_trainer(run_cfg, [], rec.loggers)
        rec.summary.update(pipeline.test_and_measure(trainer, lit, dm, run_cfg, None))
    return rec.summary


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def _app(cfg: DictConfig) -> Any:
    return guard.guarded(run, cfg)


def main() -> None:
    runtime.configure()
    precheck(sys.argv[1:], "eval")
    guard.run_app(_app)  # SIGTERM/SIGINT/SIGUSR1: status interrupted, exit 128+signal


if __name__ == "__main__":
    main()
