"""The measuring sections: each takes the `Bench` and returns a JSON-ready dict of figures (no text).

`run` measures the selected ones in `config.SECTIONS` order; a section that fails is recorded as
`{"error": ...}` and the others go on.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from nnopt_bench.config import OVERHEAD_TARGETS, SECTIONS
from nnopt_bench.results import error_record
from nnopt_bench.runner import Bench
from nnopt_bench.sections.accuracy import time_to_accuracy
from nnopt_bench.sections.breakdown import breakdown
from nnopt_bench.sections.compression import compression
from nnopt_bench.sections.data_path import data_path
from nnopt_bench.sections.overhead import overhead
from nnopt_bench.sections.startup import startup
from nnopt_bench.sections.sweep import gpu_scaling, sweep

#: the `--only` group of the sections that are not their own: the overhead targets and the breakdown
GROUP_OF = {**{key: "overhead" for key in OVERHEAD_TARGETS}, "breakdown": "overhead"}


def measures(b: Bench) -> dict[str, Callable[[], dict[str, Any]]]:
    """Each section's name -> the call that measures it."""
    calls: dict[str, Callable[[], dict[str, Any]]] = {
        **{key: (lambda key=key: overhead(b, key)) for key in OVERHEAD_TARGETS},
        "breakdown": lambda: breakdown(b, ["model=mlp"]),
        "data_path": lambda: data_path(b),
        "startup": lambda: startup(b),
        "time_to_accuracy": lambda: time_to_accuracy(b),
        "compression": lambda: compression(b),
        "sweep": lambda: sweep(b),
    }
    assert tuple(calls) == SECTIONS
    return calls


def run(b: Bench, only: list[str] | None) -> dict[str, Any]:
    """Measure the sections of the `only` groups (all when None), each with its duration and load average
    (1 min) at start and end; then `gpu_scaling`."""
    results: dict[str, Any] = {}
    for name, measure in measures(b).items():
        if only is not None and GROUP_OF.get(name, name) not in only:
            continue
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        t0, load0 = time.perf_counter(), os.getloadavg()
        try:
            results[name] = measure()
        except Exception as exc:  # report the failure in the table, go on with the other sections
            traceback.print_exc()
            results[name] = error_record(exc)
        results[name]["section_s"] = time.perf_counter() - t0
        results[name]["load_avg_1m"] = [round(load0[0], 2), round(os.getloadavg()[0], 2)]
    results["gpu_scaling"] = gpu_scaling()
    return results
