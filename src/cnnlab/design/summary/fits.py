"""Whether a shape-keeping call's arguments fit its input, for the calls whose output
`shapes.made` makes as a new tensor of the input's shape (their meta kernels are slow:
layer norm 60 ms a call on ConvNeXt, group norm 1-5 ms, instance norm, normalize and PReLU
0.5-1.6 ms): where they do not, torch must run the call and raise its own error."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from cnnlab.design.summary.calls import ROLL, arg, both, fns
from cnnlab.design.summary.layouts import dense


def ln_fits(x: Tensor, args: tuple, kwargs: dict) -> bool:
    """F.layer_norm's normalized_shape, weight and bias fit x's last axes (else torch must
    raise)."""
    shape = arg(args, kwargs, 1, "normalized_shape")
    shape = (shape,) if isinstance(shape, int) else tuple(shape or ())
    if not shape or tuple(x.shape[-len(shape) :]) != shape or not x.is_floating_point():
        return False
    return all(
        t is None or (isinstance(t, Tensor) and t.is_meta and tuple(t.shape) == shape)
        for t in (arg(args, kwargs, 2, "weight"), arg(args, kwargs, 3, "bias"))
    )


def mask_fits(mask: Any, q: Tensor, k: Any, causal: Any) -> bool:
    """F.scaled_dot_product_attention's attn_mask as torch takes it: meta, boolean or of q's
    dtype, broadcast to the scores' shape (q's batch and positions, k's positions), and no
    is_causal beside it (else torch must raise)."""
    if causal or not (isinstance(mask, Tensor) and mask.is_meta and isinstance(k, Tensor)):
        return False
    if mask.dtype not in (torch.bool, q.dtype):
        return False
    return stretches_to(tuple(mask.shape), (*q.shape[:-1], k.shape[-2]))


def stretches_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """An element-wise op stretches `shape` to `target` and no further: aligned from the
    right, each length is 1 or target's, and there are no more of them."""
    if len(shape) > len(target):
        return False
    tail = target[len(target) - len(shape) :]
    return all(m in (1, n) for m, n in zip(shape, tail, strict=True))


def gn_fits(x: Tensor, args: tuple, kwargs: dict) -> bool:
    """F.group_norm(x, num_groups, weight, bias): the groups divide x's channels, each group
    has more than one value (torch's _verify_batch_size), weight and bias have one value a
    channel (else torch must raise)."""
    groups = arg(args, kwargs, 1, "num_groups")
    if x.dim() < 2 or not x.is_floating_point() or type(groups) is not int or groups < 1:
        return False
    channels = x.shape[1]
    if x.numel() // groups <= 1:  # B · C/G · H · W values a group (one: torch raises)
        return False
    return channels % groups == 0 and all(
        t is None or (isinstance(t, Tensor) and t.is_meta and tuple(t.shape) == (channels,))
        for t in (arg(args, kwargs, 2, "weight"), arg(args, kwargs, 3, "bias"))
    )


def _optional_channels(x: Tensor, tensors: Any) -> bool:
    """Each of `tensors` is None or a meta tensor of one value per channel of x."""
    return all(
        t is None or (isinstance(t, Tensor) and t.is_meta and tuple(t.shape) == (x.shape[1],))
        for t in tensors
    )


def _in_fits(x: Tensor, args: tuple, kwargs: dict) -> bool:
    """F.instance_norm(x, running_mean, running_var, weight, bias, use_input_stats): a
    (B, C, ...) map of more than one position (torch's _verify_spatial_size), normalised by
    its own statistics, one value a channel in each tensor."""
    if x.dim() < 3 or not x.is_floating_point() or not arg(args, kwargs, 5, "use_input_stats", 1):
        return False
    if math.prod(x.shape[2:]) <= 1:
        return False
    return _optional_channels(x, (arg(args, kwargs, i, n) for i, n in enumerate(_IN_ARGS, 1)))


_IN_ARGS = ("running_mean", "running_var", "weight", "bias")


def _normalize_fits(x: Tensor, args: tuple, kwargs: dict) -> bool:
    """F.normalize(x, p, dim, eps, out): a dim in range and no `out`."""
    dim = arg(args, kwargs, 2, "dim", 1)
    return (
        x.is_floating_point() and type(dim) is int and -x.dim() <= dim < x.dim()
        and arg(args, kwargs, 4, "out") is None
    )  # fmt: skip


def _prelu_fits(x: Tensor, args: tuple, kwargs: dict) -> bool:
    """torch.prelu(x, weight): one slope, or one a channel (a scalar or 1-D weight), of x's
    dtype, on a dense x (whose layout the output keeps)."""
    w = arg(args, kwargs, 1, "weight")
    return (
        x.dim() >= 2 and isinstance(w, Tensor) and w.is_meta and w.dtype == x.dtype
        and w.dim() <= 1 and w.numel() in (1, x.shape[1]) and dense(x)
    )  # fmt: skip


