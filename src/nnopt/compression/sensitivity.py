"""Per-layer pruning sensitivity (distiller's analysis) and a per-layer allocation for an overall sparsity.

Each prunable layer (Linear/Conv weights) is pruned alone by L1 magnitude to each sparsity, the model is evaluated
with its task's metric, the weights are restored. From the curves, :func:`propose` allocates per-layer sparsities
for a requested overall sparsity: every layer goes as far as a common tolerated metric loss allows, the tolerance
chosen so the parameter-weighted sparsity meets the target. `nnopt-sensitivity` (nnopt.sensitivity) is its CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nnopt.errors import NnoptError

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
DEFAULT_SPARSITIES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


class SensitivityError(NnoptError):
    """Bad input to nnopt-sensitivity."""


@dataclass
class Loaded:
    module: Any  # the TaskModule with the checkpoint's weights, in eval mode
    batches: Any  # the split's (x, y) batches
    metric: str  # "acc" (classification) or "mse" (regression)
    larger_is_better: bool


@torch.no_grad()
def evaluate(loaded: Loaded) -> float:
    """The metric as the run's test step computes it (same metric objects, batches and units)."""
    module = loaded.module
    return module.evaluate_outputs((module(x), y) for x, y in loaded.batches)


def prunable_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, layer) of every Linear/Conv layer, named as `compression.layer_sparsity` keys (`net.features.0`)."""
    return [(name, m) for name, m in module.named_modules() if isinstance(m, PRUNABLE)]


def magnitude_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep-mask zeroing exactly round(sparsity * numel) weights of smallest magnitude."""
    k = round(sparsity * weight.numel())
    mask = torch.ones_like(weight, dtype=torch.bool)
    if k > 0:
        idx = torch.topk(weight.abs().flatten(), k, largest=False).indices
        mask.view(-1)[idx] = False
    return mask


@torch.no_grad()
def evaluate_pruned(loaded: Loaded, plan: dict[str, float]) -> float:
    """The metric with each layer in `plan` pruned to its sparsity at once; weights restored afterwards."""
    layers = dict(prunable_layers(loaded.module))
    saved = {name: layers[name].weight.detach().clone() for name in plan}
    try:
        for name, sparsity in plan.items():
            layers[name].weight.mul_(magnitude_mask(layers[name].weight, sparsity))
        return evaluate(loaded)
    finally:
        for name, weight in saved.items():
            layers[name].weight.copy_(weight)


def sweep(loaded: Loaded, sparsities: Sequence[float]) -> list[dict[str, Any]]:
    """One row per (layer, sparsity): layer, parameters (weights), sparsity, metric."""
    dense = evaluate(loaded)
    rows = []
    for name, layer in prunable_layers(loaded.module):
        for s in sparsities:
            value = dense if s == 0 else evaluate_pruned(loaded, {name: s})
            rows.append({"layer": name, "parameters": layer.weight.numel(), "sparsity": s, "metric": value})
    return rows


def curves_of(rows: list[dict[str, Any]]) -> dict[str, tuple[int, list[float], list[float]]]:
    """Layer -> (weights, sparsities, metric values) from :func:`sweep`'s rows."""
    curves: dict[str, tuple[int, list[float], list[float]]] = {}
    for r in rows:
        params, xs, ys = curves.setdefault(r["layer"], (r["parameters"], [], []))
        xs.append(r["sparsity"])
        ys.append(r["metric"])
    return curves


def _max_sparsity(xs: list[float], losses: list[float], tolerance: float) -> float:
    """Largest sparsity whose (monotone, linearly interpolated) metric loss stays within `tolerance`."""
    best = 0.0
    for i in range(1, len(xs)):
        if losses[i] <= tolerance:
            best = xs[i]
            continue
        if losses[i - 1] <= tolerance < losses[i]:  # crossing inside this segment
            frac = (tolerance - losses[i - 1]) / (losses[i] - losses[i - 1])
            best = xs[i - 1] + frac * (xs[i] - xs[i - 1])
        break
    return best


def propose(rows: list[dict[str, Any]], target: float, larger_is_better: bool = True) -> dict[str, float]:
    """Per-layer sparsities whose parameter-weighted mean is `target`: every layer goes as far as a common tolerated
    metric loss allows (bisection on that tolerance), so the least sensitive layers are pruned most."""
    curves = curves_of(rows)
    losses = {}
    for name, (_, _, ys) in curves.items():
        sign = 1.0 if larger_is_better else -1.0
        raw = [sign * (ys[0] - y) for y in ys]  # metric lost vs dense
        running, mono = float("-inf"), []
        for v in raw:  # monotone: a layer never counts as less sensitive at a higher sparsity
            running = max(running, v)
            mono.append(running)
        losses[name] = mono
    total = sum(p for p, _, _ in curves.values())

    def plan(tol: float) -> dict[str, float]:
        return {n: _max_sparsity(curves[n][1], losses[n], tol) for n in curves}

    def overall(p: dict[str, float]) -> float:
        return sum(curves[n][0] * s for n, s in p.items()) / total

    lo, hi = min(min(v) for v in losses.values()) - 1.0, max(max(v) for v in losses.values()) + 1.0
    if overall(plan(hi)) < target:
        reach = overall(plan(hi))
        raise SensitivityError(
            f"--target={target} is out of reach: the largest sparsities swept give {reach:.3f} overall; "
            "add higher --sparsities"
        )
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if overall(plan(mid)) < target else (lo, mid)
    result = plan(hi)
    # the crossing is continuous, but a layer can jump at a flat stretch: scale down the overshoot exactly
    excess = overall(result) - target
    if excess > 1e-9:
        result = _trim(result, curves, total, excess)
    return {n: round(s, 4) for n, s in result.items()}


def _trim(plan: dict[str, float], curves: dict, total: int, excess: float) -> dict[str, float]:
    """Remove `excess` overall sparsity from the layer(s) pruned most (largest first)."""
    plan = dict(plan)
    for name in sorted(plan, key=lambda n: -plan[n]):
        params = curves[name][0]
        cut = min(plan[name], excess * total / params)
        plan[name] -= cut
        excess -= cut * params / total
        if excess <= 1e-12:
            break
    return plan


def override(plan: dict[str, float], target: float) -> str:
    inner = ", ".join(f"{name}: {s:g}" for name, s in plan.items())
    return f"compression=prune compression.sparsity={target:g} 'compression.layer_sparsity={{{inner}}}'"
