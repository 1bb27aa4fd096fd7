"""The run dir is the user's: checked before Hydra creates or writes anything in it (a Hydra callback).

- `task_name` and the run stamp become path components of `hydra.run.dir`/`hydra.sweep.dir`: each must be one plain
  name, so no value can place a run outside `paths.log_dir` (`task_name=../../x`, `/etc`, ...).
- A directory name must not carry a secret (`task_name=${oc.env:MY_API_KEY}`): see :mod:`nnopt.secrets`.
- A dir that already holds a run (summary.json, checkpoints) is only re-entered with `resume=true`; an inherited
  `NNOPT_RUN_STAMP` would otherwise silently reuse another run's dir.
- Whether the dir existed before this run is recorded: a run rejected for bad input removes only a dir it created
  (:meth:`nnopt.pipeline.RunRecorder`), never one the user had.

Bad values end with one line and exit 2 before anything is created.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from nnopt.config.resolvers import STAMP_ENV
from nnopt.errors import ConfigError

#: files that mark a dir as holding a run (besides checkpoints/*.ckpt and requeue checkpoints)
RUN_MARKERS = ("summary.json", "multirun.yaml")
#: run dir -> its entries before Hydra created/wrote it (None: it did not exist)
_before: dict[str, set[str] | None] = {}
#: parents of a run dir that did not exist either (Hydra creates them with it)
_new_parents: set[str] = set()
#: run dir holding an earlier run -> the bytes of every file in it before Hydra rewrote any (None: a directory)
_kept: dict[str, dict[str, bytes | None]] = {}
#: what a resumed run rewrites before nnopt's checks run (Hydra's config copies, its job log): a file of up to this size
#: is kept so a refused resume can put it back
_KEEP_MAX_BYTES = 64 << 20


def _key(path: str | Path) -> str:
    return os.path.abspath(str(path))


def removable(folder: Path, allowed: set[str]) -> list[Path]:
    """What a run rejected for bad input may remove from its run dir: the dir itself if this run created it and it
    holds only `allowed` names, else the `allowed` entries this run added; nothing when unknown or anything else."""
    key = _key(folder)
    if key not in _before or not folder.is_dir():
        return []
    before = _before[key]
    added = [folder] if before is None else [p for p in folder.iterdir() if p.name not in before]
    inside = list(folder.iterdir()) if before is None else added
    if any(p.name not in allowed for p in inside):
        return []
    if before is None:  # also the parents this run created (logs/eval/runs), while they hold nothing else
        top = folder
        for parent in folder.parents:
            if _key(parent) not in _new_parents or [p.name for p in parent.iterdir()] != [top.name]:
                break
            top = parent
        return [top]
    return added


def holds_run(folder: Path) -> str | None:
    """What in `folder` shows an earlier run (a file name), or None."""
    if not folder.is_dir():
        return None
    for name in RUN_MARKERS:
        if (folder / name).is_file():
            return name
    found = next(iter(sorted(folder.glob("checkpoints/*.ckpt"))), None) or next(folder.glob("hpc_ckpt_*.ckpt"), None)
    if found is not None:
        return str(found.relative_to(folder))
    found = next(iter(sorted(folder.glob("*/summary.json"))), None)  # a sweep dir: its jobs' summaries
    return str(found.relative_to(folder)) if found is not None else None


#: config keys whose value becomes a directory name of the run dir (each checked by :func:`check_component`)
COMPONENT_KEYS = ("task_name",)
#: longest directory name a run dir component may be (characters; and at most NAME_MAX=255 bytes as UTF-8)
MAX_COMPONENT = 200


def check_component(key: str, value: Any) -> None:
    """`value` becomes one directory name of the run dir: a plain name, nothing that climbs or starts over, short
    enough for the file system (a longer one would end in ENAMETOOLONG)."""
    from nnopt.errors import fail

    text = str(value)
    size = len(text.encode("utf-8", "surrogateescape"))
    shown = repr(text) if len(text) <= MAX_COMPONENT else f"{text[:40]!r}... ({len(text)} characters)"
    bad = not text or text in (".", "..") or any(c in text for c in "/\\\0") or len(text) > MAX_COMPONENT
    if bad or size > 255:
        fail(
            f"{key}={shown} is not allowed; allowed: a plain name of at most {MAX_COMPONENT} characters "
            "(255 bytes) without '/', '\\' or '..' (it becomes a directory under paths.log_dir)"
        )


def check_subdir_secrets(config: DictConfig) -> None:
    """A sweep job's subdir (`hydra.sweep.subdir`) is made by Hydra before any job code runs: a secret-named
    variable's value must not reach it, whether the template names it or a `task_name` it uses does (swept values
    included)."""
    from nnopt import secrets
    from nnopt.errors import fail

    hydra_raw = OmegaConf.to_container(config.hydra, resolve=False)
    template = str((hydra_raw.get("sweep") or {}).get("subdir") or "")
    if not template:
        return
    probe = copy.deepcopy(config)
    OmegaConf.set_struct(probe, False)
    with open_dict(probe.hydra):
        probe.hydra.job.num = 0
        probe.hydra.job.id = "0"
    resolved = str(OmegaConf.select(probe, "hydra.sweep.subdir", throw_on_resolution_failure=False) or "")
    leaked = secrets.leaked_in(resolved)
    if leaked is None and "${task_name}" in template:  # a swept task_name=${oc.env:...} is not in this config
        for override in hydra_raw.get("overrides", {}).get("task") or []:
            key, _, value = str(override).partition("=")
            if key.lstrip("+~") == "task_name":
                leaked = next((n for n in secrets.secret_env() if f"oc.env:{n}" in value.replace(" ", "")), None)
                leaked = leaked or secrets.leaked_in(value)
                if leaked:
                    break
    if leaked:
        fail(f"hydra.sweep.subdir would put the value of ${leaked} into a directory name; use a name that is no secret")


def _stamp_note() -> str:
    stamp = os.environ.get(STAMP_ENV)
    return f" ({STAMP_ENV}={stamp} is set in the environment: unset it for a new run dir)" if stamp else ""


def check_dir(key: str, folder: Path, log_dir: Path | None, config: DictConfig) -> None:
    from nnopt import secrets
    from nnopt.errors import fail

    leaked = secrets.leaked_in(str(folder))
    if leaked:
        fail(f"{key} would put the value of ${leaked} into a directory name; use a name that is not a secret")
    if log_dir is not None and not folder.resolve().is_relative_to(log_dir.resolve()):
        fail(f"{key}={folder} is outside paths.log_dir={log_dir}; allowed: a dir under paths.log_dir")
    found = holds_run(folder)
    if found is not None and not config.get("resume"):
        fail(
            f"{key}={folder} already holds a run ({found}); nothing was changed: continue it with resume=true "
            f"or choose another dir{_stamp_note()}"
        )
    _before[_key(folder)] = {p.name for p in folder.iterdir()} if folder.is_dir() else None
    _new_parents.update(_key(p) for p in folder.parents if not p.exists())
    if found is not None:  # resume=true into a dir with a run: a refused resume must leave it byte-identical
        _kept[_key(folder)] = _keep(folder)


def _keep(folder: Path) -> dict[str, bytes | None]:
    """The files Hydra and nnopt may rewrite before a resume is refused: everything but checkpoints and big files."""
    kept: dict[str, bytes | None] = {}
    for path in folder.rglob("*"):
        rel = str(path.relative_to(folder))
        if path.is_dir():
            kept[rel] = None
        elif path.is_file() and path.suffix != ".ckpt" and path.stat().st_size <= _KEEP_MAX_BYTES:
            kept[rel] = path.read_bytes()
    return kept


def restore_refused(folder: Path) -> bool:
    """Put a run dir back as it was before this refused resume (files rewritten, files added); False when nothing
    was kept for it (a fresh dir, or not a single run's dir)."""
    kept = _kept.pop(_key(folder), None)
    if kept is None:
        return False
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        rel = str(path.relative_to(folder))
        if rel in kept or path.suffix == ".ckpt":
            continue
        if path.is_dir():
            if not any(str(q.relative_to(folder)) in kept for q in path.rglob("*")):
                shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    for rel, data in kept.items():
        if data is not None and (not (folder / rel).is_file() or (folder / rel).read_bytes() != data):
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)
    return True


