"""Eager-mode quantization operations: backends, fusion groups, prepare/convert, dynamic quantization."""

from __future__ import annotations

import copy

import torch
import torch.ao.quantization as tq
from torch import nn

from nnopt.errors import require_choice

#: fusable runs of module types inside an nn.Sequential, longest first
_FUSE_PATTERNS = (
    (nn.Conv2d, nn.BatchNorm2d, nn.ReLU),
    (nn.Conv2d, nn.BatchNorm2d),
    (nn.Conv2d, nn.ReLU),
    (nn.Linear, nn.BatchNorm1d),
    (nn.Linear, nn.ReLU),
)


def backends() -> list[str]:
    """The quantized engines this CPU/torch build supports (e.g. x86, fbgemm, qnnpack, onednn)."""
    return [b for b in torch.backends.quantized.supported_engines if b != "none"]


def check_backend(backend: str) -> None:
    """Raise ConfigError, naming the available engines, if this CPU/torch build has no `backend` engine."""
    require_choice("compression.backend", backend, backends(), "is not available on this CPU/torch build")


def fusion_groups(model: nn.Module) -> list[list[str]]:
    """Qualified names of fusable module runs (per `_FUSE_PATTERNS`) in every nn.Sequential of `model`."""
    groups: list[list[str]] = []
    for prefix, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        kids = list(seq.named_children())
        i = 0
        while i < len(kids):
            for pattern in _FUSE_PATTERNS:
                run = kids[i : i + len(pattern)]
                if len(run) == len(pattern) and all(type(m) is t for (_, m), t in zip(run, pattern, strict=True)):
                    groups.append([f"{prefix}.{n}" if prefix else n for n, _ in run])
                    i += len(pattern) - 1
                    break
            i += 1
    return groups


def prepare(net: nn.Module, backend: str, qat: bool) -> nn.Module:
    """Wrap with quant/dequant stubs, fuse, attach observers (QAT: fake quantization). Modifies `net`."""
    torch.backends.quantized.engine = backend
    model = tq.QuantWrapper(net)
    model.train(qat)  # QAT fusion needs train mode, post-training fusion (BN folding) eval mode
    fuse = tq.fuse_modules_qat if qat else tq.fuse_modules
    groups = fusion_groups(model)
    if groups:
        fuse(model, groups, inplace=True)
    model.qconfig = tq.get_default_qat_qconfig(backend) if qat else tq.get_default_qconfig(backend)
    (tq.prepare_qat if qat else tq.prepare)(model, inplace=True)
    return model


def convert(prepared: nn.Module) -> nn.Module:
    """A converted int8 copy of a prepared (observed or QAT) model; the original keeps training."""
    return tq.convert(copy.deepcopy(prepared).cpu().eval(), inplace=False)


def quantize_dynamic(net: nn.Module) -> nn.Module:
    """int8 weights and dynamically quantized activations for Linear layers (convolutions stay float)."""
    return tq.quantize_dynamic(copy.deepcopy(net).cpu().eval(), {nn.Linear}, dtype=torch.qint8)
