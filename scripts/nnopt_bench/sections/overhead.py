"""Section 1 and the headline: nnopt's full default path (and with fused steps) against the bare loop run
beside it in the same process."""

from __future__ import annotations

from typing import Any

from nnopt_bench.config import FUSED_STEPS, OVERHEAD_TARGETS
from nnopt_bench.results import measured, ratio, stats
from nnopt_bench.runner import Bench


def overhead(b: Bench, key: str) -> dict[str, Any]:
    """nnopt's full default path, and the same with `trainer.fused_steps`, each with the bare loop run beside it
    (a bare epoch right before every nnopt epoch and one after the last, in the same process: EpochTimer's
    `bare_beside`); the two nnopt variants alternate (rotating order). Checked against OVERHEAD_TARGETS[key] on the
    median of the per-epoch ratios nnopt / the mean of the bare epochs just before and just after it (bracketed):
    the machine's drift between minutes cancels out of each pair, a steady drift within it too. The ratio to the
    bare epoch before only (paired) is kept beside it, and the bare epoch after / before as an A/A check."""
    target = OVERHEAD_TARGETS[key]
    model, cap = target["overrides"], target.get("max_batches")
    cfg, dm = b.data_and_net(model)
    variants = {"nnopt": [], "fused": [f"trainer.fused_steps={FUSED_STEPS}"]}
    epochs: dict[str, list[dict[str, Any]]] = {k: [] for k in variants}  # measured epochs, each with its "bare"
    walls, threads = [], set()
    names = list(variants)
    reps = b.mode.reps * target.get("reps_factor", 1)
    n_epochs = target.get("epochs", b.mode.epochs) if b.mode.name == "full" else b.mode.epochs
    for rep in range(reps):
        for which in names[rep % len(names) :] + names[: rep % len(names)]:
            res = b.nnopt([*model, *b.limit(cap), *variants[which]], n_epochs, bare_beside=True, max_batches=cap)
            epochs[which] += measured(res["epochs"])
            threads.add(res["threads"])
            if which == "nnopt":
                walls.append(res["wall_s"])
    out: dict[str, Any] = {
        "model": " ".join(model),
        "steps_per_epoch": b.steps_per_epoch(dm, cap),
        "batch_size": dm.batch_size,
        "optimizer": cfg.optimizer._target_,
        "nnopt_threads": sorted(threads),
        "fused_steps": FUSED_STEPS,
        "repetitions": reps,
        "epochs_per_repetition": n_epochs,
        "pairing": "bare epochs right before and right after each nnopt epoch, same process",
    }
    bare_epochs = [e["bare"] for which in variants for e in epochs[which]]
    for key in ("train_s", "epoch_s", "train_cpu_s"):
        out[f"bare_{key}"] = stats([e[key] for e in bare_epochs])
        for which in variants:
            out[f"{which}_{key}"] = stats([e[key] for e in epochs[which]])
    for prefix, which in (("", "nnopt"), ("fused_", "fused")):
        # the ratio of the pooled medians, and the medians of the per-epoch ratios to the bare epoch before (paired)
        # and to the mean of the bare epochs before and after (bracketed)
        out[f"{prefix}overhead_ratio"] = ratio(out[f"{which}_train_s"], out["bare_train_s"])
        out[f"{prefix}cpu_overhead_ratio"] = ratio(out[f"{which}_train_cpu_s"], out["bare_train_cpu_s"])
        for clock, suffix in (("train_s", "ratio"), ("train_cpu_s", "cpu_ratio")):
            out[f"{prefix}paired_{suffix}"] = stats([e[clock] / e["bare"][clock] for e in epochs[which]])
            out[f"{prefix}bracketed_{suffix}"] = stats(
                [2 * e[clock] / (e["bare"][clock] + e["bare_after"][clock]) for e in epochs[which]]
            )
        out[f"{prefix}overhead_ms_per_step"] = (
            (out[f"{which}_train_s"]["median"] - out["bare_train_s"]["median"]) / out["steps_per_epoch"] * 1e3
        )
    # an A/A check of the pairing: the bare epoch after an nnopt epoch / the one before it (1 without drift or bias)
    out["bare_after_over_before_cpu"] = stats(
        [e["bare_after"]["train_cpu_s"] / e["bare"]["train_cpu_s"] for which in variants for e in epochs[which]]
    )
    out["overhead_ratio_with_validation"] = ratio(out["nnopt_epoch_s"], out["bare_epoch_s"])
    out["nnopt_run_wall_s"] = stats(walls)
    out["target_max"], out["target_goal"] = target["max"], target["goal"]
    out["judged_on"] = "cpu" if b.threads == 1 else "wall"  # CPU time measures the work only with 1 thread
    for prefix in ("", "fused_"):
        r = out[f"{prefix}bracketed_{'cpu_' if out['judged_on'] == 'cpu' else ''}ratio"]["median"]
        out[f"{prefix}judged_ratio"] = r
        out[f"{prefix}meets_target"] = r <= target["max"]
        out[f"{prefix}meets_goal"] = r <= target["goal"] if target["goal"] else None
    return out
