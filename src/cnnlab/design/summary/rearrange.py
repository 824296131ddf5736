"""Output shapes of calls that rearrange values without mixing them, made on the meta device
from their inputs' shapes where torch's meta kernels are slow (Python decompositions): F.unfold
2.1 ms and F.fold 1.6 ms a call on 256 channels of 16×16 (MobileViT v2 calls each three
times: about half its trace), Tensor.repeat 28–215 µs (SwiftFormer), a copying .contiguous()
26 µs (PVT v2, SegFormer) against 3 µs for torch.empty; and F.conv_transpose2d, a fold of
a matrix product (col2im), 64 µs a call (MONAI's U-Net: a tenth of its trace). Each returns
None where torch must run (and raise its own error on arguments it refuses)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch._prims_common import suggest_memory_format

from cnnlab import geometry
from cnnlab.design.summary.calls import META, T, arg
from cnnlab.errors import SpecError

UNFOLD, FOLD, REPEAT, CONTIGUOUS = F.unfold, F.fold, T.repeat, T.contiguous
TRANSPOSED = F.conv_transpose2d
REARRANGED = frozenset({UNFOLD, FOLD, REPEAT, CONTIGUOUS, TRANSPOSED})
_RANK = {torch.channels_last: 4, torch.channels_last_3d: 5}  # the layouts' tensor ranks


def rearranged(func: Callable, args: tuple, kwargs: dict, x: Tensor) -> Tensor | None:
    """func's output on meta x, for the calls of REARRANGED; None where torch must run."""
    if func is CONTIGUOUS:
        fmt = _layout(args, kwargs, x)
        if fmt is None:
            return None
        if x.is_contiguous(memory_format=fmt):
            return x  # as torch: the tensor itself
        return torch.empty(tuple(x.shape), dtype=x.dtype, device=META, memory_format=fmt)
    if func is TRANSPOSED:
        return transposed(x, args, kwargs)
    if func is REPEAT:
        shape = repeated_shape(tuple(x.shape), args[1:], kwargs)
    elif func is UNFOLD:
        shape = unfolded_shape(tuple(x.shape), *_window_args(args, kwargs, 1))
    else:
        size = arg(args, kwargs, 1, "output_size")
        shape = folded_shape(tuple(x.shape), _pair(size), *_window_args(args, kwargs, 2))
    return None if shape is None else torch.empty(shape, dtype=x.dtype, device=META)


def _layout(args: tuple, kwargs: dict, x: Tensor) -> torch.memory_format | None:
    """.contiguous()'s memory_format (keyword-only: torch refuses it positionally) where the
    rule can make it: contiguous, or channels-last of a tensor of its rank (4-d, 5-d); None
    for preserve_format and for what torch refuses."""
    if len(args) > 1 or set(kwargs) - {"memory_format"}:
        return None
    fmt = kwargs.get("memory_format", torch.contiguous_format)
    if type(fmt) is not torch.memory_format:
        return None
    return fmt if fmt == torch.contiguous_format or _RANK.get(fmt) == x.dim() else None


def _window_args(args: tuple, kwargs: dict, at: int) -> tuple:
    """(kernel, dilation, padding, stride) pairs of F.unfold / F.fold, from position `at`."""
    return (
        _pair(arg(args, kwargs, at, "kernel_size")),
        _pair(arg(args, kwargs, at + 1, "dilation", 1)),
        _pair(arg(args, kwargs, at + 2, "padding", 0)),
        _pair(arg(args, kwargs, at + 3, "stride", 1)),
    )


def _pair(value: Any) -> tuple[int, int] | None:
    """An int or a pair of ints as a pair; None for anything else (torch then decides)."""
    if type(value) is int:
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(type(v) is int for v in value):
        return value[0], value[1]
    return None


def blocks(size, kernel, dilation, padding, stride) -> tuple[int, ...] | None:
    """Sliding-block positions per axis (geometry.conv_output_size, §2.2: ⌊(n + 2p − d·(k −
    1) − 1) / s⌋ + 1), None where a block does not fit (torch refuses)."""
    try:
        return tuple(
            geometry.conv_output_size(n, k, p, s, d)
            for n, k, d, p, s in zip(size, kernel, dilation, padding, stride, strict=True)
        )
    except SpecError:
        return None


def _valid(*pairs: tuple | None) -> bool:
    """Kernel, dilation and stride positive, padding not negative (torch's checks)."""
    if any(p is None for p in pairs):
        return False
    kernel, dilation, padding, stride = pairs
    return min(*kernel, *dilation, *stride) > 0 and min(padding) >= 0


