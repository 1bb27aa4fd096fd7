"""The int8 model file (`checkpoints/model_int8.pt`): its kind and backend beside the quantized state_dict, and how a
float network of the same architecture is turned back into that int8 model."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from nnopt.compression.quantization.ops import convert, prepare, quantize_dynamic
from nnopt.errors import CheckpointError

INT8_FILE = "model_int8.pt"
KINDS = ("qat", "static", "dynamic")


def save_int8(model: nn.Module, path: str | Path, kind: str, backend: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"kind": kind, "backend": backend, "state_dict": model.state_dict()}, path)
    return path


def skeleton(float_net: nn.Module, kind: str, backend: str, in_shape: tuple[int, ...]) -> nn.Module:
    """An int8 model of the right structure (weights/scales are then loaded from a saved state_dict)."""
    net = copy.deepcopy(float_net).cpu()
    if kind == "dynamic":
        return quantize_dynamic(net)
    prepared = prepare(net, backend, qat=kind == "qat")
    prepared.eval()
    with torch.no_grad():
        prepared(torch.randn(2, *in_shape))  # give observers a range so convert() can run
    return convert(prepared)


def load_int8(path: str | Path, float_net: nn.Module, in_shape: tuple[int, ...]) -> nn.Module:
    """Rebuild a saved int8 model around `float_net` (the same architecture it was trained with)."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        kind, backend, state = blob["kind"], blob["backend"], blob["state_dict"]
    except Exception as exc:
        raise CheckpointError(f"{path} is not an nnopt int8 model ({str(exc).splitlines()[0][:150]})") from None
    torch.backends.quantized.engine = backend
    model = skeleton(float_net, kind, backend, in_shape)
    try:
        model.load_state_dict(state)
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: the int8 weights do not fit this model ({exc!s:.150})") from None
    return model.eval()
