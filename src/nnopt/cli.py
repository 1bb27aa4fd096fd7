"""Entry-point plumbing shared by nnopt-train / nnopt-eval: early override checks and clean errors.

Bad input ends in one line on stderr and exit status 2 (set HYDRA_FULL_ERROR=1 for the traceback);
an unexpected failure ends in one line naming the run's traceback file and exit status 1.
In a multirun a failing job is recorded (its summary says `failed`) and the sweep goes on.
Length: the pre-check, nnopt's own --help and the one-line error plumbing share Hydra's argv parsing.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nnopt.config import CONFIG_DIR, CONFIG_SEARCHPATH
from nnopt.errors import NnoptError

log = logging.getLogger("nnopt")
BAD_INPUT_EXIT, FAILURE_EXIT = 2, 1
#: Hydra flags that print instead of running (the pre-check leaves them to Hydra)
_PRINT_ONLY = {"--help", "--hydra-help", "--info", "--shell-completion", "--experimental-rerun", "--version"}
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

#: optional packages: import name -> (distribution, nnopt extra that installs it)
OPTIONAL = {
    "wandb": ("wandb", "wandb"),
    "tensorboard": ("tensorboard", "tensorboard"),
    "mlflow": ("mlflow-skinny", "mlflow"),
    "optuna": ("optuna", "sweep"),
    "hydra_plugins.hydra_joblib_launcher": ("hydra-joblib-launcher", "sweep"),
    "hydra_plugins.hydra_submitit_launcher": ("hydra-submitit-launcher", "sweep"),
    "onnx": ("onnx", "export"),
    "onnxscript": ("onnxscript", "export"),
    "onnxruntime": ("onnxruntime", "export"),
}
#: config `_target_`s (by class name) -> the optional package they import
_TARGET_NEEDS = {
    "WandbLogger": "wandb",
    "TensorBoardLogger": "tensorboard",
    "MLFlowLogger": "mlflow",
    "NnoptOptunaSweeper": "optuna",
}
#: Hydra plugin options (hydra/<group>=<name>) -> the optional package that registers them
_PLUGIN_OPTIONS = {
    ("hydra/launcher", "joblib"): "hydra_plugins.hydra_joblib_launcher",
    ("hydra/launcher", "submitit_local"): "hydra_plugins.hydra_submitit_launcher",
    ("hydra/launcher", "submitit_slurm"): "hydra_plugins.hydra_submitit_launcher",
}


def full_error() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def fail(message: str, code: int = BAD_INPUT_EXIT) -> None:
    from nnopt.secrets import redact

    print(f"nnopt: error: {redact(message)}", file=sys.stderr)  # `optimizer.lr=${oc.env:MY_API_KEY}` names no key
    sys.exit(code)


def installed(module: str) -> bool:
    """Whether `module` can be imported (without importing it: the check must stay cheap)."""
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing, or the module is blocked in sys.modules
        return False


def missing_extra(module: str, what: str) -> str:
    """The one-line message for `what` needing optional `module`: which extra to install."""
    distribution, extra = OPTIONAL[module]
    return f"{what} needs the {distribution!r} package: pip install 'nnopt[{extra}]'"


def extra_for(exc: ModuleNotFoundError) -> str | None:
    """The optional package an import failure is about (None for anything else)."""
    name = exc.name or ""
    return next((m for m in OPTIONAL if name == m or name.startswith(m + ".")), None)


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
    primary, entries, exact = CONFIG_DIR, own, True
    if flags.get("--config-dir"):
        user = Path(flags["--config-dir"]).expanduser().resolve()
        if not user.is_dir():
            fail(f"--config-dir {flags['--config-dir']}: no such directory")
        if (user / f"{config_name}.yaml").is_file():
            primary = str(user)
            entries = [CONFIG_SEARCHPATH, *(own if own is not None else _searchpath_in(user / f"{config_name}.yaml"))]
        else:
            entries = [f"file://{user}", *(own or [])]
            exact = not any((user / p.relative_to(CONFIG_DIR)).exists() for p in Path(CONFIG_DIR).rglob("*.yaml"))
    return primary, ([f"hydra.searchpath=[{','.join(_quoted(e) for e in entries)}]"] if entries else []), exact


def _targets(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted path, `_target_`) of every instantiable node in a config (as plain containers, unresolved)."""
    if isinstance(node, dict):
        if isinstance(node.get("_target_"), str):
            yield path, node["_target_"]
        for key, child in node.items():
            yield from _targets(child, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _targets(child, f"{path}[{i}]")


def check_optional(cfg: DictConfig) -> None:
    """One line naming the extra to install when the composed config uses a package that is not installed."""
    choices = OmegaConf.select(cfg, "hydra.runtime.choices", default=None) or {}
    for path, target in _targets(OmegaConf.to_container(cfg, resolve=False)):
        module = _TARGET_NEEDS.get(target.rsplit(".", 1)[-1])
        if module is None or installed(module):
            continue
        if OmegaConf.select(cfg, f"{path}.if_installed", default=None) == module:  # e.g. logger=many: skipped
            continue
        group = path.split(".")[0]
        if group == "hydra":
            group = "/".join(path.split(".")[:2])
        choice = choices.get(group)
        fail(missing_extra(module, f"{group}={choice}" if choice is not None else path))


HELP = """\
nnopt-{app}: neural-network optimization experiments (Hydra configs, PyTorch Lightning).
nnopt-train fits and tests one configuration and writes <run dir>/summary.json (metrics, efficiency,
checkpoints); nnopt-eval tests a checkpoint; -m runs a sweep and writes a report of its jobs.

Usage: nnopt-{app} [group=option ...] [key.path=value ...] [-m] [--cfg job] [-cd DIR]

== Config groups (group=option) ==
{groups}

== Examples ==
  nnopt-train                                          # MLP on digits, Adam, CSV logs under logs/
  nnopt-train model=lenet5 optimizer=sgd optimizer.lr=0.05 trainer.max_epochs=5
  nnopt-train debug=fast                               # a few batches of everything: checks the path
  nnopt-train experiment=digits_lenet5                 # a preset from conf/experiment
  nnopt-train -m optimizer=sgd,adam model=mlp,lenet5   # 4-job sweep; report in the sweep dir
  nnopt-train --cfg job optimizer=sgd                  # print the composed config, run nothing
  nnopt-train -cd my_conf model=mynet                  # your own config dir, merged with nnopt's groups
  nnopt-eval ckpt_path=logs/train/runs/STAMP/checkpoints/last.ckpt

Hydra's flags (-m, --cfg job|hydra|all, -cd DIR, -cn NAME, --resolve, ...): --hydra-help.
Configs: {config_dir}
"""


def print_help(app: str, flags: dict[str, str], args: list[str], config_name: str) -> None:
    """nnopt's --help: description, config groups with their options (the user's included), examples.

    Printed here rather than through Hydra's help template: Hydra lists every hydra/ group too (~100 look-ups,
    over a second of CPU), and this keeps --help free of torch and Lightning imports.
    """
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        overrides = OverridesParser.create().parse_overrides([a for a in args if "=" in a])
    except Exception as exc:  # noqa: BLE001
        fail(f"cannot parse overrides: {str(exc).splitlines()[0]}")
    primary, searchpath, _ = config_sources(flags, overrides, config_name)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=primary, version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        groups = [g for g in loader.get_group_options("", ObjectType.GROUP, overrides=searchpath) if g != "hydra"]
        lines = []
        for group in sorted(groups):
            options = sorted(loader.get_group_options(group, ObjectType.CONFIG, overrides=searchpath))
            if options:
                lines.append(f"{group}: {', '.join(options)}")
    GlobalHydra.instance().clear()
    print(HELP.format(app=app, groups="\n".join(lines), config_dir=primary), end="")


def precheck(argv: list[str], config_name: str) -> None:
    """Compose the config once before Hydra does, so a typo costs one line instead of a stack trace.

    Options are listed through Hydra's config loader with the run's search path (`--config-dir`,
    `hydra.searchpath`, installed plugins), so the user's own configs count as much as nnopt's.
    """
    flags, args = split_argv(argv)
    if "--help" in flags and "--config-path" not in flags:
        print_help(config_name, flags, args, flags.get("--config-name") or config_name)
        sys.exit(0)
    if _PRINT_ONLY & set(flags) or "--config-path" in flags or full_error():
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
            plugin = _PLUGIN_OPTIONS.get((group, value))
            if plugin is not None and not installed(plugin):
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
            message = " ".join(lines[:2]) if lines else type(exc).__name__
            missing = re.search(r"Could not find '(hydra/\w+)/(\w+)'", message)
            plugin = _PLUGIN_OPTIONS.get(missing.groups()) if missing else None
            if plugin is not None and not installed(plugin):
                message = missing_extra(plugin, f"{missing.group(1)}={missing.group(2)}")
            fail(message)
        finally:
            GlobalHydra.instance().clear()
    check_optional(cfg)
    from nnopt.config.schema import check_output_dir

    try:  # Hydra makes the run dir before our code runs: an uncreatable one would end in its traceback
        multirun = str(OmegaConf.select(cfg, "hydra.mode")).rsplit(".", 1)[-1] == "MULTIRUN"  # enum or string
        check_output_dir(cfg, "--multirun" in flags or multirun)
    except NnoptError as exc:
        fail(str(exc))


def is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def guarded(task: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Run `task`; turn failures into one line (single run) or a recorded failure (multirun)."""
    from nnopt import runtime

    runtime.configure()  # again: launcher workers (joblib, submitit) start fresh processes that never ran main()
    try:
        return task(cfg)
    except NnoptError as exc:
        if full_error():
            raise
        if is_multirun():
            log.error("job failed: %s", exc)
            return None
        fail(str(exc), BAD_INPUT_EXIT)
    except Exception as exc:
        if full_error():
            raise
        module = extra_for(exc) if isinstance(exc, ModuleNotFoundError) else None
        if module is not None:  # an optional package used by code the pre-check cannot see
            if is_multirun():
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
        if is_multirun():
            log.error(message)
            return None
        fail(message, FAILURE_EXIT)
