"""The one exception family for bad input: entry points turn it into one clean line and exit 2."""

from __future__ import annotations

from collections.abc import Iterable


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
