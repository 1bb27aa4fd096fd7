"""Small building blocks shared by the models."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nnopt.errors import ConfigError


def dense_block(in_features: int, out_features: int, batch_norm: bool, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(in_features, out_features)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(out_features))
    layers.append(nn.ReLU())
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return layers


def conv_block(in_ch: int, out_ch: int, kernel: int, padding: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, padding=padding)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers += [nn.ReLU(), nn.MaxPool2d(2)]
    return layers


def flat_features(features: nn.Module, in_shape: Sequence[int], model: str) -> int:
    """Output size of a conv stack for one input, or a ConfigError if the input is too small for it."""
    try:
        with torch.no_grad():
            return int(features.eval()(torch.zeros(1, *in_shape)).numel())
    except RuntimeError:
        raise ConfigError(
            f"model={model} cannot take inputs of shape {tuple(in_shape)}: too small for its conv/pool stack "
            "(use 28x28 inputs, e.g. data.size=28)"
        ) from None
    finally:
        features.train()


def as_list(value: int | Sequence[int]) -> list[int]:
    return [int(value)] if isinstance(value, int) else [int(v) for v in value]
