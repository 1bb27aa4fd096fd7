"""`nnopt-train`: fit and test one configuration, write summary.json. `-m` sweeps.

Only light modules are imported at the top: `--help`, `--cfg` and option errors never load torch or Lightning.
"""

from __future__ import annotations

import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from nnopt import hydra_env, runtime, sweep
from nnopt.cli import guard
from nnopt.cli.precheck import precheck
from nnopt.config import CONFIG_DIR


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train and test per `cfg`; returns the summary (also written to <output_dir>/summary.json)."""
    import pytorch_lightning as pl

    from nnopt import build, checkpoint, distributed, pipeline, tracking
    from nnopt.config.schema import validate
    from nnopt.metrics import summary as S
    from nnopt.tasks import spec

    with pipeline.RunRecorder(cfg) as rec:
        validate(cfg)
        distributed.prepare(cfg, hydra_env.is_multirun())  # device/SLURM checks, DDP children of multirun jobs
        resume = checkpoint.resolve_resume(cfg, distributed.under_slurm())
        ckpt = checkpoint.load(resume) if resume is not None else None
        if ckpt is not None:
            # a file naming foreign code anywhere in its config is refused, though resume builds nothing from it
            checkpoint.trusted_config(ckpt, resume, chosen=cfg)
            checkpoint.check_compatible(cfg, ckpt, resume, training=bool(cfg.train))
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        dm = build.build_datamodule(cfg)
        lit = build.build_module(cfg, dm)
        rec.summary.update(spec.summary_keys(lit.task))
        if ckpt is not None:
            checkpoint.check_weights_fit(lit, ckpt, resume)
        callbacks = build.build_callbacks(cfg)
        rec.loggers = tracking.build_loggers(cfg, resuming=resume is not None and checkpoint.in_run_dir(resume, cfg))
        trainer = build.build_trainer(cfg, callbacks, rec.loggers)
        for logger in rec.loggers:
            logger.log_hyperparams(lit.run_config)
        rec.checked = True  # from here on a failure is the run's, recorded in its summary
        if cfg.train:
            lit.train()  # Lightning 2.6 does not switch modules back to train mode at fit start
            # set before fit (Lightning's stateful way), so callbacks' setup sees it (QAT must prepare before restore)
            trainer.ckpt_path = str(resume) if resume is not None else None
            try:
                trainer.fit(lit, datamodule=dm)
            finally:
                trainer.ckpt_path = None  # test() below picks "best"/None itself
            best = trainer.callback_metrics.get(lit.task.best_key)  # the task's best validation value
            rec.summary[lit.task.best_key] = float(best) if best is not None else None
            rec.summary[S.BEST_FROM_EPOCH] = lit.best_from_epoch
        # read before testing: loading the best checkpoint for test restores the checkpoint callback's old state
        rec.summary.update(pipeline.training_stats(trainer))
        if cfg.test:
            use_best = cfg.train and cfg.test_ckpt == "best" and rec.summary.get(S.CKPT_BEST)
            rec.summary.update(pipeline.test_and_measure(trainer, lit, dm, cfg, "best" if use_best else None))
    return rec.summary


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def _app(cfg: DictConfig) -> Any:
    done = sweep.completed_summary(cfg)  # resume=true in a sweep: a completed job is not run again
    return done if done is not None else guard.guarded(run, cfg)


def main() -> None:
    runtime.configure()
    precheck(sys.argv[1:], "train")
    guard.run_app(_app)  # SIGTERM/SIGINT/SIGUSR1: status interrupted, exit 128+signal


if __name__ == "__main__":
    main()
