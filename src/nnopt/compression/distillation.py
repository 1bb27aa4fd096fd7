"""Knowledge distillation (Hinton et al. 2015) from a teacher checkpoint.

The teacher is rebuilt from its checkpoint's own config (only targets the user chose: see
:func:`nnopt.checkpoint.trusted_config`) and kept on the callback, not on the LightningModule: a registered submodule
would be trained by nothing but still saved into every student checkpoint.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn
from typing_extensions import override

from nnopt.errors import CheckpointError, ConfigError, require
from nnopt.tasks import rebuild

DISTILL_TERM = "distill"
TEACHER_KEY = "compression.teacher_ckpt"


class Distillation(pl.Callback):
    """Adds `weight * T^2 * KL(softmax(teacher/T) || softmax(student/T))` to the loss (regression: `weight * MSE` to
    the teacher's outputs; T unused); the task's own loss gets `1 - weight`. The teacher is frozen, in eval mode,
    and never part of the student's checkpoint.

    Args:
        teacher_ckpt: an nnopt checkpoint of a model trained on the same data set.
        temperature: softening temperature T > 0.
        weight: share of the distillation term in [0, 1].

    Raises:
        ConfigError: no teacher, or an argument out of range.
        CheckpointError: the teacher checkpoint is unreadable, of another data set, or does not fit the data.
    """

    def __init__(self, teacher_ckpt: str | None, temperature: float = 4.0, weight: float = 0.9) -> None:
        if not teacher_ckpt:
            raise ConfigError("compression=distill needs a teacher: compression.teacher_ckpt=<path/to/teacher.ckpt>")
        number = isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
        require(number and temperature > 0, "compression.temperature", temperature, "a number > 0")
        number = isinstance(weight, (int, float)) and not isinstance(weight, bool)
        require(number and 0 <= weight <= 1, "compression.weight", weight, "a number in [0, 1]")
        # fail now, before anything is built (also a file naming foreign code: nnopt.tasks.rebuild.read)
        rebuild.read(teacher_ckpt, TEACHER_KEY)
        self.teacher_ckpt = str(teacher_ckpt)
        self.temperature = float(temperature)
        self.weight = float(weight)
        self.teacher: nn.Module | None = None

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or self.teacher is not None:
            return
        dm = trainer.datamodule
        ckpt, saved = rebuild.read(self.teacher_ckpt, TEACHER_KEY)
        data_name = (saved.get("data") or {}).get("name")
        if data_name != dm.name:
            raise CheckpointError(
                f"{TEACHER_KEY}={self.teacher_ckpt} was trained on data.name={data_name}, this run uses {dm.name}"
            )
        teacher = rebuild.restore(saved, dm, ckpt, self.teacher_ckpt, TEACHER_KEY).net
        teacher.eval().requires_grad_(False)
        self.teacher = teacher.to(pl_module.device)
        pl_module.task_weight = 1.0 - self.weight
        pl_module.loss_terms[DISTILL_TERM] = self.loss

    def loss(self, module: pl.LightningModule, x: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.teacher.training:  # Lightning's train()/eval() never reach it (not a submodule); be certain
            self.teacher.eval()
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        return self.weight * module.distillation_loss(logits, teacher_logits, self.temperature)
