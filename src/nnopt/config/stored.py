"""A run config read back from a file a user did not write (a checkpoint's): what is checked is what is built.

The stored config is resolved first, with only read-only resolvers (`oc.env`, `oc.select`) and nnopt's own — so a
`_target_` that appears only through an interpolation is seen — then every `_target_` of the resolved container is
checked against the targets a user chose, and that checked container, with no interpolation left, is what callers
build from.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from nnopt.config.resolvers import NAMES as RESOLVER_NAMES
from nnopt.config.resolvers import register as register_resolvers
from nnopt.errors import CheckpointError

#: interpolation resolvers a stored config may use: OmegaConf's read-only ones and nnopt's own. Resolvers that build
#: objects from strings (`oc.create`, `oc.decode`), anything a user registered, and the rest are refused: a file's
#: string could otherwise turn into a `_target_` only after the check.
STORED_RESOLVERS = ("oc.env", "oc.select", *RESOLVER_NAMES)
_RESOLVER_CALL = re.compile(r"\$\{\s*([^\s:{}$]+)\s*:")


def resolver_calls(text: str) -> list[str]:
    """Names of the resolvers `text` calls (`${name:...}`), nested ones included; an escaped `\\${` (an odd number
    of backslashes before it) is a literal, as OmegaConf reads it."""
    names = []
    for match in _RESOLVER_CALL.finditer(text):
        start = match.start()
        backslashes = len(text[:start]) - len(text[:start].rstrip("\\"))
        if backslashes % 2 == 0:
            names.append(match.group(1))
    return names


def _strings(node: Any) -> Any:
    if isinstance(node, dict):
        for k, v in node.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


def resolved(saved: Any, source: str) -> dict[str, Any]:
    """The checkpoint's stored config resolved into a plain container, with only :data:`STORED_RESOLVERS`.

    Raises:
        CheckpointError: another resolver, or a config that does not resolve.
    """
    if not isinstance(saved, dict):
        raise CheckpointError(f"{source} is unreadable (not a mapping)")
    for text in _strings(saved):
        for name in resolver_calls(text):
            if name not in STORED_RESOLVERS:
                raise CheckpointError(
                    f"{source} uses the resolver {name!r}; a stored config may use only "
                    f"{', '.join(STORED_RESOLVERS)} (refusing to run what a checkpoint chose)"
                )
    register_resolvers()
    saved = copy.deepcopy(saved)
    for _ in range(_MAX_UNSET):
        try:
            resolved = OmegaConf.to_container(OmegaConf.create(saved, flags={"allow_objects": False}), resolve=True)
            break
        except InterpolationResolutionError as exc:
            if "Environment variable" not in str(exc) or not _keep_literal(saved, str(exc.full_key or "")):
                raise _unreadable(exc, source) from None
        except Exception as exc:  # noqa: BLE001 - a malformed stored config is bad input like any other
            raise _unreadable(exc, source) from None
    else:
        raise CheckpointError(f"{source} names more than {_MAX_UNSET} unset environment variables")
    if not isinstance(resolved, dict):
        raise CheckpointError(f"{source} is unreadable (not a mapping)")
    return resolved


#: how many values of unset environment variables a stored config may hold (each is kept as a literal)
_MAX_UNSET = 64
_KEY_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _unreadable(exc: BaseException, source: str) -> CheckpointError:
    first = " ".join(str(exc).split())[:150]
    return CheckpointError(f"{source} is unreadable ({type(exc).__name__}: {first})")


def _keep_literal(saved: dict[str, Any], full_key: str) -> bool:
    """Turn the value at `full_key` (`a.b[0].c`) into the literal text of its interpolation: an `${oc.env:X}` of
    a variable this process does not have (a logger's project name set where the run trained) yields a string,
    never a node, so it can stay unresolved without hiding a target. False when the key is not found."""
    parts = [name if name else int(index) for name, index in _KEY_PART.findall(full_key)]
    node: Any = saved
    for part in parts[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    if not parts or not isinstance(node, (dict, list)):
        return False
    try:
        value = node[parts[-1]]
    except (KeyError, IndexError, TypeError):
        return False
    if not isinstance(value, str):
        return False
    node[parts[-1]] = _as_literals(value)
    return True


def checked_config(saved: Any, source: str, chosen: Any = None, only: tuple[str, ...] = ()) -> DictConfig:
    """A stored run config (`source` names it in errors), resolved, once every `_target_` in it is one the user
    chose.

    What is checked is what is built: the stored config is resolved first (:func:`resolved`: a
    `_target_` that appears only through an interpolation is seen), every `_target_` of the resolved container is
    checked — in every group, in lists and in `_args_` — and the returned config is that checked container, with no
    interpolation left to resolve differently later.

    Chosen means: named by a config on the search path (nnopt's groups, `hydra.searchpath`, `--config-dir`), or by
    `chosen` (this command's own config). Anything else would be code the file picked (Hydra instantiates any
    importable callable: `builtins.open` truncates files), so the checkpoint is refused before anything is built.

    `only` limits the target check to those top-level keys.

    Raises:
        CheckpointError: naming the first foreign target's key, or a resolver a stored config may not use.
    """
    from nnopt.config.targets import known_targets, targets_in

    plain = resolved(saved, source)
    allowed = set(known_targets())
    if chosen is not None:
        allowed |= {str(v) for _, v in targets_in(chosen)}
    for where, target in targets_in({k: v for k, v in plain.items() if k in only} if only else plain):
        if not isinstance(target, str) or target not in allowed:
            raise CheckpointError(
                f"{source}.{where}={target!r} is not a target any config on the search path names; "
                "refusing to run code a checkpoint chose (add a config that names it to use it)"
            )
    return OmegaConf.create(_as_literals(plain), flags={"allow_objects": False})


def _as_literals(node: Any) -> Any:
    """Strings that still read like interpolations after resolving (a stored `\\${...}`) escaped, so the checked
    container never resolves again into something else."""
    if isinstance(node, dict):
        return {k: _as_literals(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_as_literals(v) for v in node]
    if isinstance(node, str) and "${" in node:
        return re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", node)
    return node
