"""Hydra's command line as nnopt reads it before Hydra does: flags and overrides, and the config dirs they name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from nnopt.config import CONFIG_DIR, CONFIG_SEARCHPATH
from nnopt.errors import fail

#: Hydra flags that print instead of running (the pre-check leaves them to Hydra)
PRINT_ONLY = {"--help", "--hydra-help", "--info", "--shell-completion", "--experimental-rerun", "--version"}
#: Hydra flags that take a value (`-cd DIR` or `-cd=DIR`), by their long name
_WITH_VALUE = {"--config-dir", "--config-path", "--config-name", "--cfg", "--package", "--experimental-rerun"}
_LONG = {
    "-h": "--help",
    "-i": "--info",
    "-sc": "--shell-completion",
    "-cd": "--config-dir",
    "-cp": "--config-path",
    "-cn": "--config-name",
    "-c": "--cfg",
    "-p": "--package",
    "-m": "--multirun",
    "-r": "--run",
}


def split_argv(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Hydra's command line as ({long flag: value}, overrides)."""
    flags: dict[str, str] = {}
    overrides: list[str] = []
    args = iter(argv)
    for arg in args:
        if not arg.startswith("-") or arg == "-":
            overrides.append(arg)
            continue
        name, has_value, value = arg.partition("=")
        name = _LONG.get(name, name)
        if name in _WITH_VALUE and not has_value:
            value = next(args, "")
        flags[name] = value
    return flags, overrides


def _quoted(entry: str) -> str:
    return "'" + entry.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _searchpath_in(config_file: Path) -> list[str]:
    """`hydra.searchpath` set in a primary config file of the user's (Hydra reads it from there too)."""
    try:
        found = OmegaConf.select(OmegaConf.load(config_file), "hydra.searchpath")
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the compose below
        return []
    return [str(p) for p in found] if found else []


def _missing_entry(entry: str) -> str | None:
    """Why a `hydra.searchpath` entry names nothing Hydra could read configs from, or None (Hydra itself skips such
    an entry without a word, so its configs would silently not count)."""
    scheme, sep, rest = entry.partition("://")
    if not sep:
        scheme, rest = "file", entry
    if scheme == "file":
        return None if Path(rest).expanduser().is_dir() else "no such directory"
    if scheme == "pkg":
        import importlib.util

        try:
            found = importlib.util.find_spec(rest)
        except (ImportError, ValueError):
            found = None
        return None if found is not None else "no such package"
    return None  # a scheme of a plugin's: Hydra's source for it judges


def check_searchpath(entries: list[str]) -> None:
    """One line naming the first `hydra.searchpath` entry that does not exist."""
    for entry in entries:
        why = _missing_entry(entry)
        if why:
            fail(
                f"hydra.searchpath entry {entry!r}: {why}; allowed: existing config dirs (file://<dir>) or "
                "packages (pkg://<module>)"
            )


def config_sources(flags: dict[str, str], overrides: list[Any], config_name: str) -> tuple[str, list[str], bool]:
    """(primary config dir, `hydra.searchpath` override, exact) that see the same configs Hydra's run will.

    Hydra puts `--config-dir` first, then nnopt's tree, then `hydra.searchpath` (from the command line, else the
    primary config). Hydra looks the primary config up before applying `hydra.searchpath`, so the user's dir can
    be the primary dir only when it holds the primary config; otherwise it follows nnopt's tree, which lists the
    same options but composes nnopt's file where both have one: `exact` is False when that can happen.
    """
    own: list[str] | None = None
    for override in overrides:
        if override.get_key_element() == "hydra.searchpath":
            own = [str(v) for v in override.value() or []]
            check_searchpath(own)
    primary, entries, exact = CONFIG_DIR, own, True
    if flags.get("--config-dir"):
        user = Path(flags["--config-dir"]).expanduser().resolve()
        if not user.is_dir():
            fail(f"--config-dir {flags['--config-dir']}: no such directory")
        if (user / f"{config_name}.yaml").is_file():
            primary = str(user)
            inherited = own if own is not None else _searchpath_in(user / f"{config_name}.yaml")
            check_searchpath(inherited)
            entries = [CONFIG_SEARCHPATH, *inherited]
        else:
            entries = [f"file://{user}", *(own or [])]
            exact = not any((user / p.relative_to(CONFIG_DIR)).exists() for p in Path(CONFIG_DIR).rglob("*.yaml"))
    return primary, ([f"hydra.searchpath=[{','.join(_quoted(e) for e in entries)}]"] if entries else []), exact
