"""Knowledge distillation (Hinton et al. 2015) and fine-tuning from a checkpoint (transfer learning).

Both load an nnopt checkpoint with `pipeline.load_checkpoint` (weights_only) and rebuild its network from the
checkpoint's own config. The teacher is kept on the callback, not on the LightningModule: a registered
submodule would be trained by nothing but still saved into every student checkpoint.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from nnopt.errors import CheckpointError, ConfigError
from nnopt.lit import CONFIG_KEY

DISTILL_TERM = "distill"


def load_net(ckpt_path: str, dm: Any, what: str) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The network stored in an nnopt checkpoint, rebuilt for the data module `dm`, and its weights."""
    from nnopt import build, pipeline  # late: build imports the LightningModule and the callbacks' users

    ckpt = pipeline.load_checkpoint(ckpt_path, f"compression.{what}")
    saved = OmegaConf.create(ckpt[CONFIG_KEY])
    in_shape, num_classes = dm.input_shape, dm.num_classes
    data_name = (saved.get("data") or {}).get("name")
    if what == "teacher_ckpt" and data_name != dm.name:
        raise CheckpointError(
            f"compression.{what}={ckpt_path} was trained on data.name={data_name}, this run uses {dm.name}"
        )
    try:
        net = build.build_net(saved, in_shape, num_classes)
    except Exception as exc:  # noqa: BLE001 - any failure here means the checkpoint does not fit this data
        raise CheckpointError(
            f"compression.{what}={ckpt_path} does not fit this data (inputs {tuple(in_shape)}, {num_classes} "
            f"classes): {str(exc).splitlines()[0][:150]}"
        ) from None
    state = {k[len("net.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    return net, state


class Distillation(pl.Callback):
    """Adds `weight * T^2 * KL(softmax(teacher/T) || softmax(student/T))` to the loss; cross-entropy gets
    `1 - weight`. The teacher is frozen, in eval mode, and never part of the student's checkpoint."""

    def __init__(self, teacher_ckpt: str | None, temperature: float = 4.0, weight: float = 0.9) -> None:
        if not teacher_ckpt:
            raise ConfigError("compression=distill needs a teacher: compression.teacher_ckpt=<path/to/teacher.ckpt>")
        if not isinstance(temperature, (int, float)) or temperature <= 0:
            raise ConfigError(f"compression.temperature={temperature!r} must be a number > 0")
        if not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
            raise ConfigError(f"compression.weight={weight!r} must be a number in [0, 1]")
        from nnopt import pipeline

        pipeline.load_checkpoint(teacher_ckpt, "compression.teacher_ckpt")  # fail now, before anything is built
        self.teacher_ckpt = str(teacher_ckpt)
        self.temperature = float(temperature)
        self.weight = float(weight)
        self.teacher: nn.Module | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or self.teacher is not None:
            return
        teacher, state = load_net(self.teacher_ckpt, trainer.datamodule, "teacher_ckpt")
        try:
            teacher.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(
                f"compression.teacher_ckpt={self.teacher_ckpt}: weights do not fit this data "
                f"({str(exc).splitlines()[0][:150]})"
            ) from None
        teacher.eval().requires_grad_(False)
        self.teacher = teacher.to(pl_module.device)
        pl_module.ce_weight = 1.0 - self.weight
        pl_module.loss_terms[DISTILL_TERM] = self.loss

    def loss(self, module: pl.LightningModule, x: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.teacher.training:  # Lightning's train()/eval() never reach it (not a submodule); be certain
            self.teacher.eval()
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        t = self.temperature
        kl = F.kl_div(F.log_softmax(logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                      reduction="batchmean", log_target=True)  # fmt: skip
        return self.weight * t * t * kl


class FineTune(pl.Callback):
    """Start from a checkpoint's weights (transfer learning). Tensors whose shape differs (e.g. a new output
    layer for another number of classes) keep their fresh initialisation. `freeze_backbone` trains only the
    model's `classifier` (the feature extractor is frozen and kept in eval mode, BN statistics included)."""

    def __init__(self, ckpt: str | None, freeze_backbone: bool = False) -> None:
        if not ckpt:
            raise ConfigError("compression=finetune needs a checkpoint: compression.ckpt=<path/to/model.ckpt>")
        from nnopt import pipeline

        pipeline.load_checkpoint(ckpt, "compression.ckpt")
        self.ckpt = str(ckpt)
        self.freeze_backbone = bool(freeze_backbone)
        self.loaded: list[str] = []
        self.done = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if self.freeze_backbone:
            self._backbone(pl_module).requires_grad_(False)  # before configure_optimizers picks trainables
        if self.done or trainer.ckpt_path:  # resuming: the run's own checkpoint has the weights
            return
        _, state = load_net(self.ckpt, trainer.datamodule, "ckpt")
        own = pl_module.net.state_dict()
        fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        if not any(k in fitting for k in own if not k.startswith("classifier")):
            raise CheckpointError(f"compression.ckpt={self.ckpt}: no backbone weight fits this model")
        pl_module.net.load_state_dict(fitting, strict=False)
        self.loaded = sorted(fitting)
        self.done = True

    def _backbone(self, pl_module: pl.LightningModule) -> nn.Module:
        backbone = getattr(pl_module.net, "features", None)
        if backbone is None:
            raise ConfigError("compression.freeze_backbone=true needs a model with a `features` part")
        return backbone

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.freeze_backbone:
            self._backbone(pl_module).eval()

    def state_dict(self) -> dict[str, Any]:
        return {"done": self.done}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.done = bool(state_dict.get("done", False))
