"""Config handling: where nnopt's config tree lives, resolvers, typed schemas and validation.

The tree is the top-level `conf/` of the checkout; the wheel ships it as the package `nnopt.conf`
(src/nnopt/conf links to it), so the same lookup works editable, installed, and from any directory.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

#: the package holding train.yaml, eval.yaml and the config groups
CONFIG_MODULE = "nnopt.conf"
#: Hydra's name for it: usable in your own `hydra.searchpath` to build on nnopt's groups
CONFIG_SEARCHPATH = f"pkg://{CONFIG_MODULE}"


def config_dir() -> str:
    """The config tree as a directory (an installed wheel and a checkout both keep it as plain files)."""
    try:
        return str(Path(str(files(CONFIG_MODULE))).resolve())
    except ModuleNotFoundError:  # a checkout without the src/nnopt/conf link (e.g. no symlinks on the file system)
        return str(Path(__file__).resolve().parents[3] / "conf")


#: absolute path of the config tree (what `@hydra.main(config_path=...)` and `initialize_config_dir` take)
CONFIG_DIR = config_dir()
