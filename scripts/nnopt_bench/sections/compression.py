"""Section 5: dense, pruned, QAT and pruned+QAT models through `compression=...`, as ratios to dense."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nnopt.config import CONFIG_DIR
from nnopt.metrics import summary as S
from nnopt_bench.config import COMPRESSION_MODELS, COMPRESSION_VARIANTS, HAN_2015, TARGETS
from nnopt_bench.results import error_record
from nnopt_bench.runner import Bench


def compression(b: Bench) -> dict[str, Any]:
    """dense / pruned / QAT / prune+QAT per model through `compression=...`, ratios to dense."""
    conf = Path(CONFIG_DIR) / "compression"
    out: dict[str, Any] = {"han_2015": HAN_2015, "epochs": b.mode.compression_epochs}
    missing = [v for v, o in COMPRESSION_VARIANTS.items() if not (conf / f"{o[0].split('=')[1]}.yaml").is_file()]
    out["available"] = not missing
    if missing:
        out["note"] = f"not available: conf/compression has no {', '.join(missing)} option(s)"
        return out
    keys = (S.TEST_ACC, S.SPARSITY, S.SIZE_BYTES, S.SIZE_BYTES_GZIP, S.LATENCY_B1, S.LATENCY_B256, S.PARAMS)
    for model in b.mode.compression_models:
        rows: dict[str, Any] = {}
        for variant, overrides in COMPRESSION_VARIANTS.items():
            try:
                res = b.nnopt(
                    [*COMPRESSION_MODELS[model], *overrides, *b.limit(), "efficiency.latency_repeats=50"],
                    b.mode.compression_epochs,
                )
            except Exception as exc:  # one broken variant must not hide the others
                rows[variant] = error_record(exc)
                continue
            rows[variant] = {k: res["summary"].get(k) for k in keys}
            rows[variant]["train_s"] = sum(e["train_s"] for e in res["epochs"])
        dense = rows.get("dense", {})
        for variant, row in rows.items():
            if "error" in row or "error" in dense or variant == "dense":
                continue
            for k, short in (
                (S.SIZE_BYTES, "size"),
                (S.SIZE_BYTES_GZIP, "size_gzip"),
                (S.LATENCY_B1, "latency_b1"),
                (S.LATENCY_B256, "latency_b256"),
            ):
                row[f"{short}_ratio"] = row[k] / dense[k] if row.get(k) and dense.get(k) else None
            if row.get(S.TEST_ACC) is not None and dense.get(S.TEST_ACC) is not None:
                row["acc_drop_pt"] = (dense[S.TEST_ACC] - row[S.TEST_ACC]) * 100
            row["meets_target"] = compression_target_met(variant, row)
        out[model] = rows
    return out


def compression_target_met(variant: str, row: dict[str, Any]) -> bool | None:
    """Whether a variant meets its TARGETS (None without an accuracy drop to judge)."""
    drop = row.get("acc_drop_pt")
    if drop is None:
        return None
    # model/sparsity counts the (unpruned) biases too: ~0.2 % of these models' parameters
    prune_ok = (row.get(S.SPARSITY) or 0) >= TARGETS["prune_sparsity_min"] - 0.005
    int8_ok = (row.get("size_ratio") or 1) <= TARGETS["int8_size_ratio_max"] and (
        row.get("latency_b256_ratio") or 1
    ) <= TARGETS["int8_latency_b256_ratio_max"]
    if variant == "prune":
        return prune_ok and drop <= TARGETS["prune_acc_drop_max_pt"]
    if variant == "qat":
        return int8_ok and drop <= TARGETS["int8_acc_drop_max_pt"]
    return prune_ok and int8_ok and drop <= TARGETS["prune_acc_drop_max_pt"]
