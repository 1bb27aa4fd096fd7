"""Model efficiency measures for summary.json: parameters, sparsity, size, latency, memory."""

from __future__ import annotations

import gzip
import io
import resource
import statistics
import time
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from nnopt.metrics import summary as S


def _tensors(obj) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _tensors(item)


def weight_tensors(model: nn.Module) -> Iterator[torch.Tensor]:
    """The effective learnable tensors: pruning masks applied, quantized packed weights unpacked."""
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if name.endswith("_orig") and hasattr(module, name[: -len("_orig")]):
                yield getattr(module, name[: -len("_orig")])  # torch.nn.utils.prune: weight = orig * mask
            elif param is not None:
                yield param
        # quantized Linear/Conv keep packed weights behind public weight()/bias() methods (not parameters)
        if callable(getattr(module, "weight", None)) and ".quantized" in type(module).__module__:
            yield from _tensors((module.weight(), module.bias()))


def count_params(model: nn.Module) -> tuple[int, int]:
    """(total, non-zero) over the effective weights and biases."""
    total = nonzero = 0
    for t in weight_tensors(model):
        if t is None:
            continue
        values = t.int_repr() if t.is_quantized else t.detach()
        zero = t.q_zero_point() if t.is_quantized and t.qscheme() == torch.per_tensor_affine else 0
        if t.is_quantized and t.qscheme() != torch.per_tensor_affine:
            zero = t.q_per_channel_zero_points().view(-1, *([1] * (t.dim() - 1)))
        total += values.numel()
        nonzero += int((values != zero).sum())
    return total, nonzero


def state_dict_bytes(model: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


@torch.inference_mode()
def latency_ms(
    model: nn.Module,
    in_shape: Sequence[int],
    batch_sizes: Sequence[int] = (1, 256),
    repeats: int = 20,
    warmup: int = 3,
) -> dict[int, float]:
    """Median CPU forward time per batch size; sizes are alternated so drift hits all alike."""
    model = model.eval()
    inputs = {b: torch.randn(b, *in_shape) for b in batch_sizes}
    for _ in range(warmup):
        for b in batch_sizes:
            model(inputs[b])
    times: dict[int, list[float]] = {b: [] for b in batch_sizes}
    for _ in range(repeats):
        for b in batch_sizes:
            start = time.perf_counter()
            model(inputs[b])
            times[b].append((time.perf_counter() - start) * 1e3)
    return {b: statistics.median(v) for b, v in times.items()}


def peak_memory_mb() -> float:
    """Peak GPU memory allocated if CUDA was used, else the process's peak resident set size."""
    if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(model: nn.Module, in_shape: Sequence[int], repeats: int = 20, warmup: int = 3) -> dict[str, float]:
    """Efficiency keys of summary.json for `model` (moved to CPU for timing)."""
    model = model.cpu().eval()
    total, nonzero = count_params(model)
    raw = state_dict_bytes(model)
    lat = latency_ms(model, in_shape, (1, 256), repeats=repeats, warmup=warmup)
    return {
        S.PARAMS: total,
        S.NONZERO_PARAMS: nonzero,
        S.SPARSITY: 1.0 - nonzero / total if total else 0.0,
        S.SIZE_BYTES: len(raw),
        S.SIZE_BYTES_GZIP: len(gzip.compress(raw, compresslevel=6)),
        S.LATENCY_B1: lat[1],
        S.LATENCY_B256: lat[256],
        S.INT8: any(".quantized" in type(m).__module__ for m in model.modules()),
    }
