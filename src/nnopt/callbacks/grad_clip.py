"""Gradient clipping by global norm, by value, or adaptive (AGC), logging the global norm before clipping.

Runs in `on_before_optimizer_step`: Lightning calls it once per optimizer step (after gradient accumulation)
and, under 16-bit mixed precision, after the GradScaler has unscaled the gradients, so thresholds are in true
gradient units.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.nn.utils import clip_grad_norm_, clip_grad_value_, get_total_norm
from torch.optim import Optimizer
from typing_extensions import override

from nnopt.errors import require, require_choice
from nnopt.metrics import names as N

MODES = ("norm", "value", "agc")
NORM_KEY = N.key(N.TRAIN, "grad_norm")
CLIPPED_NORM_KEY = N.key(N.TRAIN, "grad_norm_clipped")


class GradientClipping(pl.Callback):
    """Clip gradients once per optimizer step and log their global norm before and after.

    Args:
        mode: `norm` scales all gradients so their global L2 norm is <= `max_norm`; `value` clamps each gradient
            entry to [-max_norm, max_norm]; `agc` is unit-wise adaptive clipping (Brock et al. 2021): each output
            row/filter's gradient norm is kept <= `max_norm` x max(||param row||, `agc_eps`).
        max_norm: the threshold (> 0); for `agc` a ratio to the weight norm.
        agc_eps: floor of the weight norm in `agc` mode, so zero-initialised units can still move.
        log_every_n_steps: log the norms every n optimizer steps (values < 1 mean every step).

    Raises:
        ConfigError: if `mode` is not one of :data:`MODES` or `max_norm` is not a number > 0.
    """

    def __init__(
        self, mode: str = "norm", max_norm: float = 1.0, agc_eps: float = 1e-3, log_every_n_steps: int = 1
    ) -> None:
        require_choice("callbacks.grad_clip.mode", mode, MODES)
        ok = isinstance(max_norm, (int, float)) and not isinstance(max_norm, bool) and max_norm > 0
        require(ok, "callbacks.grad_clip.max_norm", max_norm, "a number > 0")
        self.mode, self.max_norm, self.agc_eps = mode, float(max_norm), agc_eps
        self.log_every_n_steps = max(1, int(log_every_n_steps))

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer
    ) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not params:
            return
        log_now = trainer.global_step % self.log_every_n_steps == 0
        if self.mode == "norm":
            norm = clip_grad_norm_(params, self.max_norm)  # returns the pre-clip norm
        else:
            norm = get_total_norm([p.grad for p in params]) if log_now else None
            if self.mode == "value":
                clip_grad_value_(params, self.max_norm)
            else:
                self._agc(params)
        if log_now:
            pl_module.log(NORM_KEY, norm, on_step=True, on_epoch=False)
            pl_module.log(CLIPPED_NORM_KEY, get_total_norm([p.grad for p in params]), on_step=True, on_epoch=False)

    @torch.no_grad()
    def _agc(self, params: list[torch.Tensor]) -> None:
        for p in params:
            dims = tuple(range(1, p.dim())) if p.dim() > 1 else None  # unit-wise: per output row/filter
            p_norm = p.norm(dim=dims, keepdim=True) if dims else p.norm()
            g_norm = p.grad.norm(dim=dims, keepdim=True) if dims else p.grad.norm()
            limit = self.max_norm * p_norm.clamp(min=self.agc_eps)
            scale = (limit / g_norm.clamp(min=1e-6)).clamp(max=1.0)
            p.grad.mul_(scale)