def unfolded_shape(shape: tuple, kernel, dilation, padding, stride) -> tuple | None:
    """F.unfold's output shape: (N, C, H, W) -> (N, C·kh·kw, L), L the blocks of the padded
    map (at least one on each axis), or the same without N for an unbatched (C, H, W)."""
    if len(shape) not in (3, 4) or not _valid(kernel, dilation, padding, stride):
        return None
    n = blocks(shape[-2:], kernel, dilation, padding, stride)
    if n is None or 0 in shape[-3:]:
        return None
    return (*shape[:-3], shape[-3] * kernel[0] * kernel[1], n[0] * n[1])


def folded_shape(shape: tuple, output, kernel, dilation, padding, stride) -> tuple | None:
    """F.fold's output shape: (N, C·kh·kw, L) -> (N, C, *output_size), where L must be the
    blocks of the output map; the same without N for an unbatched (C·kh·kw, L)."""
    if len(shape) not in (2, 3) or output is None:
        return None
    if not _valid(kernel, dilation, padding, stride) or min(output) < 1:
        return None
    per_block = kernel[0] * kernel[1]
    n = blocks(output, kernel, dilation, padding, stride)
    if n is None or shape[-2] == 0 or shape[-2] % per_block or shape[-1] != n[0] * n[1]:
        return None
    return (*shape[:-2], shape[-2] // per_block, *output)


def repeated_shape(shape: tuple, sizes: tuple, kwargs: dict) -> tuple | None:
    """Tensor.repeat's output shape: the repeats, as many as x has dims or more, times x's
    shape with ones put in front."""
    if kwargs:
        return None
    if sizes and len(sizes) == 1 and isinstance(sizes[0], (tuple, list, torch.Size)):
        sizes = tuple(sizes[0])
    if not sizes or not all(type(s) is int and s >= 0 for s in sizes) or len(sizes) < len(shape):
        return None
    padded = (1,) * (len(sizes) - len(shape)) + shape
    out = tuple(n * r for n, r in zip(padded, sizes, strict=True))
    return out if math.prod(out) < 2**62 else None


def transposed(x: Tensor, args: tuple, kwargs: dict) -> Tensor | None:
    """F.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups,
    dilation)'s output on a meta (N, C, H, W) x: per axis (n − 1)·s − 2p + d·(k − 1) +
    output_padding + 1, weight.shape[1]·groups channels, channels-last where x's or the
    weight's strides suggest it (torch's rule for its CPU kernels), else contiguous; None
    for what torch refuses (channels that do not match, output_padding not below the stride
    or the dilation) or makes empty."""
    weight, bias = arg(args, kwargs, 1, "weight"), arg(args, kwargs, 2, "bias")
    groups = arg(args, kwargs, 6, "groups", 1)
    if not (isinstance(weight, Tensor) and weight.is_meta and weight.dim() == x.dim() == 4):
        return None
    if type(groups) is not int or groups < 1 or weight.dtype != x.dtype:
        return None
    if x.shape[1] != weight.shape[0] or weight.shape[0] % groups:
        return None
    channels = weight.shape[1] * groups
    if bias is not None and not (
        isinstance(bias, Tensor) and tuple(bias.shape) == (channels,) and bias.dtype == x.dtype
    ):
        return None
    s, p = _pair(arg(args, kwargs, 3, "stride", 1)), _pair(arg(args, kwargs, 4, "padding", 0))
    extra = _pair(arg(args, kwargs, 5, "output_padding", 0))
    d = _pair(arg(args, kwargs, 7, "dilation", 1))
    if not _valid(tuple(weight.shape[2:]), d, p, s) or extra is None or min(extra) < 0:
        return None
    if any(e >= s_ and e >= d_ for e, s_, d_ in zip(extra, s, d, strict=True)):
        return None
    size = tuple(
        (n - 1) * s_ - 2 * p_ + d_ * (k - 1) + e + 1
        for n, k, s_, p_, d_, e in zip(x.shape[2:], weight.shape[2:], s, p, d, extra, strict=True)
    )
    if min(size) < 1 or x.shape[0] == 0:
        return None
    last = torch.channels_last
    fmt = last if last in (suggest_memory_format(x), suggest_memory_format(weight)) else None
    shape = (x.shape[0], channels, *size)
    return torch.empty(
        shape, dtype=x.dtype, device=META, memory_format=fmt or torch.contiguous_format
    )
