"""A tiny Hydra app for sweeper tests (no torch): `python tests/sweep/toy_study.py -m hydra.sweeper.storage=...`.

Each job sleeps `sleep` seconds (`slow` for job 0), writes `<out>/<job>.<pid>.json` with its params, start and end
times and returns a summary like nnopt's (status + `score`)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig


@dataclass
class Toy:
    defaults: list[Any] = field(default_factory=lambda: ["_self_", {"override hydra/sweeper": "nnopt_optuna"}])
    x: float = 0.0
    y: float = 0.0
    sleep: float = 0.2
    slow: float = 0.2  # job 0 sleeps this long instead
    out: str = "."
    fail_x_below: float = -1.0  # a job with x below this raises (a failed trial)


ConfigStore.instance().store(name="toy", node=Toy)


@hydra.main(version_base="1.3", config_path=None, config_name="toy")
def main(cfg: Any) -> dict[str, Any]:
    start = time.time()
    num = HydraConfig.get().job.num
    time.sleep(cfg.slow if num == 0 else cfg.sleep)
    if cfg.x < cfg.fail_x_below:
        raise RuntimeError("toy failure")
    record = {"num": num, "x": cfg.x, "y": cfg.y, "pid": os.getpid(), "start": start, "end": time.time()}
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    (Path(cfg.out) / f"{num}.{os.getpid()}.json").write_text(json.dumps(record))
    return {"status": "completed", "score": -((cfg.x - 0.3) ** 2) - (cfg.y - 0.6) ** 2}


if __name__ == "__main__":
    main()
