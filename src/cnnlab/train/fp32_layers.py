"""Layers that compute in fp32 inside bf16 autocast, because on the CPU oneDNN's bf16 kernels
for them are slower than its fp32 ones.

Which: a depthwise convolution (nn.Conv2d with groups == in_channels > 1) other than 3×3
stride 1. For its backward pass oneDNN (as in PyTorch 2.13) gives bf16 the general kernels
(`brgconv_strided` for the input gradient when the stride is > 1, `jit_bf16` for the weight
gradient when the kernel is > 3×3) where fp32 gets the depthwise ones (`jit_dw`). One such
layer, forward and backward, batch 64, one thread, channels-last, 256 channels of 16×16:
3×3 stride 2 8.0 ms fp32 against 109 ms bf16, 5×5 stride 2 23.7 against 232 ms, 5×5 stride 1
58.5 against 104 ms; 3×3 stride 1, left in bf16, 17.3 against 18.5 ms. Training a small
GhostNet (3×32×32, one thread): 54 img/s bf16, 96 fp32, 142 bf16 with these layers in fp32
(BENCHMARKS.md).

How: the layer's own `forward` is replaced by one that turns autocast off, computes in the
weight's dtype and hands back the dtype it was given, so the rest of the model runs as
before. The parameters and state_dict are untouched; a deep copy (the EMA) keeps the change.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def slow_in_bf16(module: nn.Module) -> bool:
    """True for a depthwise nn.Conv2d whose bf16 kernels on the CPU are slower than fp32's:
    any kernel but 3×3 or any stride but 1."""
    if not isinstance(module, nn.Conv2d):
        return False
    depthwise = module.groups > 1 and module.groups == module.in_channels
    return depthwise and (tuple(module.kernel_size) != (3, 3) or tuple(module.stride) != (1, 1))


def fp32_layers(model: nn.Module) -> list[str]:
    """Names (as model.named_modules gives them) of the layers `slow_in_bf16` picks."""
    return [name for name, m in model.named_modules() if slow_in_bf16(m)]


class _Fp32Forward:
    """A layer's forward in its weight's dtype with autocast off; (B, C, H, W) in and out,
    the output in x's dtype. An object rather than a bound function, so that a model trained
    with it still pickles (torch.save(model): pickle finds no `_fp32_forward` attribute to
    rebind a bound method to)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # in x's layout even when x is a channel slice of an NHWC tensor (GhostNet's), which
        # `.to`'s preserve_format would copy to NCHW: 68 ms instead of ~10 at 128×672×16²
        nhwc = x.dim() == 4 and x.stride(1) < x.stride(3)
        layout = torch.channels_last if nhwc else torch.contiguous_format
        layer = self.module
        with torch.autocast(x.device.type, enabled=False):
            y = type(layer).forward(layer, x.to(layer.weight.dtype, memory_format=layout))
        return y.to(x.dtype)


def keep_fp32(model: nn.Module, names: Iterable[str]) -> None:
    """Make the layers `names` of `model` compute in fp32 under autocast (in place).

    Names come from `fp32_layers` or from a run's config.json (`fp32_layers`); a name the
    model lacks is a KeyError (a stored run whose model changed)."""
    modules = dict(model.named_modules())
    for name in names:
        module = modules[name]
        module.forward = _Fp32Forward(module)
