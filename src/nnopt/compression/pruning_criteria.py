"""What one pruning step removes: a criterion per way of choosing (global or per-layer magnitude, whole channels by
norm). `GradualPruning` owns the schedule and the masks' life cycle; a new criterion is one small subclass here or
in your own package (`compression.criterion: {_target_: your_package.YourCriterion}`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils import prune
from typing_extensions import override

from nnopt.errors import ConfigError, require

#: a pruning target: (layer name, module, parameter name)
Target = tuple[str, nn.Module, str]


class PruningCriterion:
    """Chooses what one pruning step removes. A new criterion is one subclass of this: `prune` masks (with
    `torch.nn.utils.prune`) enough more of `targets` to reach cumulative sparsity `target` (per layer: `layer_targets`
    for the layers it names); `check` refuses a target a layer cannot take, before training."""

    #: whole output channels/neurons (the output layer is then never pruned: it would remove classes)
    structured: bool = False

    def prune(self, targets: list[Target], target: float, layer_targets: dict[str, float]) -> None:
        raise NotImplementedError

    def check(self, name: str, module: nn.Module, sparsity: float) -> None:
        """Raise ConfigError when `module` cannot be pruned to `sparsity`; anything goes by default."""


class GlobalMagnitude(PruningCriterion):
    """The smallest |w| over all targets together (L1, global ranking)."""

    @override
    def prune(self, targets: list[Target], target: float, layer_targets: dict[str, float]) -> None:
        total = sum(getattr(m, p).numel() for _, m, p in targets)
        done = sum(int((mask_of(m, p) == 0).sum()) for _, m, p in targets)
        extra = round(target * total) - done
        if extra > 0:
            prune.global_unstructured(
                [(m, p) for _, m, p in targets], pruning_method=prune.L1Unstructured, amount=extra
            )


class LayerMagnitude(PruningCriterion):
    """The smallest |w| of each layer, each to the same fraction (or to its own, from `layer_sparsity`)."""

    @override
    def prune(self, targets: list[Target], target: float, layer_targets: dict[str, float]) -> None:
        for name, module, pname in targets:
            t = getattr(module, pname)
            extra = round(layer_targets.get(name, target) * t.numel()) - int((mask_of(module, pname) == 0).sum())
            if extra > 0:
                prune.l1_unstructured(module, pname, amount=extra)


class ChannelNorm(PruningCriterion):
    """Whole output channels/neurons with the smallest Ln norm, per layer.

    Args:
        norm: the n of the Ln norm.
    """

    structured = True

    def __init__(self, norm: float = 2.0) -> None:
        require(isinstance(norm, (int, float)) and norm > 0, "compression.norm", norm, "a number > 0")
        self.norm = norm

    @override
    def prune(self, targets: list[Target], target: float, layer_targets: dict[str, float]) -> None:
        for _, module, pname in targets:
            channels = module.weight.shape[0]
            extra = round(target * channels) - _pruned_channels(module, pname)
            if extra > 0:
                prune.ln_structured(module, pname, amount=extra, n=self.norm, dim=0)

    @override
    def check(self, name: str, module: nn.Module, sparsity: float) -> None:
        channels = module.weight.shape[0]
        if round(sparsity * channels) >= channels:
            raise ConfigError(
                f"compression.sparsity={sparsity} would remove every channel of layer {name} "
                f"({channels} channels); use a lower sparsity"
            )


#: (method, scope) -> the criterion nnopt's configs choose; `criterion=` takes one of your own instead
CRITERIA: dict[tuple[str, str], Callable[[float], PruningCriterion]] = {
    ("unstructured", "global"): lambda norm: GlobalMagnitude(),
    ("unstructured", "layer"): lambda norm: LayerMagnitude(),
    ("structured", "global"): ChannelNorm,
    ("structured", "layer"): ChannelNorm,
}


def mask_of(module: nn.Module, pname: str) -> torch.Tensor:
    mask = getattr(module, f"{pname}_mask", None)
    return mask if mask is not None else torch.ones_like(getattr(module, pname))


def _pruned_channels(module: nn.Module, pname: str) -> int:
    mask = mask_of(module, pname)
    return int((mask.flatten(1) == 0).all(dim=1).sum()) if mask.dim() > 1 else int((mask == 0).sum())
