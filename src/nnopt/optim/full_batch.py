"""Checks for the full-batch optimizers (optimizer=gd, optimizer=lbfgs), before anything is built.

Every schedule composes with both (per-step schedules see one step per epoch; L-BFGS's line search scales the
scheduled lr); what cannot work is refused here with one line.
"""

from __future__ import annotations

from typing import Any

from nnopt.errors import ConfigError


def check(cfg: Any) -> None:
    """Raise ConfigError for optimizer settings Lightning cannot run."""
    opt = cfg.get("optimizer") or {}
    name = opt.get("name") or str(opt.get("_target_", "")).rpartition(".")[2]
    precision = str((cfg.get("trainer") or {}).get("precision", ""))
    if str(opt.get("_target_", "")).endswith("LBFGS") and precision.startswith("16"):
        raise ConfigError(
            f"optimizer={name} cannot train with trainer.precision={precision}: the fp16 gradient scaler does not "
            "support L-BFGS's closure; use trainer.precision=32-true or bf16-mixed"
        )
    accumulate = (cfg.get("trainer") or {}).get("accumulate_grad_batches") or 1
    if opt.get("full_batch") and accumulate > 1:
        raise ConfigError(
            f"trainer.accumulate_grad_batches={accumulate} does nothing with optimizer={name}: its batch is already "
            "the whole training split; leave it at 1"
        )
