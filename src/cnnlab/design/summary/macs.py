"""Multiply-accumulates of one layer call, by module type, in torchinfo's convention (so totals
agree): a conv C_out·C_in/groups·kh·kw per output position plus C_out for its bias, a linear
layer in·out (+ out) per output row, a recurrent layer its weights per time step, any other
leaf with parameters (BatchNorm) one per parameter, a container 0 (its children have rows)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn


def _conv_macs(m: nn.Conv2d, out: Tensor) -> int:
    """Per output position C_out·C_in/groups·kh·kw, + C_out with a bias (torchinfo counts the
    bias as a MAC per position too)."""
    per_position = m.out_channels * (m.in_channels // m.groups) * math.prod(m.kernel_size)
    bias = m.out_channels if _bias(m) is not None else 0
    shape = out.shape
    positions = shape[2] * shape[3] if len(shape) == 4 else math.prod(shape[2:])
    return (per_position + bias) * positions


def _linear_macs(m: nn.Linear, out: Tensor) -> int:
    """in·out (+ out with a bias) per output row."""
    bias = m.out_features if _bias(m) is not None else 0
    return (m.in_features * m.out_features + bias) * math.prod(out.shape[:-1])


def _recurrent_macs(m: nn.RNNBase, out: Tensor) -> int:
    """Every weight and bias once per time step of each sequence (torchinfo's count): an LSTM
    layer's step is 4H·(I + H) multiply-adds per direction, its weights, + its 8H biases; a
    stacked layer runs every step too. The steps: the output's rows, T·B (B = 1 per image,
    or an image's rows run as a batch of sequences; a PackedSequence's data: all steps)."""
    steps = math.prod(out.shape[:-1])
    return sum(p.numel() for p in m._parameters.values() if p is not None) * steps


def _bias(m: nn.Module) -> Any:
    """m.bias, read from its parameters where it is one: m.bias goes through
    nn.Module.__getattr__ (1.2 µs, 0.1 this way)."""
    p = m._parameters
    return p["bias"] if "bias" in p and "bias" not in vars(m) else getattr(m, "bias", None)


_MACS: dict[type, Callable[[Any, Tensor], int]] = {
    # every conv, transposed ones too: torchinfo counts a layer whose class name says "Conv"
    # as weight and bias elements per output position, as `_conv_macs` does
    nn.modules.conv._ConvNd: _conv_macs,
    nn.Linear: _linear_macs,
    nn.RNNBase: _recurrent_macs,
}


def macs_rule(module_type: type) -> Callable[[Any, Tensor], int] | None:
    """The MACs rule of a module type (a subclass of Conv2d counts as one), None for other
    types: a leaf with parameters (BatchNorm, LayerNorm, PReLU...) then counts one MAC per
    parameter, torchinfo's convention, a container 0 (its children have rows)."""
    return next((_MACS[cls] for cls in module_type.__mro__ if cls in _MACS), None)
