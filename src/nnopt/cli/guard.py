"""The guard around every console script: one line for bad input (exit 2), one line naming the traceback file for a
failure (exit 1), one line and exit 128 + signal for an interruption; a multirun records a failing job and goes on."""

from __future__ import annotations

import logging
import signal
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from nnopt import hydra_env, interrupt
from nnopt.cli.extras import extra_for, missing_extra
from nnopt.errors import BAD_INPUT_EXIT, FAILURE_EXIT, NnoptError, fail, full_error
from nnopt.sweep.callback import finish_interrupted_sweep

log = logging.getLogger("nnopt")


def guarded(task: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Run `task`; turn failures into one line (single run) or a recorded failure (multirun)."""
    from nnopt import runtime

    runtime.configure()  # again: launcher workers (joblib, submitit) start fresh processes that never ran main()
    try:
        return task(cfg)
    except NnoptError as exc:
        if full_error():
            raise
        if hydra_env.is_multirun():
            log.error("job failed: %s", exc)
            return None
        fail(str(exc), BAD_INPUT_EXIT)
    except Exception as exc:
        if full_error():
            raise
        module = extra_for(exc) if isinstance(exc, ModuleNotFoundError) else None
        if module is not None:  # an optional package used by code the pre-check cannot see
            if hydra_env.is_multirun():
                log.error("job failed: %s", missing_extra(module, "this run"))
                return None
            fail(missing_extra(module, "this run"))
        where = Path(cfg.paths.output_dir) / "traceback.txt"
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
            where.write_text(traceback.format_exc())
        except OSError:
            where = None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        message = f"run failed: {type(exc).__name__}: {first}" + (f" (traceback: {where})" if where else "")
        if hydra_env.is_multirun():
            log.error(message)
            return None
        fail(message, FAILURE_EXIT)


def run_app(app: Callable[[], Any]) -> Any:
    """Run a Hydra app; an interruption ends it with one line and exit 128 + signal (a sweep writes its report)."""
    interrupt.reset()
    previous = interrupt.install()
    try:
        return app()
    except BaseException as exc:
        signum = interrupt.signal_of(exc)
        if signum is None:
            raise
        if previous:  # a second signal while finishing must not leave a half-written report
            interrupt.restore({sig: signal.SIG_IGN for sig in previous})
        what = finish_interrupted_sweep() or "run stopped"
        name = signal.Signals(signum).name
        saved = interrupt.saved_to()
        ckpt = f"; checkpoint {saved}" if saved else ""
        fail(f"interrupted by {name}: {what}{ckpt}; continue with resume=true", 128 + signum)
    finally:
        interrupt.restore(previous)  # in-process callers (tests, notebooks) get their own handlers back
