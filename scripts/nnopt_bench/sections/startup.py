"""Section 3: seconds from the command to the first training step, in cold subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from nnopt_bench import ROOT
from nnopt_bench.results import stats
from nnopt_bench.runner import FIRST_STEP, Bench, subprocess_env

#: start-up measurements: name -> (nnopt-train overrides, what is timed)
STARTUP_JOBS = {
    "default_job": (["trainer.max_epochs=1"], "`nnopt-train` (the default job: digits, MLP): command -> first step"),
    "fashion_mnist": (
        ["data=fashion_mnist", "trainer.max_epochs=1", "trainer.limit_train_batches=5"],
        "`nnopt-train data=fashion_mnist`: command -> first step (includes decoding the IDX files)",
    ),
    "debug_fast": (["debug=fast"], "`nnopt-train debug=fast`: end to end"),
}


def startup(b: Bench) -> dict[str, Any]:
    """Seconds from the command to the first training step (a callback stamps it), and `debug=fast` end to end;
    cold subprocesses, alternated; with `python -c "import torch"` / `import pytorch_lightning` as the floor."""
    env = subprocess_env(b.threads)  # scripts/ on PYTHONPATH: the run instantiates FirstStepStamp
    floors = {"import_torch": "import torch", "import_lightning": "import pytorch_lightning"}
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in [*floors, *STARTUP_JOBS]}
    jobs = [k for k in STARTUP_JOBS if k != "fashion_mnist" or "data=fashion_mnist" in b.mode.data]
    runs = {k: v for k, v in runs.items() if k in floors or k in jobs}
    names = list(runs)
    for rep in range(b.mode.reps):
        for which in names[rep % len(names) :] + names[: rep % len(names)]:
            t0 = time.time()
            if which in floors:
                subprocess.run([sys.executable, "-c", floors[which]], env=env, check=True, timeout=600)
                runs[which].append({"wall_s": time.time() - t0})
                continue
            stamp = b.work / f"startup_{which}_{rep}.json"
            overrides, _ = STARTUP_JOBS[which]
            cmd = [
                sys.executable,
                "-m",
                "nnopt.train",
                *overrides,
                f"paths.log_dir={b.work / 'startup_logs'}",
                f"+callbacks.first_step._target_={FIRST_STEP}",
                f"+callbacks.first_step.path={stamp}",
            ]
            proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800)
            wall = time.time() - t0
            if proc.returncode != 0 or not stamp.is_file():
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                raise RuntimeError(f"startup run {which} failed (exit {proc.returncode}): {tail}")
            rec = json.loads(stamp.read_text())
            runs[which].append(
                {
                    "wall_s": wall,
                    "to_first_step_s": rec["first_step_unix"] - t0,
                    "interpreter_to_first_step_s": rec["first_step_unix"] - rec["process_start_unix"]
                    if rec.get("process_start_unix")
                    else None,
                }
            )
    out: dict[str, Any] = {}
    for name, recs in runs.items():
        row: dict[str, Any] = {"wall_s": stats([r["wall_s"] for r in recs])}
        if name in STARTUP_JOBS:
            row["what"] = STARTUP_JOBS[name][1]
            row["command"] = "nnopt-train " + " ".join(STARTUP_JOBS[name][0])
            row["to_first_step_s"] = stats([r["to_first_step_s"] for r in recs])
        else:
            row["what"] = f'`python -c "{floors[name]}"`'
        out[name] = row
    return out
