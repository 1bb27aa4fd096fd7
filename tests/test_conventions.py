"""Lightning conventions of nnopt's callbacks: a misspelt hook must fail here instead of silently never running."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import tomllib

import pytorch_lightning as pl

import nnopt
from tests.helpers import ROOT

#: every hook and overridable method of Lightning's Callback (on_*, setup, teardown, state_dict, ...)
CALLBACK_API = {name for name in dir(pl.Callback) if not name.startswith("_")}
#: names that look like Lightning hooks: each must be a real one (or an explicit override of a base class)
HOOK_LIKE = re.compile(r"^(on_.*|setup|teardown|state_dict|load_state_dict)$")
#: optional distributions whose import name differs from the distribution name
IMPORT_NAMES = {"mlflow_skinny": "mlflow"}


def optional_modules() -> set[str]:
    """Import names of nnopt's optional dependencies (pyproject extras): only their absence may skip a module."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("optional-dependencies", {})
    dists = {re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0] for reqs in extras.values() for req in reqs}
    names = {dist.lower().replace("-", "_") for dist in dists} - {"nnopt"}  # `all = ["nnopt[...]"]`
    return names | {IMPORT_NAMES[name] for name in names if name in IMPORT_NAMES}


def is_optional(missing: str, optional: set[str]) -> bool:
    """`missing` (a ModuleNotFoundError's name) is, or lives in, an optional dependency (also Hydra plugins)."""
    return any(part in optional for part in missing.lower().split("."))


def nnopt_modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages(nnopt.__path__, prefix="nnopt.")]


def import_all() -> list[object]:
    modules, optional = [], optional_modules()
    for name in nnopt_modules():
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if not is_optional(exc.name or "", optional):
                raise
    return modules


def nnopt_callbacks() -> list[type[pl.Callback]]:
    found = {
        cls
        for module in import_all()
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, pl.Callback) and cls.__module__.startswith("nnopt.")
    }
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}")


def own_methods(cls: type) -> dict[str, object]:
    """Functions defined in the class body itself (staticmethod/classmethod/property unwrapped)."""
    methods = {}
    for name, attr in vars(cls).items():
        func = attr.fget if isinstance(attr, property) else getattr(attr, "__func__", attr)
        if callable(func) or isinstance(attr, property):
            methods[name] = func
    return methods


def is_override(func: object) -> bool:
    return bool(getattr(func, "__override__", False))


def misspelling_errors(cls: type) -> list[str]:
    """Hook-like names Lightning does not know, and @override methods no base class has."""
    errors = []
    for name, func in own_methods(cls).items():
        where = f"{cls.__module__}.{cls.__qualname__}.{name}"
        if HOOK_LIKE.match(name) and name not in CALLBACK_API:
            errors.append(f"{where}: not a Lightning Callback hook (misspelt?)")
        if is_override(func) and not any(name in vars(base) for base in cls.__mro__[1:]):
            errors.append(f"{where}: marked @override but no base class defines it")
    return errors


def unmarked_hooks(cls: type) -> list[str]:
    """Lightning hooks implemented without @override (the convention that makes a later rename fail loudly)."""
    return [
        f"{cls.__module__}.{cls.__qualname__}.{name}: Lightning hook without @override"
        for name, func in own_methods(cls).items()
        if name in CALLBACK_API and not is_override(func)
    ]


def test_callback_hooks_are_real_lightning_hooks():
    callbacks = nnopt_callbacks()
    names = {c.__name__ for c in callbacks}  # the walk really reached the callback modules
    assert {"GradientClipping", "GradualPruning", "QuantizationAwareTraining", "TrainThroughput"} <= names
    errors = [error for cls in callbacks for error in misspelling_errors(cls)]
    assert not errors, "\n".join(errors)


def test_callback_hooks_are_marked_override():
    errors = [error for cls in nnopt_callbacks() for error in unmarked_hooks(cls)]
    assert not errors, "\n".join(errors)


def test_the_checks_catch_a_misspelt_hook_and_a_missing_override():
    from typing_extensions import override

    class Misspelt(pl.Callback):
        def on_train_epoch_strat(self, trainer, pl_module):  # typo: Lightning would never call it
            pass

    class FalseOverride(pl.Callback):
        @override
        def on_train_epoch_strat(self, trainer, pl_module):
            pass

    class Unmarked(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            pass

    class Good(pl.Callback):
        @override
        def on_train_epoch_start(self, trainer, pl_module):
            pass

    [misspelt] = misspelling_errors(Misspelt)
    assert misspelt.endswith("Misspelt.on_train_epoch_strat: not a Lightning Callback hook (misspelt?)")
    assert len(misspelling_errors(FalseOverride)) == 2
    assert unmarked_hooks(Unmarked) == [
        f"{__name__}.{Unmarked.__qualname__}.on_train_epoch_start: Lightning hook without @override"
    ]
    assert misspelling_errors(Good) == unmarked_hooks(Good) == []
