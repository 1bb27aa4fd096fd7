#!/usr/bin/env python
"""`make bench`: nnopt against a bare PyTorch loop, a per-sample data path, and the compression targets.

Writes `<out>/results.json` (every ratio under a self-explaining key, e.g. `mlp.overhead_ratio`) and
`<out>/RESULTS.md`, rendered from that file. Only figures measured in the same run are put into ratios. Variants
that are compared run alternately within one process, on the same data, model, optimizer, batch size and thread
count (1 per process by default: on a shared machine more threads than free cores makes small models 10-40x
slower and the ratios meaningless); figures are medians with min-max over repetitions (first epoch of each
repetition dropped as warm-up). The load average is recorded per section.

    python scripts/bench.py            # full run (~40 min on 2 CPU cores)
    python scripts/bench.py --quick    # ~3 min check on Fashion-MNIST, few batches
    python scripts/bench.py --smoke    # seconds, on the bundled digits: checks the wiring (tests)
    python scripts/bench.py --only data_path --template-dir ~/lightning-hydra-template  # + the template, live
    python scripts/bench.py --render-only  # bench/RESULTS.md again from bench/results.json, nothing measured

The code is the `nnopt_bench` package beside this file (outside `nnopt`, which runs import); this entry only
puts it on the path.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # Python puts it there when it runs this file; not when another module imports it
    sys.path.insert(0, HERE)

from nnopt_bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
