"""Config handling: resolvers, typed schemas and validation."""

from pathlib import Path

#: conf/ of the checkout (the package is installed editable from it).
CONFIG_DIR = str(Path(__file__).resolve().parents[3] / "conf")
