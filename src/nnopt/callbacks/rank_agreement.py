"""Under DDP, all ranks must run one configuration."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import pytorch_lightning as pl
import torch
from typing_extensions import override

log = logging.getLogger("nnopt")


def config_digest(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


class RankAgreement(pl.Callback):
    """Every rank checks at setup that all ranks run the same configuration (the module's `run_config`).

    DDP itself never notices ranks training different configs in one process group (it happened with Lightning's
    default relaunch inside a Hydra multirun): they would silently average unrelated gradients.

    Raises:
        RuntimeError: on every rank, when the ranks' config digests differ.
    """

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.world_size < 2:
            return
        digest = config_digest(getattr(pl_module, "run_config", {}) or {})
        gathered: list[str | None] = [None] * trainer.world_size
        torch.distributed.all_gather_object(gathered, digest)  # every rank sees every digest: all fail alike
        log.info(
            "rank %d of %d: config %s (%s)",
            trainer.global_rank,
            trainer.world_size,
            digest,
            getattr(stage, "value", stage),
        )
        if len(set(gathered)) != 1:
            raise RuntimeError(
                f"DDP ranks run different configurations (rank {trainer.global_rank}: {digest}); "
                "each rank must be started with the same overrides"
            )
