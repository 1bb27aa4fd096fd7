"""Fine-tuning from a checkpoint's weights (transfer learning)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from torch import nn
from typing_extensions import override

from nnopt import checkpoint
from nnopt.errors import CheckpointError, ConfigError
from nnopt.tasks import rebuild

CKPT_KEY = "compression.ckpt"


class FineTune(pl.Callback):
    """Start from a checkpoint's weights. Tensors whose shape differs (e.g. a new output layer for another number of
    classes) keep their fresh initialisation. `freeze_backbone` trains only the model's `classifier` (the feature
    extractor is frozen and kept in eval mode, BN statistics included).

    Args:
        ckpt: an nnopt checkpoint; its network is rebuilt from its own config (only targets the user chose).
        freeze_backbone: train only `net.classifier` (needs a model with a `features` part).

    Raises:
        ConfigError: no checkpoint, or `freeze_backbone` on a model without `features`.
        CheckpointError: unreadable checkpoint, or no backbone weight fits this model.
    """

    def __init__(self, ckpt: str | None, freeze_backbone: bool = False) -> None:
        if not ckpt:
            raise ConfigError("compression=finetune needs a checkpoint: compression.ckpt=<path/to/model.ckpt>")
        # fail now, before anything is built (also a file naming foreign code: nnopt.tasks.rebuild.read)
        rebuild.read(ckpt, CKPT_KEY)
        self.ckpt = str(ckpt)
        self.freeze_backbone = bool(freeze_backbone)
        self.loaded: list[str] = []
        self.done = False

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if self.freeze_backbone:
            self._backbone(pl_module).requires_grad_(False)  # before configure_optimizers picks trainables
        if self.done or trainer.ckpt_path:  # resuming: the run's own checkpoint has the weights
            return
        source = rebuild.from_checkpoint(self.ckpt, CKPT_KEY, shapes=trainer.datamodule, weights=False)
        state = checkpoint.net_state(source.ckpt["state_dict"])
        own = pl_module.net.state_dict()
        fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        if not any(k in fitting for k in own if not k.startswith("classifier")):
            raise CheckpointError(f"{CKPT_KEY}={self.ckpt}: no backbone weight fits this model")
        pl_module.net.load_state_dict(fitting, strict=False)
        self.loaded = sorted(fitting)
        self.done = True

    def _backbone(self, pl_module: pl.LightningModule) -> nn.Module:
        backbone = getattr(pl_module.net, "features", None)
        if backbone is None:
            raise ConfigError("compression.freeze_backbone=true needs a model with a `features` part")
        return backbone

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.freeze_backbone:
            self._backbone(pl_module).eval()

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"done": self.done}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.done = bool(state_dict.get("done", False))
