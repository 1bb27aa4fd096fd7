"""QAT and post-training quantization as callbacks, each ending in a real int8 model that the run tests, measures
and saves."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.ao.quantization as tq
from torch import nn
from torch.ao.nn.intrinsic import qat as nniqat
from typing_extensions import override

from nnopt import fused
from nnopt.compression import keep_training_until, restart_best_tracking
from nnopt.compression.quantization.int8_file import INT8_FILE, save_int8
from nnopt.compression.quantization.ops import (
    check_backend,
    convert,
    prepare,
    quantize_dynamic,
)
from nnopt.errors import ConfigError, require, require_choice
from nnopt.metrics import names as N


class Int8Deploy(pl.Callback):
    """Base: at train end and test start, build the int8 model from the current weights, make it the deployed
    model (tested and measured by the pipeline), save it beside the float checkpoint, and log the float
    model's value of the task's metric as `test/<metric>_float` (classification: `test/acc_float`) beside it.

    Args:
        backend: the quantized engine (:func:`backends` lists this machine's).
        output_dir: run dir; rank 0 saves the int8 model to `<output_dir>/checkpoints/model_int8.pt` (None: not saved).

    Raises:
        ConfigError: if `backend` is not available on this CPU/torch build.
    """

    kind = "static"

    def __init__(self, backend: str = "x86", output_dir: str | None = None) -> None:
        check_backend(backend)
        self.backend = backend
        self.output_dir = output_dir
        self._float_metrics: Any = None  # the task's test metrics, fed with the float model's outputs
        self._float_batches = 0

    def quantize(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> nn.Module:
        raise NotImplementedError

    def float_forward(self, pl_module: pl.LightningModule, x: torch.Tensor) -> torch.Tensor:
        return pl_module.net(x)

    def finalize(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> nn.Module:
        int8 = self.quantize(trainer, pl_module).eval()
        pl_module.set_deploy_net(int8)
        if self.output_dir and trainer.is_global_zero:
            save_int8(int8, Path(self.output_dir) / "checkpoints" / INT8_FILE, self.kind, self.backend)
        return int8

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.finalize(trainer, pl_module)

    @override
    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.finalize(trainer, pl_module)  # from the weights being tested (a checkpoint may have been loaded)
        self._float_metrics = pl_module.stage_metrics[N.TEST].clone()
        self._float_metrics.reset()
        self._float_batches = 0

    @override
    @torch.no_grad()
    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        x, y = batch
        self._float_metrics.update(*pl_module.metric_inputs(self.float_forward(pl_module, x), y))
        self._float_batches += 1

    @override
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._float_metrics is None or not self._float_batches:
            return
        best = pl_module.task.best  # torchmetrics' compute() reduces over DDP ranks itself
        pl_module.log(N.key(N.TEST, f"{best}_float"), self._float_metrics.compute()[best])
        self._float_metrics = None


class PostTrainingQuantization(Int8Deploy):
    """int8 after training, from the final (or tested) float weights.

    Args:
        mode: `dynamic` (Linear weights int8, activations quantized on the fly) or `static` (weights and
            activations int8, activation ranges calibrated on training batches).
        calibration_batches: training batches run through the observers for `static` (>= 1).
        backend: see :class:`Int8Deploy`.
        output_dir: see :class:`Int8Deploy`.

    Raises:
        ConfigError: on a `mode`, `calibration_batches` or `backend` that is not allowed.
    """

    def __init__(
        self, mode: str = "static", calibration_batches: int = 10, backend: str = "x86", output_dir: str | None = None
    ) -> None:
        super().__init__(backend, output_dir)
        require_choice("compression.mode", mode, ("static", "dynamic"))
        ok = isinstance(calibration_batches, int) and calibration_batches >= 1
        require(ok, "compression.calibration_batches", calibration_batches, "an integer >= 1")
        self.kind = mode
        self.calibration_batches = calibration_batches

    @override
    @torch.no_grad()
    def quantize(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> nn.Module:
        if self.kind == "dynamic":
            return quantize_dynamic(pl_module.net)
        prepared = prepare(copy.deepcopy(pl_module.net).cpu(), self.backend, qat=False)
        for i, (x, _) in enumerate(fused.plain_batches(trainer.datamodule.train_dataloader())):
            if i >= self.calibration_batches:
                break
            prepared(x.cpu())
        return convert(prepared)


class QuantizationAwareTraining(Int8Deploy):
    """Fake quantization from `start_epoch` (after float warm-up), observers and BN statistics frozen from
    `freeze_observers_epoch` / `freeze_bn_epoch`, converted to int8 at the end.

    Observers are paused during validation/test so their ranges come from training data only.

    Args:
        start_epoch: first epoch with fake quantization (None: two thirds into training); the earlier epochs
            train in float.
        freeze_observers_epoch: from this epoch on, activation ranges stay fixed (None: two thirds of the way
            through the QAT epochs).
        freeze_bn_epoch: from this epoch on, BatchNorm statistics stay fixed (None: as for the observers).
        backend: see :class:`Int8Deploy`.
        output_dir: see :class:`Int8Deploy`.

    Raises:
        ConfigError: on an epoch that is not an integer >= 0; at `setup`, when QAT would start at or after
            `trainer.max_epochs` or a freeze epoch is not after `start_epoch`; at the end, when training stopped
            before QAT started.
    """

    kind = "qat"

    def __init__(
        self,
        start_epoch: int | None = None,
        freeze_observers_epoch: int | None = None,
        freeze_bn_epoch: int | None = None,
        backend: str = "x86",
        output_dir: str | None = None,
    ) -> None:
        super().__init__(backend, output_dir)
        epochs = {
            "start_epoch": start_epoch,
            "freeze_observers_epoch": freeze_observers_epoch,
            "freeze_bn_epoch": freeze_bn_epoch,
        }
        for name, value in epochs.items():
            ok = value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)
            require(ok, f"compression.{name}", value, "an integer >= 0 (an epoch index)")
        self.start_epoch = start_epoch
        self.freeze_observers_epoch = freeze_observers_epoch
        self.freeze_bn_epoch = freeze_bn_epoch
        self.prepared = False

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        if max_epochs is None and self.start_epoch is None:
            raise ConfigError("compression.start_epoch must be set when trainer.max_epochs is unlimited")
        # default: the last third of training (so prune_qat's QAT starts where its pruning schedule ends)
        start = self.start_epoch if self.start_epoch is not None else max(0, math.ceil(2 * max_epochs / 3) - 1)
        if max_epochs is not None and start >= max_epochs:
            raise ConfigError(
                f"compression.start_epoch={start} is not before trainer.max_epochs={max_epochs}: "
                f"QAT would never start; use an epoch index in [0, {max_epochs - 1}]"
            )
        late = start + math.ceil(2 * ((max_epochs or start + 3) - start) / 3)
        for name in ("freeze_observers_epoch", "freeze_bn_epoch"):
            value = getattr(self, name)
            ok = value is None or value > start
            require(ok, f"compression.{name}", value, f"an epoch after compression.start_epoch={start}")
            setattr(self, name, value if value is not None else late)
        self.start_epoch = start
        keep_training_until(trainer, start)
        if trainer.ckpt_path and self._checkpoint_prepared(trainer):
            self._prepare(pl_module)  # before Lightning loads the QAT-shaped weights into the module

    def _checkpoint_prepared(self, trainer: pl.Trainer) -> bool:
        """Whether the checkpoint being resumed holds the fake-quantized model (read once, see read_cached)."""
        from nnopt.checkpoint import callback_state, read_cached

        try:
            ckpt = read_cached(trainer.ckpt_path)
        except Exception:  # noqa: BLE001 - Lightning reports an unreadable checkpoint itself
            return False
        return bool(callback_state(ckpt, self.state_key).get("prepared"))

    def _prepare(self, pl_module: pl.LightningModule) -> None:
        device = pl_module.device
        pl_module.net = prepare(pl_module.net, self.backend, qat=True).to(device)
        pl_module.drop_compiled_net()  # a compiled graph of the float net would bypass QAT
        self.prepared = True

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        if epoch >= self.start_epoch and not self.prepared:
            self._prepare(pl_module)
            pl_module.net.train()
            restart_best_tracking(trainer)
            if hasattr(pl_module, "restart_best"):  # the best-so-far value counts the delivered model only
                pl_module.restart_best()
        if not self.prepared:
            return
        observe = epoch < self.freeze_observers_epoch
        pl_module.net.apply(tq.enable_observer if observe else tq.disable_observer)
        if epoch >= self.freeze_bn_epoch:
            pl_module.net.apply(nniqat.freeze_bn_stats)

    def _pause_observers(self, pl_module: pl.LightningModule) -> None:
        if self.prepared:
            pl_module.net.apply(tq.disable_observer)

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._pause_observers(pl_module)

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.prepared and trainer.current_epoch < self.freeze_observers_epoch:
            pl_module.net.apply(tq.enable_observer)

    @override
    def quantize(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> nn.Module:
        if not self.prepared:
            raise ConfigError("compression=qat: training ended before compression.start_epoch; no QAT happened")
        return convert(pl_module.net)

    @override
    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._pause_observers(pl_module)
        super().on_test_start(trainer, pl_module)

    @override
    def float_forward(self, pl_module: pl.LightningModule, x: torch.Tensor) -> torch.Tensor:
        """The same trained weights without fake quantization: what int8 conversion costs."""
        pl_module.net.apply(tq.disable_fake_quant)
        try:
            return pl_module.net(x)
        finally:
            pl_module.net.apply(tq.enable_fake_quant)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"prepared": self.prepared}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.prepared = self.prepared or bool(state_dict.get("prepared"))