def _checked(config: DictConfig, dir_key: str) -> None:
    if os.environ.get("LOCAL_RANK", "0") != "0":  # a DDP child re-enters its parent's dir
        return
    raw = str(OmegaConf.select(config, dir_key, throw_on_resolution_failure=False) or "")
    if not raw:
        return  # an unresolvable dir: Hydra names the problem
    template = str(OmegaConf.to_container(config.hydra, resolve=False)[dir_key.split(".")[1]]["dir"])
    for key in COMPONENT_KEYS:
        if f"${{{key}}}" in template:
            check_component(key, config.get(key))
    if "${run_stamp:}" in template and os.environ.get(STAMP_ENV):
        check_component(STAMP_ENV, os.environ[STAMP_ENV])
    if dir_key == "hydra.sweep.dir":
        check_subdir_secrets(config)
    log_dir = None
    if template.startswith("${paths.log_dir}"):
        log_dir = Path(str(config.paths.log_dir))
    check_dir(dir_key, Path(raw), log_dir, config)


class RunDirGuard(Callback):
    """Checks the run/sweep dir before Hydra creates it (see the module doc)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _checked(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _checked(config, "hydra.sweep.dir")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from nnopt import secrets

        secrets.install_log_filter()  # Hydra has just opened the job's log file


# -- before Hydra starts ------------------------------------------------------------------------------------
def uncreatable(path: Path) -> str | None:
    """Why `path` cannot be made a writable directory, or None; probes without leaving anything behind."""
    path = path.absolute()
    existing = path
    try:
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
    except OSError as exc:  # a component longer than the file system allows (ENAMETOOLONG), ...
        return exc.strerror or str(exc)
    if not existing.is_dir():
        return f"{existing} is not a directory"
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".nnopt-probe-"))
    except OSError as exc:
        return f"cannot create anything in {existing}: {exc.strerror or exc}"
    return None


def check_output_dir(cfg: DictConfig, multirun: bool) -> None:
    """Hydra creates the run (sweep) dir before nnopt's code runs: an uncreatable one would end in its traceback.

    The dir is resolved with a placeholder for `${run_stamp:}` (resolving it would fix this process's stamp);
    a dir that cannot be resolved before Hydra starts (`${hydra:...}`) is left to Hydra.
    """
    key = "sweep" if multirun else "run"
    try:
        raw = OmegaConf.to_container(cfg.hydra[key], resolve=False)["dir"]
        probe = copy.deepcopy(cfg)
        OmegaConf.set_struct(probe, False)
        probe.nnopt_probe_dir = str(raw).replace("${run_stamp:}", "stamp")
        where = Path(str(probe.nnopt_probe_dir))
    except Exception:  # noqa: BLE001 - not resolvable before Hydra runs: Hydra resolves and reports it
        return
    for name in COMPONENT_KEYS:  # the same check Hydra's callback makes later, before the probe can trip on it
        if f"${{{name}}}" in str(raw):
            check_component(name, cfg.get(name))
    problem = uncreatable(where)
    if problem:
        raise ConfigError(f"hydra.{key}.dir={where} cannot be created ({problem}); choose a writable directory")
