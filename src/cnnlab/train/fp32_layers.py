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

How: the layer gets an instance `forward` that turns autocast off, computes in the weight's
dtype and hands back the dtype it was given, so the rest of the model runs as before. The
parameters and state_dict are untouched; a deep copy (the EMA) keeps the change; `restore`
takes it away again (the trainer does before it hands the module back). A layer whose
instance `forward` the user set is left alone: it is neither changed nor listed.

Names are plain (`plain_name`: without torch.compile's `_orig_mod`), as the eager rebuild
that `load_run` opens names them; a name with `_orig_mod` (a run recorded before) resolves
as well.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from cnnlab.inspect.preserve import plain_name


def slow_in_bf16(module: nn.Module) -> bool:
    """True for a depthwise nn.Conv2d (groups == in_channels > 1) other than 3×3 stride 1.

    Measured: out_channels == in_channels, dilation 1, kernels 3×3, 5×5 and 7×7, strides
    1 and 2. Assumed, not measured: the same holds for a channel multiplier > 1
    (out_channels = k·in_channels), for dilation > 1 and for other kernel shapes, which
    oneDNN's bf16 path also gives its general kernels; such a layer computes in fp32 too."""
    if not isinstance(module, nn.Conv2d):
        return False
    depthwise = module.groups > 1 and module.groups == module.in_channels
    return depthwise and (tuple(module.kernel_size) != (3, 3) or tuple(module.stride) != (1, 1))


def fp32_layers(model: nn.Module) -> list[str]:
    """Plain names (`plain_name` of model.named_modules') of the layers `slow_in_bf16`
    picks, but for one whose instance forward the user set (replacing it would change what
    the layer computes)."""
    return [
        plain_name(name)
        for name, m in model.named_modules()
        if slow_in_bf16(m) and not _user_forward(m)
    ]


def _user_forward(module: nn.Module) -> bool:
    """An instance forward set by someone other than keep_fp32."""
    own = vars(module).get("forward")
    return own is not None and not isinstance(own, _Fp32Forward)


def layers_by_name(model: nn.Module) -> dict[str, nn.Module]:
    """model's layers by plain name; a compile wrapper's name goes to the module it holds
    (named_modules lists the wrapper first)."""
    return {plain_name(name): m for name, m in model.named_modules()}


class _Fp32Forward:
    """A layer's forward in its weight's dtype with autocast off; (B, C, H, W) in and out,
    the output in x's dtype; further arguments (a mask) go on as given. An object rather
    than a bound function, so that a model holding it still pickles (torch.save(model):
    pickle finds no `_fp32_forward` attribute to rebind a bound method to)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __call__(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        # in x's layout even when x is a channel slice of an NHWC tensor (GhostNet's), which
        # `.to`'s preserve_format would copy to NCHW: 68 ms instead of ~10 at 128×672×16²
        nhwc = x.dim() == 4 and x.stride(1) < x.stride(3)
        layout = torch.channels_last if nhwc else torch.contiguous_format
        layer = self.module
        x32 = x.to(layer.weight.dtype, memory_format=layout)
        with torch.autocast(x.device.type, enabled=False):
            y = type(layer).forward(layer, x32, *args, **kwargs)
        return y.to(x.dtype)


def keep_fp32(model: nn.Module, names: Iterable[str]) -> None:
    """Make the layers `names` of `model` compute in fp32 under autocast (in place; undone
    by `restore`).

    Names come from `fp32_layers` or from a run's config.json (`fp32_layers`), plain or
    with `_orig_mod`; a name the model lacks is a KeyError (a stored run whose model
    changed). A layer with the user's own instance forward is left as it is."""
    modules = layers_by_name(model)
    for name in names:
        module = modules[plain_name(name)]
        if not _user_forward(module):
            module.forward = _Fp32Forward(module)


def restore(model: nn.Module) -> None:
    """Take away every forward keep_fp32 set in `model`: its layers compute as their class
    says again (torch.jit.script works, a later fp32 run is plain fp32). Other instance
    forwards stay."""
    for module in model.modules():
        if isinstance(vars(module).get("forward"), _Fp32Forward):
            del module.forward
