"""Strategy factories named by conf/trainer options (`_target_`), for what a plain string cannot express."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl


def fsdp_strategy(
    min_params: int = 100_000, sharding_strategy: str = "FULL_SHARD", cpu_offload: bool = False, **kwargs: Any
) -> pl.strategies.Strategy:
    """FSDP with size-based wrapping (our models are plain nn.Modules: no layer classes to name) and
    full-state checkpoints (one file, readable by nnopt-eval and resume)."""
    from functools import partial

    from pytorch_lightning.strategies import FSDPStrategy
    from torch.distributed.fsdp.wrap import size_based_auto_wrap_policy

    return FSDPStrategy(
        auto_wrap_policy=partial(size_based_auto_wrap_policy, min_num_params=min_params),
        sharding_strategy=sharding_strategy,
        cpu_offload=cpu_offload,
        state_dict_type="full",
        **kwargs,
    )
