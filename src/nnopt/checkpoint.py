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

import io
import logging
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.checkpoint_io import CheckpointIO
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf
from typing_extensions import override

from nnopt.config.stored import checked_config
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


def trusted_config(
    ckpt: dict[str, Any], path: str | Path, key: str = "ckpt_path", chosen: Any = None, only: tuple[str, ...] = ()
) -> DictConfig:
    """The run config stored in a checkpoint, resolved and checked: :func:`nnopt.config.stored.checked_config`
    (what is checked is what is built; only targets a user chose).

    Raises:
        CheckpointError: a foreign target, a resolver a stored config may not use, or an unreadable config.
    """
    return checked_config(ckpt[CONFIG_KEY], f"{key}={path}: {CONFIG_KEY}", chosen=chosen, only=only)


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
    _check_training_state(ckpt, path)
    theirs = (saved.get("optimizer") or {}).get("_target_") if isinstance(saved.get("optimizer"), dict) else None
    mine = cfg.optimizer.get("_target_") if isinstance(cfg.get("optimizer"), DictConfig) else None
    if theirs != mine:
        raise CheckpointError(
            f"ckpt_path={path} was trained with optimizer {theirs}, this run uses {mine}: its optimizer state cannot "
            "be restored; resume with the same optimizer, or start from its weights with compression=finetune"
        )


def _check_training_state(ckpt: dict[str, Any], path: str | Path) -> None:
    """The loop and optimizer state Lightning restores must have the shapes it expects (a crafted or damaged file
    would end in a TypeError half-way through restoring)."""
    loops, optimizers = ckpt.get("loops"), ckpt.get("optimizer_states")
    problems = {
        "loops": isinstance(loops, dict) and all(isinstance(v, dict) for v in loops.values()),
        "optimizer_states": isinstance(optimizers, list) and all(isinstance(v, dict) for v in optimizers),
        "epoch": isinstance(ckpt.get("epoch"), int) and not isinstance(ckpt.get("epoch"), bool) and ckpt["epoch"] >= 0,
        "global_step": isinstance(ckpt.get("global_step"), int) and ckpt["global_step"] >= 0,
    }
    bad = next((key for key, ok in problems.items() if not ok), None)
    if bad is not None:
        raise CheckpointError(
            f"ckpt_path={path}: its training state `{bad}` is malformed ({type(ckpt.get(bad)).__name__}); "
            "it cannot be resumed"
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
