"""Output shapes of calls that rearrange values without mixing them, made on the meta device
from their inputs' shapes where torch's meta kernels are slow (Python decompositions): F.unfold
2.1 ms and F.fold 1.6 ms a call on 256 channels of 16×16 (MobileViT v2 calls each three
times: about half its trace), Tensor.repeat 28–215 µs (SwiftFormer), a copying .contiguous()
26 µs (PVT v2, SegFormer) against 3 µs for torch.empty; F.conv_transpose2d, a fold of a
matrix product (col2im), 64 µs a call (MONAI's U-Net: a tenth of its trace); and a reshape or
flatten that no view gives, which torch makes by a copy (`reshaped`: 85 µs a call). Each
returns None where torch must run (and raise its own error on arguments it refuses)."""

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
FLATTEN = frozenset({T.flatten, torch.flatten})
RESHAPED = FLATTEN | {T.reshape, torch.reshape, T.reshape_as}  # `reshaped` may make them
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


def reshaped(func: Callable, args: tuple, kwargs: dict, x: Tensor) -> Tensor | None:
    """x.reshape(shape), x.flatten(start, end) or x.reshape_as(y) on a meta x of which no view
    has the new shape: torch copies x into a new contiguous tensor of it (ATen's reshape: a
    contiguous clone, viewed), through a meta kernel written in Python (85 µs a call: the
    heads merged after a transpose in LeViT's, PVT's, SegFormer's and Hiera's attention),
    here torch.empty (2 µs). None where torch must run: a contiguous or empty x, a shape a
    view of x gives (torch's C++ path, 2 µs), or one torch refuses (it raises)."""
    if x.is_contiguous():
        return None
    shape = tuple(x.shape)
    new = _new_shape(func, args, kwargs, shape)
    if new is None or 0 in shape or view_strides(shape, x.stride(), new) is not None:
        return None
    return torch.empty(new, dtype=x.dtype, device=META)


def _new_shape(func: Callable, args: tuple, kwargs: dict, shape: tuple) -> tuple | None:
    """The shape a reshape, flatten or reshape_as call asks of a tensor of `shape` (a -1
    inferred); None for arguments it does not take as they are given here, or that torch
    refuses (sizes whose product is not x's, two -1s, a dim out of range)."""
    if kwargs:
        return None
    if func in FLATTEN:
        return _flattened(shape, args[1:])
    if func is T.reshape_as:
        other = args[1] if len(args) == 2 else None
        new = tuple(other.shape) if isinstance(other, Tensor) else None
        return new if new is not None and math.prod(new) == math.prod(shape) else None
    sizes = args[1:]
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list, torch.Size)):
        sizes = tuple(sizes[0])
    elif func is torch.reshape:  # torch.reshape(x, shape): the shape as one sequence
        return None
    if not all(type(s) is int and s >= -1 for s in sizes) or sizes.count(-1) > 1:
        return None
    numel, known = math.prod(shape), math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if known == 0 or numel % known:
            return None
        return tuple(numel // known if s == -1 else s for s in sizes)
    return tuple(sizes) if known == numel else None


def _flattened(shape: tuple, dims: tuple) -> tuple | None:
    """flatten(start_dim=0, end_dim=-1)'s shape; None where start and end are one dim (torch
    returns x itself) or torch refuses them."""
    n = len(shape)
    if len(dims) > 2 or not all(type(d) is int for d in dims) or n == 0:
        return None
    start, end = (*dims, *(0, -1)[len(dims) :])
    if not (-n <= start < n and -n <= end < n):
        return None
    start, end = start % n, end % n
    if start >= end:
        return None
    return (*shape[:start], math.prod(shape[start : end + 1]), *shape[end + 1 :])


def view_strides(shape: tuple, stride: tuple, new: tuple) -> tuple | None:
    """ATen's computeStride: the strides of a view of shape `new` of a non-empty tensor of
    `shape` and `stride`, None where no view has it (torch's reshape then copies). Runs of
    dims that are contiguous with each other (a chunk) may be split or merged; no dim of
    `new` may span two chunks."""
    if not shape:
        return (1,) * len(new)
    out = [0] * len(new)
    view_d = len(new) - 1
    base, tensor_numel, view_numel = stride[-1], 1, 1
    for d in range(len(shape) - 1, -1, -1):
        tensor_numel *= shape[d]
        if d == 0 or (shape[d - 1] != 1 and stride[d - 1] != tensor_numel * base):
            while view_d >= 0 and (view_numel < tensor_numel or new[view_d] == 1):
                out[view_d] = view_numel * base
                view_numel *= new[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if d > 0:
                base, tensor_numel, view_numel = stride[d - 1], 1, 1
    return tuple(out) if view_d == -1 else None


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


def transposed_size(in_map: tuple, kernel: tuple, s, p, d, extra) -> tuple[int, ...] | None:
    """A transposed conv's output map, per axis (n − 1)·s − 2p + d·(k − 1) + output_padding
    + 1; None where torch refuses (a window not valid, output padding negative or not below
    the stride or the dilation) or makes it empty. Pairs of ints, or None (`_pair` of what
    is not one)."""
    if not _valid(kernel, d, p, s) or extra is None or min(extra) < 0:
        return None
    if any(e >= s_ and e >= d_ for e, s_, d_ in zip(extra, s, d, strict=True)):
        return None
    size = tuple(
        (n - 1) * s_ - 2 * p_ + d_ * (k - 1) + e + 1
        for n, k, s_, p_, d_, e in zip(in_map, kernel, s, p, d, extra, strict=True)
    )
    return None if min(size) < 1 else size


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
    size = transposed_size(tuple(x.shape[2:]), tuple(weight.shape[2:]), s, p, d, extra)
    if size is None or x.shape[0] == 0:
        return None
    last = torch.channels_last
    fmt = last if last in (suggest_memory_format(x), suggest_memory_format(weight)) else None
    shape = (x.shape[0], channels, *size)
    return torch.empty(
        shape, dtype=x.dtype, device=META, memory_format=fmt or torch.contiguous_format
    )
