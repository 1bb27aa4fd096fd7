"""Secrets stay in the environment: what a run writes keeps `${oc.env:...}` unresolved, and secret values are redacted.

Why: a run's config is copied into summary.json, every checkpoint, hparams.yaml and logger configs (W&B files are
uploaded later). `tags=[${oc.env:MY_API_KEY}]` must not put the key into any of them.

- :func:`run_config`: the config as stored with a run. A value written as an `${oc.env:...}` interpolation keeps its
  interpolation string: inside a group (`data.dir=${oc.env:DATA_ROOT}/x`) as a live one, so `nnopt-eval` resolves it
  again in its own environment; at the top level (tags, notes, `+key=...`) and for secret-named variables escaped
  (`\\${oc.env:X}`), a literal that never resolves, so an eval without the variable still works.
- :func:`redact`: every string containing the value of a secret-named variable (name containing KEY, TOKEN, SECRET
  or PASSWORD; values of 6+ characters) gets `<redacted $NAME>` instead: covers values that reached the config
  indirectly (`+x=${note}`) and error messages.
- :class:`RedactingFilter`: the same for log records (the run's log file).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASS", "CRED", "AUTH", "PRIVATE")
#: variables a run's config names as secrets besides those (`secrets.redact=[MY_VAR]`), set by :func:`use_config`
_named: set[str] = set()
#: shorter values are not secrets worth the name, and redacting them would mangle ordinary text
MIN_LEN = 6
_ENV_REF = re.compile(r"\$\{\s*(?:oc\.env|env)\s*:\s*([A-Za-z_][A-Za-z0-9_]*)")


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return name in _named or any(word in upper for word in SECRET_WORDS)


def use_config(cfg: Any) -> None:
    """Take the run's own list of secret variables (`secrets.redact: [MY_VAR, ...]`) into account from now on (the
    schema refuses a value that is not a list of names; this reads whatever names there are, before validation)."""
    node = cfg.get("secrets") if hasattr(cfg, "get") else None
    names = node.get("redact") if hasattr(node, "get") else None
    if names is not None and not isinstance(names, str):
        _named.update(str(n) for n in names if isinstance(n, str))


def secret_env() -> dict[str, str]:
    """Environment variables whose names mark them as secrets (name -> value), longest value first."""
    found = {k: v for k, v in os.environ.items() if is_secret_name(k) and len(v) >= MIN_LEN}
    return dict(sorted(found.items(), key=lambda kv: -len(kv[1])))


def leaked_in(text: str) -> str | None:
    """The name of a secret-named variable whose value occurs in `text`, or None."""
    return next((name for name, value in secret_env().items() if value in text), None)


def redact(obj: Any, secrets: dict[str, str] | None = None) -> Any:
    """`obj` (nested dicts/lists/strings) with secret values replaced by `<redacted $NAME>`."""
    secrets = secret_env() if secrets is None else secrets
    if not secrets:
        return obj
    if isinstance(obj, str):
        for name, value in secrets.items():
            if value in obj:
                obj = obj.replace(value, f"<redacted ${name}>")
        return obj
    if isinstance(obj, dict):
        return {redact(k, secrets): redact(v, secrets) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact(v, secrets) for v in obj)
    return obj


def _escape(text: str) -> str:
    return text if text.startswith("\\${") else text.replace("${", "\\${")


_NODE_REF = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*\}")


def _env_keys(raw: dict[str, Any]) -> set[str]:
    """Dotted keys whose value comes from an environment variable, directly or through `${other.key}` references
    (e.g. `logger.wandb.tags: ${tags}` with `tags=[${oc.env:X}]`)."""
    strings: dict[str, str] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")
        elif isinstance(node, str) and "${" in node:
            strings[path] = node

    walk(raw, "")
    found = {path for path, text in strings.items() if _ENV_REF.search(text)}
    changed = True
    while changed:
        changed = False
        for path, text in strings.items():
            if path in found:
                continue
            refs = _NODE_REF.findall(text)
            if any(
                ref == key or key.startswith(f"{ref}.") or key.startswith(f"{ref}[") for ref in refs for key in found
            ):
                found.add(path)
                changed = True
    return found


def _keep(raw: Any, resolved: Any, top_level: bool, env_keys: set[str] = frozenset(), path: str = "") -> Any:
    if isinstance(raw, str):
        names = _ENV_REF.findall(raw)
        if not names:
            # a reference to a value that came from the environment stays a reference (it resolves to the kept one)
            return raw if path in env_keys else resolved
        if top_level or any(is_secret_name(n) for n in names):
            return _escape(raw)
        return raw
    if isinstance(raw, dict) and isinstance(resolved, dict):
        return {
            k: _keep(raw.get(k), v, top_level, env_keys, f"{path}.{k}" if path else str(k)) for k, v in resolved.items()
        }
    if isinstance(raw, list) and isinstance(resolved, list) and len(raw) == len(resolved):
        return [
            _keep(r, v, top_level, env_keys, f"{path}[{i}]") for i, (r, v) in enumerate(zip(raw, resolved, strict=True))
        ]
    return resolved


def run_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config to store with a run, env interpolations kept and secret values redacted (module doc)."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    env_keys = _env_keys(raw)
    kept = {k: _keep(raw.get(k), v, not isinstance(v, dict), env_keys, str(k)) for k, v in resolved.items()}
    return redact(kept)


class RedactingFilter(logging.Filter):
    """Replaces secret values in log messages (installed on the run's log handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = secret_env()
        if secrets:
            message = record.getMessage()
            cleaned = redact(message, secrets)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


def install_log_filter() -> None:
    """Add :class:`RedactingFilter` to every handler of the root and nnopt loggers (once)."""
    for logger in (logging.getLogger(), logging.getLogger("nnopt")):
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
