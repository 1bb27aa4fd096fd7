"""`nnopt-train`: fit and test one configuration, write summary.json. `-m` sweeps."""

from __future__ import annotations

import logging
import sys
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig

import nnopt.config.resolvers  # noqa: F401  (registers ${run_stamp:}, ${nnopt_root:})
from nnopt import build, cli, distributed, pipeline, sweep
from nnopt.config import CONFIG_DIR
from nnopt.config.schema import validate
from nnopt.metrics import names as N
from nnopt.metrics import summary as S

log = logging.getLogger("nnopt")


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train and test per `cfg`; returns the summary (also written to <output_dir>/summary.json)."""
    with pipeline.RunRecorder(cfg) as rec:
        validate(cfg)
        distributed.prepare(cfg)  # device/SLURM checks, DDP in multiruns, resume=true -> this dir's last ckpt
        resume = pipeline.check_resume(cfg)
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        dm = build.build_datamodule(cfg)
        lit = build.build_module(cfg, dm)
        callbacks = build.build_callbacks(cfg)
        rec.loggers = build.build_loggers(cfg)
        trainer = build.build_trainer(cfg, callbacks, rec.loggers)
        for logger in rec.loggers:
            logger.log_hyperparams(lit.run_config)
        if cfg.train:
            lit.train()  # Lightning 2.6 does not switch modules back to train mode at fit start
            trainer.fit(lit, datamodule=dm, ckpt_path=resume)
            best = trainer.callback_metrics.get(N.VAL_ACC_BEST)
            rec.summary[S.VAL_ACC_BEST] = float(best) if best is not None else None
        # read before testing: loading the best checkpoint for test restores the checkpoint callback's old state
        rec.summary.update(pipeline.training_stats(trainer))
        if cfg.test:
            use_best = cfg.train and cfg.test_ckpt == "best" and rec.summary.get("ckpt/best")
            rec.summary.update(pipeline.test_and_measure(trainer, lit, dm, cfg, "best" if use_best else None))
    return rec.summary


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def _app(cfg: DictConfig) -> Any:
    done = sweep.completed_summary(cfg)  # resume=true in a sweep: a completed job is not run again
    return done if done is not None else cli.guarded(run, cfg)


def main() -> None:
    cli.precheck(sys.argv[1:], "train")
    _app()


if __name__ == "__main__":
    main()