def _roll_fits(x: Tensor, args: tuple, kwargs: dict) -> bool:
    """torch.roll(x, shifts, dims): integer shifts, one a dim, each dim in range, and x
    contiguous (torch's output then is; a channels-last x gives either layout, by dims)."""
    shifts, dims = arg(args, kwargs, 1, "shifts"), arg(args, kwargs, 2, "dims")
    shifts = (shifts,) if type(shifts) is int else shifts
    dims = (dims,) if type(dims) is int else dims
    if not isinstance(shifts, (tuple, list)) or not isinstance(dims, (tuple, list)):
        return False
    if len(shifts) != len(dims) or not dims or not x.is_contiguous():
        return False
    ints = all(type(v) is int for v in (*shifts, *dims))
    return ints and all(-x.dim() <= d < x.dim() for d in dims)


def _unary_fits(x: Tensor, args: tuple, kwargs: dict) -> bool:
    """torch.exp(x) and its kind: a dense float x alone (a float dtype is kept)."""
    return len(args) == 1 and not kwargs and x.is_floating_point() and dense(x)


def _numbers_fit(x: Tensor, args: tuple, kwargs: dict) -> bool:
    """x.clamp(min, max), x.pow(2) and their kind: a dense float x and Python numbers, one
    at least (clamp given a bound)."""
    rest = (*args[1:], *kwargs.values())
    if not rest or not x.is_floating_point() or not dense(x):
        return False
    numbers = [v for v in rest if v is not None]
    return bool(numbers) and all(type(v) in (int, float) for v in numbers)


def _masked_fill_fits(x: Tensor, args: tuple, kwargs: dict) -> bool:
    """x.masked_fill(mask, value): a float x, a boolean meta mask that broadcasts to x's
    shape (not beyond it) and a Python number."""
    mask, value = arg(args, kwargs, 1, "mask"), arg(args, kwargs, 2, "value")
    if not x.is_floating_point() or type(value) not in (int, float):
        return False
    if not isinstance(mask, Tensor) or not mask.is_meta or mask.dtype != torch.bool:
        return False
    return stretches_to(tuple(mask.shape), tuple(x.shape))


# element-wise calls of one map and numbers, whose meta kernels are written in Python: clamp
# 1.4 ms a call, exp and log 0.09 (Swin V2's logit scale and position table)
_UNARY = (
    "exp", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "abs", "neg", "sign",
    "reciprocal", "square", "sin", "cos", "floor", "ceil", "trunc",
)  # fmt: skip
NUMBERS_SAME = {
    **dict.fromkeys(both(*_UNARY) | fns("__neg__", "__abs__", owner=Tensor), _unary_fits),
    **dict.fromkeys(both("clamp", "clip", "clamp_min", "clamp_max", "pow"), _numbers_fit),
    **dict.fromkeys(fns("__pow__", owner=Tensor), _numbers_fit),
}

# shape-keeping calls whose meta kernels are slow (MONAI's U-Nets: PReLU; SwiftFormer:
# normalize; those of numbers above), with what makes them fit; their output has x's layout
SLOW_SAME = {F.normalize: _normalize_fits, torch.prelu: _prelu_fits, **NUMBERS_SAME}
# ... and those whose output is contiguous whatever x's layout (`shapes.made`): MONAI's
# instance norm (its meta kernel a decomposition, 0.5-1 ms a call); Swin's torch.roll (its
# Python reference, 1 ms a call) of a contiguous x
CONTIGUOUS_SAME = {
    F.instance_norm: _in_fits,
    **dict.fromkeys(ROLL, _roll_fits),
    **dict.fromkeys(both("masked_fill"), _masked_fill_fits),  # Swin V2's masks: 0.4 ms
}


def bn_fits(x: Tensor, args: tuple, kwargs: dict) -> bool:
    """F.batch_norm's running mean has x's channel count, and batch statistics have more
    than one value per channel (else torch must raise)."""
    if arg(args, kwargs, 5, "training") and x.numel() <= x.shape[1]:
        return False
    mean = arg(args, kwargs, 1, "running_mean")
    return mean is None or tuple(mean.shape) == (x.shape[1],)


# every function `made` may make the output of (a set lookup sends the others on at once)


def layer_norm_module_fits(state: dict, x: Tensor, weight: Any, bias: Any) -> bool:
    """nn.LayerNorm's call (its attributes `state`, its weight and bias) fits x: x ends in
    its normalized_shape, weight and bias (if any) have that shape."""
    shape = tuple(state["normalized_shape"])
    n = len(shape)
    if not n or n > x.dim() or tuple(x.shape[-n:]) != shape:
        return False
    return (weight is None or weight.shape == shape) and (bias is None or bias.shape == shape)


def group_norm_module_fits(state: dict, x: Tensor, weight: Any, bias: Any) -> bool:
    """nn.GroupNorm's call fits x: `gn_fits` with the module's groups, weight and bias."""
    groups = state["num_groups"]
    if x.dim() < 2 or type(groups) is not int or groups < 1 or x.numel() // groups <= 1:
        return False
    channels = (x.shape[1],)
    return (
        x.shape[1] % groups == 0
        and (weight is None or weight.shape == channels)
        and (bias is None or bias.shape == channels)
    )


# torch's norm modules whose output the trace makes (`Shortcuts._norm`), with their fits and
# the function their forward calls (its tag rule)
NORM_MODULES = {
    torch.nn.LayerNorm: (layer_norm_module_fits, F.layer_norm),
    torch.nn.GroupNorm: (group_norm_module_fits, F.group_norm),
}
