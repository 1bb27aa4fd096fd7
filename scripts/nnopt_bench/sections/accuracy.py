"""Section 4: seconds of training until the test accuracy reaches the mode's target."""

from __future__ import annotations

from typing import Any

from nnopt_bench.runner import Bench


def time_to_accuracy(b: Bench) -> dict[str, Any]:
    """Seconds of training (validation included, test scoring excluded) until the test accuracy reaches the target."""
    recipe = [*b.mode.tta_recipe, "callbacks.early_stopping=null"]
    res = b.nnopt(recipe, b.mode.tta_max_epochs, target_acc=b.mode.tta_target)
    elapsed, reached_at = 0.0, None
    curve = []
    for i, e in enumerate(res["epochs"]):
        elapsed += e["epoch_s"]
        curve.append({"epoch": i + 1, "elapsed_s": elapsed, "test_acc": e["test_acc"]})
        if reached_at is None and e["test_acc"] >= b.mode.tta_target:
            reached_at = curve[-1]
    return {
        "recipe": " ".join([*b.mode.data, *b.mode.tta_recipe]),
        "target_test_acc": b.mode.tta_target,
        "reached": reached_at is not None,
        "seconds_to_target": reached_at["elapsed_s"] if reached_at else None,
        "epochs_to_target": reached_at["epoch"] if reached_at else None,
        "max_epochs": b.mode.tta_max_epochs,
        "run_wall_s": res["wall_s"],
        "curve": curve,
    }
