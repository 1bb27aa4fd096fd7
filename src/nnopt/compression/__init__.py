"""Model compression as callbacks: gradual pruning, quantization (QAT, PTQ), distillation, fine-tuning.

Each callback owns one concern, keeps its resumable state in `state_dict`, and hands the model the summary
measures to `Classifier.deploy_net` (see :func:`nnopt.compression.quantization.set_deploy_net`).
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch


def restart_best_tracking(trainer: pl.Trainer) -> None:
    """Forget the checkpoints' best score from here on: "best" must mean the best *compressed* model (at the
    target sparsity, or with fake quantization), not a denser/float epoch that happened to validate higher."""
    for cb in trainer.checkpoint_callbacks:
        if getattr(cb, "monitor", None) is None:
            continue
        cb.best_k_models = {}
        cb.kth_best_model_path = ""
        cb.best_model_score = None
        cb.best_model_path = ""
        cb.kth_value = torch.tensor(torch.inf if cb.mode == "min" else -torch.inf)


def keep_training_until(trainer: pl.Trainer, epoch: int) -> None:
    """Early stopping may not end the run before `epoch` has been trained (the compression needs it)."""
    trainer.fit_loop.min_epochs = max(trainer.fit_loop.min_epochs or 0, epoch + 1)
