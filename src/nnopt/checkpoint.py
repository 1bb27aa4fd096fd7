"""nnopt checkpoints: safe loading, the stored run config, resume resolution and compatibility checks.

A checkpoint is untrusted input. It is read with `weights_only=True` (no pickled code), and the config stored in it
(`CONFIG_KEY`) is data: code that rebuilds a model from it goes through :mod:`nnopt.tasks.rebuild`, never
through a plain `instantiate` of what the file says.

A run reads its checkpoint once: :func:`read_cached` keeps the last file it loaded (keyed by path, size and
mtime), and the trainer's checkpoint IO (:class:`AtomicCheckpointIO`) and callbacks that need to look inside before
Lightning restores it (QAT) are served from that copy. :func:`load` is that read plus the checks that make it an
nnopt checkpoint, with one-line errors: what every consumer calls.
"""

from __future__ import annotations

import copy
import io
import logging
import re
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.checkpoint_io import CheckpointIO
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError
from typing_extensions import override

from nnopt.config.resolvers import NAMES as RESOLVER_NAMES
from nnopt.config.resolvers import register as register_resolvers
from nnopt.errors import CheckpointError
from nnopt.io import write_with

log = logging.getLogger("nnopt")

CONFIG_KEY = "nnopt_config"
#: what the model needs to know about its inputs (shapes, task, standardisation): nnopt.tasks.rebuild.data_info
DATA_KEY = "nnopt_data"
#: prefix of the inner network's parameters in a LightningModule state_dict
NET_PREFIX = "net."
#: checkpoint files a killed or requeued run leaves in its own dir (newest wins)
LAST_FILE = "last.ckpt"
REQUEUE_GLOB = "hpc_ckpt_*.ckpt"
#: a checkpoint from elsewhere must share these groups (batch size etc. may change)
RESUME_GROUPS = ("model", "data")
#: a checkpoint in this run's own dir (auto-resume, requeue) must come from this very configuration
SAME_RUN_GROUPS = (*RESUME_GROUPS, "optimizer", "schedule", "compression", "seed")
#: what resuming *training* needs besides weights (a weights-only file can only be evaluated or fine-tuned)
TRAINING_STATE_KEYS = ("optimizer_states", "loops", "epoch", "global_step")

_cache: tuple[tuple[str, int, int], dict[str, Any]] | None = None


