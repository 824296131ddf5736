"""Layers that compute in fp32 inside bf16 autocast, because on the CPU oneDNN's bf16 kernels
for them are slower than its fp32 ones.

Which (`slow_in_bf16`): a depthwise convolution (groups == in_channels > 1) with a stride
> 1, in 1, 2 or 3 dims; a depthwise nn.Conv2d with a channel multiplier > 1, a dilation > 1
or a kernel with a side above 3 that is not a single row or column; nn.ConvTranspose2d with
groups > 1. oneDNN (as in PyTorch 2.13, `ONEDNN_VERBOSE=1`) gives bf16 general kernels
where fp32 gets faster ones, mostly for the backward pass: `brgconv_strided` for the input
gradient at a stride > 1 (fp32: `jit_dw`), `jit_bf16` for the weight gradient of a 5×5
kernel, `jit_bf16` and `brg_conv` for a dilated or multiplier-2 one (fp32: `jit`), and for a
transposed one with groups `jit_bf16` or `brgconv_strided` (fp32: `jit`, `jit_dw`).

Measured (`benchmarks/bf16_layers.py --layers`, BENCHMARKS.md): one layer, forward and
backward, batch 64, one thread, channels-last, 256 channels of 16×16 unless said; the time in
bf16 over the time with the layer kept in fp32 here (casts included), median of 9 alternated
rounds, the range over 2 to 4 runs. Slower in bf16, so kept in fp32: depthwise 3×3 stride 2
4.3–9.3×, 5×5 1.2–1.7×, 7×7 1.15–1.25×, 3×5 1.2–1.3×; multiplier 2 (128 to 256 channels) 3×3
1.9×, 3×3 stride 2 3.7–4.2×, 5×5 1.3–1.6×; dilation 2: 3×3 1.35–1.55×, 3×3 stride 2 1.3–1.5×,
5×5 1.3–1.5×; 1-d (256 channels of 256) stride 2: k7 1.35–2.1×, k3 1.5–1.8× in 3 runs of 4
(0.7× in one); 3-d (64 channels of 8³) 3×3×3 stride 2 3.5–4.6×; transposed depthwise 3×3
stride 1, 2×2 and 4×4 stride 2 1.7–5.3×, transposed grouped (128 channels, 32 groups of 4, 16
of 8, 8 of 16) 2.0–2.5×. As fast or faster in bf16, so left there: depthwise 3×3 0.4×, 2×2
0.5×, 1×3 0.3×, 7×1 0.35×, 1×7 0.8–1.0×; grouped 3×3 as ResNeXt and RegNet have them (128
channels, 32 groups of 4, 16 of 8, 8 of 16; stride 1 and 2) 0.5–1.1×; 1-d at stride 1 (k3, k7,
k3 dilation 2, multiplier 2) 0.3–1.1×; 3-d at stride 1 (3×3×3, 5×5×5, multiplier 2) 0.9–1.1×;
dense, dense dilated and dense transposed 0.5–0.8×. Not measured, left in bf16: transposed 1-d
and 3-d convs. Training a small GhostNet (3×32×32, one thread): 54 img/s bf16, 96 fp32, 142
bf16 with its depthwise layers in fp32.

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
    """True for a convolution whose bf16 kernels on the CPU are slower than its fp32 ones
    together with the casts around them (the module docstring has the measurements):

    - nn.ConvTranspose2d with groups > 1, depthwise or grouped;
    - a depthwise nn.Conv1d, nn.Conv2d or nn.Conv3d (groups == in_channels > 1) with a
      stride > 1;
    - a depthwise nn.Conv2d with a channel multiplier > 1 (out_channels = k·in_channels), a
      dilation > 1, or a kernel with a side above 3 that is not a single row or column
      (5×5, 7×7, 3×5; not 3×3, 2×2, 1×7, 7×1).

    Any other layer is False: measured as fast in bf16 or faster (dense and grouped convs,
    the other depthwise ones), or not measured (transposed 1-d and 3-d convs)."""
    if isinstance(module, nn.ConvTranspose2d):
        return module.groups > 1
    depthwise = isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and (
        module.groups > 1 and module.groups == module.in_channels
    )
    if not depthwise:
        return False
    if max(module.stride) > 1:
        return True
    if not isinstance(module, nn.Conv2d):
        return False
    kernel = tuple(module.kernel_size)
    return (
        module.out_channels != module.in_channels
        or max(module.dilation) > 1
        or not (max(kernel) <= 3 or min(kernel) == 1)  # 5×5, 3×5; not 2×2, 1×7
    )


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
    """A layer's forward in its weight's dtype with autocast off; (B, C, *spatial) in and
    out (1 to 3 spatial dims), the output in x's dtype; further arguments (a mask, a
    transposed conv's output_size) go on as given. An object rather than a bound function,
    so that a model holding it still pickles (torch.save(model): pickle finds no
    `_fp32_forward` attribute to rebind a bound method to)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __call__(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        # in x's layout even when x is a channel slice of a channels-last tensor (GhostNet's),
        # which `.to`'s preserve_format would copy to NCHW: 68 ms instead of ~10 at 128×672×16²
        last = x.dim() in (4, 5) and x.stride(1) < x.stride(-1)
        layout = torch.contiguous_format
        if last:
            layout = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
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
