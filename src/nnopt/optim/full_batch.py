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
    trainer = cfg.get("trainer") or {}
    if str(opt.get("_target_", "")).endswith("LBFGS"):
        strategy = str(trainer.get("strategy") or "")
        devices, nodes = trainer.get("devices"), trainer.get("num_nodes") or 1
        several = (isinstance(devices, int) and devices > 1) or (
            isinstance(devices, (list, tuple)) and len(devices) > 1
        )
        if "ddp" in strategy or "fsdp" in strategy or several or nodes > 1:
            raise ConfigError(
                f"optimizer={name} cannot train on several processes (trainer.strategy={strategy or None}, "
                f"devices={devices}, num_nodes={nodes}): each rank's line search evaluates the closure a different "
                "number of times and the ranks wait for each other forever; use one device, or optimizer=gd"
            )
        steps = trainer.get("fused_steps") or 1
        if steps not in (1, "auto"):
            raise ConfigError(
                f"trainer.fused_steps={steps} cannot run optimizer={name}: L-BFGS re-evaluates the loss through "
                "Lightning's closure, which fused steps do not provide; use trainer.fused_steps=1"
            )