def _identity(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def read_cached(path: str | Path) -> dict[str, Any]:
    """`torch.load(path, weights_only=True)` on CPU, served from memory when the same file was read last.

    Raises:
        FileNotFoundError, OSError, pickle errors: as torch.load does (see :func:`load` for one-line errors).
    """
    global _cache
    path = Path(path)
    key = _identity(path)
    if _cache is not None and _cache[0] == key:
        return _cache[1]
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    _cache = (key, ckpt)
    return ckpt


def forget() -> None:
    """Drop the cached checkpoint (a multirun's next job must not see the previous one)."""
    global _cache
    _cache = None


def load(path: str | Path, key: str = "ckpt_path") -> dict[str, Any]:
    """Load an nnopt checkpoint safely; `key` names the config key the path came from in error messages.

    Raises:
        CheckpointError: missing, unreadable, not a dict, or without a state_dict / nnopt config.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{key}={path} does not exist")
    try:
        ckpt = read_cached(path)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{key}={path} is not a readable nnopt checkpoint ({first[:200]})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{key}={path} is not an nnopt checkpoint (no state_dict in it)")
    if not isinstance(ckpt.get(CONFIG_KEY), dict):
        raise CheckpointError(f"{key}={path} is not an nnopt checkpoint (no {CONFIG_KEY} in it)")
    return ckpt


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


def resolved_stored_config(ckpt: dict[str, Any], path: str | Path, key: str = "ckpt_path") -> dict[str, Any]:
    """The checkpoint's stored config resolved into a plain container, with only :data:`STORED_RESOLVERS`.

    Raises:
        CheckpointError: another resolver, or a config that does not resolve.
    """
    saved = ckpt[CONFIG_KEY]
    for text in _strings(saved):
        for name in resolver_calls(text):
            if name not in STORED_RESOLVERS:
                raise CheckpointError(
                    f"{key}={path}: {CONFIG_KEY} uses the resolver {name!r}; a stored config may use only "
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
                raise _unreadable(exc, path, key) from None
        except Exception as exc:  # noqa: BLE001 - a malformed stored config is bad input like any other
            raise _unreadable(exc, path, key) from None
    else:
        raise CheckpointError(f"{key}={path}: {CONFIG_KEY} names more than {_MAX_UNSET} unset environment variables")
    if not isinstance(resolved, dict):
        raise CheckpointError(f"{key}={path}: unreadable {CONFIG_KEY} (not a mapping)")
    return resolved


#: how many values of unset environment variables a stored config may hold (each is kept as a literal)
_MAX_UNSET = 64
_KEY_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _unreadable(exc: BaseException, path: str | Path, key: str) -> CheckpointError:
    first = " ".join(str(exc).split())[:150]
    return CheckpointError(f"{key}={path}: unreadable {CONFIG_KEY} ({type(exc).__name__}: {first})")


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


def trusted_config(
    ckpt: dict[str, Any], path: str | Path, key: str = "ckpt_path", chosen: Any = None, only: tuple[str, ...] = ()
) -> DictConfig:
    """The run config stored in a checkpoint, resolved, once every `_target_` in it is one the user chose.

    What is checked is what is built: the stored config is resolved first (:func:`resolved_stored_config`: a
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

    resolved = resolved_stored_config(ckpt, path, key)
    allowed = set(known_targets())
    if chosen is not None:
        allowed |= {str(v) for _, v in targets_in(chosen)}
    for where, target in targets_in({k: v for k, v in resolved.items() if k in only} if only else resolved):
        if not isinstance(target, str) or target not in allowed:
            raise CheckpointError(
                f"{key}={path}: {CONFIG_KEY}.{where}={target!r} is not a target any config on the search path names; "
                "refusing to run code a checkpoint chose (add a config that names it to use it)"
            )
    return OmegaConf.create(_as_literals(resolved), flags={"allow_objects": False})


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


def net_state(state_dict: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The inner network's weights from a LightningModule state_dict (`net.` prefix removed)."""
    return {k[len(NET_PREFIX) :]: v for k, v in state_dict.items() if k.startswith(NET_PREFIX)}


def callback_state(ckpt: dict[str, Any], state_key: str) -> dict[str, Any]:
    """A callback's saved state (empty when absent or malformed)."""
    callbacks = ckpt.get("callbacks")
    state = callbacks.get(state_key) if isinstance(callbacks, dict) else None
    return state if isinstance(state, dict) else {}


# -- resume -----------------------------------------------------------------------------------------------
def resume_candidates(run_dir: str | Path) -> list[Path]:
    """Checkpoints a killed or requeued run left in its own dir, newest first."""
    run_dir = Path(run_dir)
    found = [p for p in (run_dir / "checkpoints" / LAST_FILE, *run_dir.glob(REQUEUE_GLOB)) if p.is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def in_run_dir(ckpt_path: str | Path, cfg: DictConfig) -> bool:
    """Whether a checkpoint belongs to this run's own dir (then it must come from this very config)."""
    try:
        return Path(ckpt_path).resolve().is_relative_to(Path(cfg.paths.output_dir).resolve())
    except (OSError, TypeError):
        return False


def resolve_resume(cfg: DictConfig, under_slurm: bool = False) -> Path | None:
    """The checkpoint this run continues from, or None; `cfg` is not modified.

    - `resume=true`: the newest `checkpoints/last.ckpt` / `hpc_ckpt_N.ckpt` of this run dir (a sweep job's dir in a
      multirun), else `ckpt_path` if given, else None (a fresh start, with a warning).
    - `ckpt_path=<file>`: that file.
    - under SLURM with neither: a requeue checkpoint of this run dir (Lightning's own auto-requeue writes them).
    """
    explicit = Path(cfg.ckpt_path) if cfg.get("ckpt_path") else None
    found = resume_candidates(cfg.paths.output_dir)
    if cfg.get("resume"):
        if found:
            log.info("resume: continuing from %s", found[0])
            return found[0]
        if explicit is None:
            log.warning("resume=true: no checkpoint in %s yet; starting from scratch", cfg.paths.output_dir)
        return explicit
    if explicit is not None:
        return explicit
    requeued = [p for p in found if p.name.startswith("hpc_ckpt_")] if under_slurm else []
    return requeued[0] if requeued else None


def _group_values(cfg: DictConfig, saved: dict[str, Any], group: str) -> tuple[dict, dict, str]:
    if isinstance(cfg.get(group), DictConfig):
        theirs = saved.get(group)
        return OmegaConf.to_container(cfg[group], resolve=True), theirs if isinstance(theirs, dict) else {}, f"{group}."
    return {group: cfg.get(group)}, {group: saved.get(group)}, ""  # a root value (seed) or compression=none


def check_compatible(cfg: DictConfig, ckpt: dict[str, Any], path: str | Path, training: bool = True) -> None:
    """Refuse to continue from a checkpoint of another model or data set (with one line naming the key).

    A checkpoint of this run's own dir (resume=true, SLURM requeue) must also match the optimizer, schedule,
    compression, seed and batch size. Resuming *training* from another optimizer's checkpoint, or from a file without
    loop/optimizer state, is refused too (Lightning would fail with a KeyError half-way through restoring).

    Raises:
        CheckpointError: the first mismatch found.
    """
    saved = ckpt[CONFIG_KEY]
    same_run = in_run_dir(path, cfg)
    ignored = ("eval_batch_size", "on_device", "dir", *(() if same_run else ("batch_size",)))
    for group in SAME_RUN_GROUPS if same_run else RESUME_GROUPS:
        mine, theirs, prefix = _group_values(cfg, saved, group)
        diff = [k for k in mine if k not in ignored and mine.get(k) != theirs.get(k)]
        if diff:
            k = diff[0]
            raise CheckpointError(
                f"ckpt_path={path} was trained with {prefix}{k}={theirs.get(k)!r}, "
                f"this run has {prefix}{k}={mine.get(k)!r}; resume with the same {group} config"
            )
    if not training:
        return
    missing = [k for k in TRAINING_STATE_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(
            f"ckpt_path={path} holds no training state ({', '.join(missing)} missing): it can be evaluated "
            "(nnopt-eval) or fine-tuned from (compression=finetune compression.ckpt=...), not resumed"
        )
    theirs = (saved.get("optimizer") or {}).get("_target_") if isinstance(saved.get("optimizer"), dict) else None
    mine = cfg.optimizer.get("_target_") if isinstance(cfg.get("optimizer"), DictConfig) else None
    if theirs != mine:
        raise CheckpointError(
            f"ckpt_path={path} was trained with optimizer {theirs}, this run uses {mine}: its optimizer state cannot "
            "be restored; resume with the same optimizer, or start from its weights with compression=finetune"
        )


def check_weights_fit(module: torch.nn.Module, ckpt: dict[str, Any], path: str | Path, key: str = "ckpt_path") -> None:
    """Tensors the checkpoint and the built module share by name must have the same shapes.

    (Names may differ legitimately: a QAT checkpoint holds the fake-quantized model, prepared before restore.)

    Raises:
        CheckpointError: naming the first parameter of another shape.
    """
    own = module.state_dict()
    for name, tensor in ckpt["state_dict"].items():
        mine = own.get(name)
        if isinstance(tensor, torch.Tensor) and mine is not None and tuple(tensor.shape) != tuple(mine.shape):
            raise CheckpointError(
                f"{key}={path}: weight {name} has shape {tuple(tensor.shape)}, this model needs {tuple(mine.shape)}"
            )


# -- writing ----------------------------------------------------------------------------------------------
def _is_local(path: str | Path) -> bool:
    return "://" not in str(path) or str(path).startswith("file://")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO that serialises straight into a same-directory temp file, fsynced and renamed
    (:func:`nnopt.io.write_with`): a kill or a full disk never leaves a truncated checkpoint under the final name.

    Remote paths (`s3://...`) keep Lightning's fsspec save: object stores have no partial files.
    """

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        # serialise in memory first: torch's zip writer turns a failed file write (ENOSPC) into an opaque
        # RuntimeError, while a plain write of the bytes raises the OSError that names the cause
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_with(Path(str(path).removeprefix("file://")), lambda fh: fh.write(buffer.getbuffer()))

    @override
    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> Any:
        """Served from :func:`read_cached`: the run already read (and checked) this file once."""
        if not _is_local(path) or weights_only is False:
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        return read_cached(Path(str(path).removeprefix("file://")))


def with_atomic_checkpoint_io(plugins: Any) -> list[Any]:
    """The trainer's plugin list with :class:`AtomicCheckpointIO` added, unless the user chose a CheckpointIO."""
    if plugins is None:
        items: list[Any] = []
    elif isinstance(plugins, (list, tuple)):
        items = list(plugins)
    else:
        items = [plugins]
    if not any(isinstance(p, CheckpointIO) for p in items):
        items.append(AtomicCheckpointIO())
    return items
