"""Compose the config once before Hydra does, so a typo costs one line instead of a stack trace."""

from __future__ import annotations

import re
import sys
from typing import Any

from omegaconf import OmegaConf

from nnopt.cli import extras
from nnopt.cli.argv import PRINT_ONLY, config_sources, split_argv
from nnopt.cli.extras import PLUGIN_OPTIONS, missing_extra
from nnopt.cli.help import print_help
from nnopt.errors import NnoptError, fail, full_error

_YAML_MARK = re.compile(r'in "([^"]+)", line (\d+), column (\d+)')


def _yaml_error(exc: BaseException) -> str | None:
    """A config file that is not valid YAML, as one line naming the file, line and column (PyYAML puts them on a
    later line of its message, which a one-line error would cut off)."""
    text = str(exc)
    found = _YAML_MARK.search(text)
    if found is None:
        return None
    problem = " ".join(ln.strip() for ln in text[: found.start()].splitlines() if ln.strip())
    path, line, column = found.groups()
    return f"{path}: not valid YAML (line {line}, column {column}): {problem or type(exc).__name__}"


def precheck(argv: list[str], config_name: str) -> None:
    """Compose the config once before Hydra does, so a typo costs one line instead of a stack trace.

    Options are listed through Hydra's config loader with the run's search path (`--config-dir`,
    `hydra.searchpath`, installed plugins), so the user's own configs count as much as nnopt's.
    """
    flags, args = split_argv(argv)
    if "--help" in flags and "--config-path" not in flags:
        print_help(config_name, flags, args, flags.get("--config-name") or config_name)
        sys.exit(0)
    if PRINT_ONLY & set(flags) or "--config-path" in flags or full_error():
        return
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType
    from hydra.core.override_parser.overrides_parser import OverridesParser

    config_name = flags.get("--config-name") or config_name
    try:
        overrides = OverridesParser.create().parse_overrides(args)
    except Exception as exc:
        fail(f"cannot parse overrides: {str(exc).splitlines()[0]}")
    primary, searchpath, exact = config_sources(flags, overrides, config_name)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=primary, version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        cache: dict[str, list[str]] = {}

        def options(group: str) -> list[str]:
            if group not in cache:
                found = loader.get_group_options(group, ObjectType.CONFIG, config_name=None, overrides=searchpath)
                cache[group] = sorted(found)
            return cache[group]

        def check(group: str, value: Any) -> None:
            if not isinstance(value, str) or value == "null" or "." in group or value in options(group):
                return
            plugin = PLUGIN_OPTIONS.get((group, value))
            if plugin is not None and not extras.installed(plugin):
                fail(missing_extra(plugin, f"{group}={value}"))
            if options(group):  # an empty list: not a config group (Hydra's compose names the problem)
                fail(f"unknown {group} option {value!r}; choose one of: {', '.join(options(group))}")

        first: list[str] = []
        for override, arg in zip(overrides, args, strict=True):
            group = override.key_or_group
            if override.get_key_element() == "hydra.searchpath":
                continue
            if override.is_sweep_override():
                try:
                    values = [str(v) for v in override.sweep_string_iterator()]
                except Exception:  # noqa: BLE001 - range/interval sweeps: checked by Hydra
                    values = []
                if not values:
                    continue
                for value in values:
                    check(group, value)
                first.append(f"{arg.split('=', 1)[0]}={values[0]}")
                continue
            check(group, override.value())
            first.append(arg)
        if not exact:  # the user's dir overrides some of nnopt's files: Hydra's own composition decides
            GlobalHydra.instance().clear()
            return
        try:
            cfg = compose(config_name=config_name, overrides=[*first, *searchpath], return_hydra_config=True)
        except Exception as exc:  # noqa: BLE001 - Hydra's composition errors, shown as one line
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            message = _yaml_error(exc) or (" ".join(lines[:2]) if lines else type(exc).__name__)
            missing = re.search(r"Could not find '(hydra/\w+)/(\w+)'", message)
            plugin = PLUGIN_OPTIONS.get(missing.groups()) if missing else None
            if plugin is not None and not extras.installed(plugin):
                message = missing_extra(plugin, f"{missing.group(1)}={missing.group(2)}")
            fail(message)
        finally:
            GlobalHydra.instance().clear()
    extras.check_optional(cfg)
    from nnopt.config.schema import check_root

    try:  # a run records its tags, seed, ... before it validates its config: a bad one must stop here
        check_root(cfg)
    except NnoptError as exc:
        fail(str(exc))
    from nnopt.rundir import check_output_dir

    try:  # Hydra makes the run dir before our code runs: an uncreatable one would end in its traceback
        multirun = str(OmegaConf.select(cfg, "hydra.mode")).rsplit(".", 1)[-1] == "MULTIRUN"  # enum or string
        check_output_dir(cfg, "--multirun" in flags or multirun)
    except NnoptError as exc:
        fail(str(exc))
