"""The one exception family for bad input, and the one way an entry point reports it: one clean line, exit 2.

`fail` is the only place nnopt prints an error line (every console script and Hydra plugin goes through it), so
every such line is redacted the same way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import NoReturn

from nnopt.secrets import redact

#: exit codes of every console script: bad input (nothing ran) / a run that failed
BAD_INPUT_EXIT, FAILURE_EXIT = 2, 1


class NnoptError(Exception):
    """Bad user input (config, data, checkpoint): reported as one line, never as a traceback."""


class ConfigError(NnoptError):
    """A config value is missing, of the wrong type or out of range."""


class DataError(NnoptError):
    """A data set is missing, corrupt, truncated or inconsistent."""


class CheckpointError(NnoptError):
    """A checkpoint is missing, unreadable or belongs to another config."""


def require(ok: bool, key: str, value: object, allowed: str) -> None:
    """Raise the standard one-line ConfigError for `key=value` unless `ok`: callbacks validate their own args.

    Raises:
        ConfigError: `key=value is out of range; allowed: <allowed>`.
    """
    if not ok:
        raise ConfigError(f"{key}={value!r} is out of range; allowed: {allowed}")


def require_choice(key: str, value: object, choices: Iterable[object], problem: str = "is not allowed") -> None:
    """Like :func:`require` for a value that must be one of `choices` (the message lists them all).

    Raises:
        ConfigError: `key=value <problem>; choose one of: a, b, c`.
    """
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"{key}={value!r} {problem}; choose one of: {', '.join(map(str, choices))}")


def full_error() -> bool:
    """`HYDRA_FULL_ERROR=1`: tracebacks instead of one line (Hydra's own switch)."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def error_line(message: str, prog: str = "nnopt") -> str:
    """`<prog>: error: <message>`, secrets redacted (`optimizer.lr=${oc.env:MY_API_KEY}` names no key)."""
    return f"{prog}: error: {redact(' '.join(str(message).split()))}"


def fail(message: str, code: int = BAD_INPUT_EXIT, prog: str = "nnopt") -> NoReturn:
    """Print :func:`error_line` on stderr and exit with `code`."""
    print(error_line(message, prog), file=sys.stderr)
    sys.exit(code)
