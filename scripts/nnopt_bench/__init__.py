"""The bench behind `scripts/bench.py`, kept outside the `nnopt` package so that no run imports bench code.

`cli` runs the `sections` (each measures and returns a JSON-ready dict, never text), `results` is the
results.json model, and `render` turns a results.json into RESULTS.md without measuring anything. `bare`,
`timers` and `template_timer` are the helpers the measured runs use.

The nnopt runs the bench starts name its callbacks by Hydra `_target_` (e.g. `nnopt_bench.timers.EpochTimer`),
so this package must be importable inside them: in-process runs find it because Python puts the folder of the
script it runs (`scripts/`) first on `sys.path`; subprocess runs get `SCRIPTS_DIR` prepended to PYTHONPATH by
`runner.subprocess_env`. Nothing in `src/` or `conf/` names this package.
"""

from __future__ import annotations

from pathlib import Path

#: the folder holding this package: what a run needs on its path to instantiate the bench's callbacks
SCRIPTS_DIR = Path(__file__).resolve().parent.parent
ROOT = SCRIPTS_DIR.parent
