"""Signals are not success: SIGTERM (preemption, `kill`), SIGINT (Ctrl-C) and SIGUSR1 end a run as `interrupted`.

Why a module of its own: Lightning turns SIGTERM into `SIGTERMException`, a `SystemExit` without a code, so a killed
run would exit 0 and look finished. Here every such signal becomes :class:`Interrupted` (a `BaseException`, so no
`except Exception` swallows it): during training the signal is only recorded and
:class:`nnopt.callbacks.on_signal.SaveOnSignal` saves `checkpoints/last.ckpt` at the end of the current step before
raising it (`resume=true` loses at most that step); outside training it is raised at once. The run's summary says
`status: interrupted`, one line is printed, and the process exits 128 + the signal number (143, 130, 138).

Under SLURM, SIGUSR1 is left to Lightning's auto-requeue (it saves `hpc_ckpt_N.ckpt` and requeues the job).
This module imports neither torch nor Lightning: entry points install it before anything heavy is loaded.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from nnopt._compat import is_lightning_sigterm

#: signals that interrupt a run (SIGUSR1: SLURM's warning before the time limit, other schedulers' preemption)
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)

_received: int | None = None
_deferred = False
_saved_to: str | None = None
_saved_step: int | None = None


class Interrupted(BaseException):
    """A run stopped by a signal; `exit_code` is the shell's convention, 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(f"interrupted by {signal.Signals(self.signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def received() -> int | None:
    """The first interrupting signal this process got (None: none yet)."""
    return _received


def saved_to() -> str | None:
    """The checkpoint written at the signal, if any."""
    return _saved_to


def saved_step() -> int | None:
    """The optimizer step that checkpoint holds (`resume=true` continues after it)."""
    return _saved_step


def note_saved(path: str, step: int) -> None:
    global _saved_to, _saved_step
    _saved_to, _saved_step = path, step


def defer(on: bool) -> None:
    """While training: only record a signal (the step finishes and is saved first); a second one still stops at once."""
    global _deferred
    _deferred = on


def reset() -> None:
    """Forget a signal (tests, and a multirun's next job after the sweep decided what to do)."""
    global _received, _deferred, _saved_to, _saved_step
    _received, _deferred, _saved_to, _saved_step = None, False, None, None


def on_signal(signum: int, _frame: Any) -> None:
    """The handler nnopt installs for its signals (SIGTERM, SIGINT, SIGUSR1; a launcher may add its own, e.g. SIGUSR2):
    record the first, and stop now unless training defers it to the end of the step."""
    global _received
    first = _received is None
    if first:
        _received = signum
    if not _deferred or not first:
        raise Interrupted(signum)


def signal_of(exc: BaseException | None) -> int | None:
    """The signal behind an exception that ended a run (None: not an interruption)."""
    if isinstance(exc, Interrupted):
        return exc.signum
    if isinstance(exc, KeyboardInterrupt):
        return signal.SIGINT
    if isinstance(exc, SystemExit) and is_lightning_sigterm(exc):  # Lightning's, raised after SIGTERM
        return _received or signal.SIGTERM
    return None


def install() -> dict[int, Any]:
    """Install the handlers (main thread only; SIGUSR1 not under SLURM, where Lightning's requeue handles it).

    Returns the handlers they replace (for :func:`restore`)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for signum in SIGNALS:
        if signum == signal.SIGUSR1 and os.environ.get("SLURM_JOB_ID"):
            continue
        previous[signum] = signal.signal(signum, on_signal)
    return previous


def restore(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
