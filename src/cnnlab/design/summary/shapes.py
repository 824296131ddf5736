"""Output shapes made directly on the meta device from the inputs' shapes, for the calls whose
meta kernels are slow (written in Python: torch._prims, torch._refs, decompositions): each
trick with what it bought, measured on ResNet-50 at 224×224 unless it says otherwise. Each
returns None where the call must run, so that torch raises its own error."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch._prims_common import suggest_memory_format

from cnnlab.design.activations import ACTIVATIONS
from cnnlab.design.summary.calls import (
    CONV,
    GETITEM,
    LINEAR,
    MAX_POOL,
    META,
    PAD,
    SHAPE_ONLY_WINDOWS,
    Refused,
    T,
    arg,
    both,
    fns,
    window_out,
)
from cnnlab.design.summary.facts import Window
from cnnlab.design.summary.fits import (
    CONTIGUOUS_SAME,
    SLOW_SAME,
    bn_fits,
    gn_fits,
    ln_fits,
    mask_fits,
)
from cnnlab.design.summary.layouts import dense, layout, suggested
from cnnlab.design.summary.rearrange import REARRANGED, RESHAPED, rearranged, reshaped
from cnnlab.design.summary.reductions import (
    SHAPE_REDUCE,
    SOFTMAX,
    VECTOR_NORM,
    norm_shape,
    reduced_shape,
    softmax_fits,
)


def new_meta(x: Tensor) -> Tensor:
    """A new tensor of meta x's shape and dtype: x.detach() makes one in 0.4 µs, torch.empty
    in 2.1 µs (a meta tensor has no data to share)."""
    return x.detach()


def meta_window(
    func: Callable, args: tuple, kwargs: dict, x: Tensor, w: Window, out_map: tuple | None
) -> Tensor | None:
    """The output of a conv/pool on a meta (B, C, H, W) input, made from its known shape
    (a meta conv kernel costs 25 µs, a meta pool with ceil_mode 70 µs: 13 % of SqueezeNet's
    trace); None where the kernel must run: a real input, pool indices, a pool padded by
    more than half its kernel, or channels that do not match (the kernel then raises
    torch's error). out_map: `window_out` of x's (H, W), if known."""
    if not x.is_meta or x.dim() != 4 or func not in SHAPE_ONLY_WINDOWS:
        return None
    shape = x.shape
    channels = shape[1]
    if func in CONV:
        if len(args) == 7:  # as nn.Conv2d calls it
            weight, groups = args[1], args[6]
        else:
            weight, groups = arg(args, kwargs, 1, "weight"), arg(args, kwargs, 6, "groups", 1)
        kernel = weight.shape
        if kernel[1] * groups != channels or w.ceil_mode:
            return None
        channels = kernel[0]
    elif w.padding[0] > w.kernel[0] // 2 or w.padding[1] > w.kernel[1] // 2:
        return None
    elif func in MAX_POOL and arg(args, kwargs, 6, "return_indices", False):
        return None
    if out_map is None:
        out_map = window_out((shape[2], shape[3]), w)
    fmt = layout(x, weight) if func in CONV else layout(x)
    return torch.empty(shape[0], channels, *out_map, dtype=x.dtype, device=META, memory_format=fmt)


def _meta_as(t: Any, x: Tensor) -> bool:
    return isinstance(t, Tensor) and t.is_meta and t.dtype == x.dtype


def linear_shape(x: Tensor, weight: Any, bias: Any) -> tuple[int, ...] | None:
    """The output shape of F.linear(x, weight, bias) on meta: (*x.shape[:-1], out); None
    where the kernel must run (and raise torch's error)."""
    if not isinstance(weight, Tensor) or weight.dim() != 2 or x.dim() == 0:
        return None
    out, features = weight.shape
    if x.shape[-1] != features or not x.is_floating_point() or not _meta_as(weight, x):
        return None
    if bias is not None and not (_meta_as(bias, x) and tuple(bias.shape) == (out,)):
        return None
    return (*x.shape[:-1], out)


def adaptive_shape(x: Tensor, output_size: Any) -> tuple[int, ...] | None:
    """The output shape of F.adaptive_avg_pool2d(x, output_size) on a (B, C, H, W) meta
    input; None where the kernel must run."""
    shape = x.shape
    if len(shape) != 4 or min(shape) < 1 or not x.is_floating_point():
        return None
    size = output_size if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    if len(size) != 2:
        return None
    h, w = size  # (no generators: SE gates pool 16 times a MobileNet V3, 1 µs each)
    h, w = shape[2] if h is None else h, shape[3] if w is None else w
    if type(h) is not int or type(w) is not int or h < 1 or w < 1:
        return None
    return (shape[0], shape[1], h, w)


def adaptive_1d(x: Tensor, output_size: Any) -> Tensor | None:
    """F.adaptive_avg_pool1d(x, output_size)'s output on a (B, C, L) meta x, in the layout
    torch's kernel gives it: contiguous from a contiguous x; from x of channels-last strides
    (a (B, L, C) map of tokens transposed, as Swin's pooler reads it) the same, (B, C, n)
    with strides (n·C, 1, C). None where the kernel must run (another layout, one that is
    both, an empty x, a size torch refuses)."""
    size = (
        output_size[0]
        if type(output_size) in (tuple, list) and len(output_size) == 1
        else output_size
    )
    if x.dim() != 3 or min(x.shape) < 1 or not x.is_floating_point():
        return None
    if type(size) is not int or size < 1:
        return None
    b, c, n = x.shape
    if x.stride(1) == 1 and c > 1:  # (when also contiguous, as (B, C, 1) is: torch decides)
        if n == 1 or x.stride() != (n * c, 1, c):
            return None
        return torch.empty_strided((b, c, size), (size * c, 1, c), dtype=x.dtype, device=META)
    return torch.empty((b, c, size), dtype=x.dtype, device=META) if x.is_contiguous() else None


POOL_1D = fns("adaptive_avg_pool1d", owner=torch)


def _inplace_at(func: Callable) -> int | None:
    """Position of func's `inplace` argument, None if it has none."""
    try:
        names = list(inspect.signature(func).parameters)
    except (TypeError, ValueError):  # a builtin (torch.sigmoid): no in-place flag
        return None
    return names.index("inplace") if "inplace" in names else None


# Ops whose output has the input's shape, whose meta kernels are slow (BatchNorm: 0.7 ms a
# call, 30 of ResNet-50's 40 ms): on meta their output is made directly. Value: the position
# of the `inplace` argument, if any. The activations are the table's (not the in-place
# `_` forms, which must return their input).
SAME_SHAPE_INPLACE_AT = {
    f: _inplace_at(f)
    for f in (
        F.batch_norm,
        F.dropout,
        F.dropout2d,
        *(f for a in ACTIVATIONS.values() for f in a.functions if not f.__name__.endswith("_")),
    )
    if f is not F.prelu and getattr(f, "__module__", "") != "torch._tensor"
}
INPLACE = fns("add_", "sub_", "mul_", "__iadd__", "__isub__", "__imul__", owner=T)
SAME_SHAPE_BINARY = INPLACE | fns("add", "sub", "mul", "__add__", "__sub__", "__mul__", owner=T)


def made(func: Callable, args: tuple, kwargs: dict) -> Tensor | None:
    """func's output on meta inputs, made directly from their shapes for shape-keeping,
    linear, binary, cat, reduce, pad and adaptive calls (meta kernels in Python: linear
    290 µs, adaptive pooling 140 µs); None where func must run (any other call, a real
    input, or arguments torch would refuse, so that torch raises its own error)."""
    if func not in MADE:  # views, slices, chunks...: their C++ meta kernels are quick
        return None
    x = args[0] if args else None
    if type(x) in (list, tuple) and func in CAT and x and isinstance(x[0], Tensor):
        shape = _cat_shape(args, kwargs)
        if shape is not None:
            return torch.empty(shape, dtype=x[0].dtype, device=META)
    if not isinstance(x, Tensor) or not x.is_meta:
        return None
    if func in RESHAPED:  # a copying reshape (meta: 85 µs a call), else torch's quick view
        return reshaped(func, args, kwargs, x)
    if func in GETITEM:  # meta: 90 µs a call (LeViT's attention biases)
        shape = gathered_shape(x, args[1]) if len(args) == 2 and not kwargs else None
        return None if shape is None else torch.empty(shape, dtype=x.dtype, device=META)
    if func in PAD:  # first: Hugging Face's MobileNets pad before every conv
        if arg(args, kwargs, 2, "mode", "constant") != "constant":
            return None
        shape = pad_shape(x, arg(args, kwargs, 1, "pad", ()))  # meta F.pad: 270 µs a call
        if shape is None:
            return None
        if not any(arg(args, kwargs, 1, "pad", ())):  # torch clones x: a dense x's strides
            return new_meta(x) if dense(x) else None  # (HF's MobileNets pad 1×1 convs by 0)
        return torch.empty(shape, dtype=x.dtype, device=META, memory_format=suggested(x))
    at = SAME_SHAPE_INPLACE_AT.get(func, -1)
    if at != -1 and (func is not F.batch_norm or (x.dim() > 1 and bn_fits(x, args, kwargs))):
        if at is not None and arg(args, kwargs, at, "inplace", False):
            return x
        return new_meta(x)
    if func in SAME_SHAPE_BINARY and not kwargs and len(args) == 2:
        y = args[1]  # `out += identity`: the same shape and dtype, no broadcasting
        if isinstance(y, Tensor) and y.shape == x.shape and y.dtype == x.dtype:
            return x if func in INPLACE else new_meta(x)
    if func in LINEAR:
        shape = linear_shape(x, arg(args, kwargs, 1, "weight"), arg(args, kwargs, 2, "bias"))
        if shape is not None:
            return torch.empty(shape, dtype=x.dtype, device=META)
    shape = _shortcut_shape(func, args, kwargs, x)
    if shape is not None:
        return x if func in INPLACE else torch.empty(shape, dtype=x.dtype, device=META)
    return _made_slow(func, args, kwargs, x)


def _made_slow(func: Callable, args: tuple, kwargs: dict, x: Tensor) -> Tensor | None:
    """`made` for the calls whose meta kernels torch writes in Python and which are rarer
    (milliseconds a call: layer and group norm, softmax, attention, interpolation...).
    Matrix products first: a token net's most frequent of them (LeViT: 28 a trace)."""
    if func in MATMUL:  # meta: 0.16 ms a call (LeViT)
        if len(args) != 2 or kwargs:
            return None
        shape = matmul_shape(x, args[1])
        return None if shape is None else torch.empty(shape, dtype=x.dtype, device=META)
    if func in SOFTMAX and softmax_fits(args, kwargs, x):
        if x.is_contiguous():
            return new_meta(x)
        return torch.empty(tuple(x.shape), dtype=x.dtype, device=META)  # torch's: contiguous
    if func is F.layer_norm and ln_fits(x, args, kwargs):  # meta: 60 ms a call (ConvNeXt)
        return norm_out(func, x)
    if func is F.adaptive_avg_pool2d and len(args) + len(kwargs) == 2:
        shape = adaptive_shape(x, arg(args, kwargs, 1, "output_size"))
        if shape is not None:
            return torch.empty(shape, dtype=x.dtype, device=META, memory_format=layout(x))
    if func in POOL_1D and len(args) + len(kwargs) == 2:  # meta: 0.3-1.9 ms (FocalNet)
        return adaptive_1d(x, arg(args, kwargs, 1, "output_size"))
    if func is F.group_norm and gn_fits(x, args, kwargs):  # meta: 1-5 ms a call (BiT)
        return norm_out(func, x)
    if func is F.scaled_dot_product_attention:  # meta: 2.3 ms a call (SegFormer)
        shape = attention_shape(x, args, kwargs)
        return None if shape is None else torch.empty(shape, dtype=x.dtype, device=META)
    if func in SLOW_SAME and SLOW_SAME[func](x, args, kwargs):  # meta: 0.5-1.6 ms a call
        return new_meta(x)
    if func in CONTIGUOUS_SAME and CONTIGUOUS_SAME[func](x, args, kwargs):
        return torch.empty(tuple(x.shape), dtype=x.dtype, device=META)
    if func is F.interpolate:  # meta: 5-8 ms a call (MONAI's SegResNet, PVT)
        shape = interpolate_shape(x, args, kwargs)
        if shape is None:
            return None
        return torch.empty(shape, dtype=x.dtype, device=META, memory_format=layout(x))
    if func in REARRANGED:  # meta: F.unfold and F.fold 2 ms a call (MobileViT v2)
        return rearranged(func, args, kwargs, x)
    return None


def norm_out(func: Callable, x: Tensor) -> Tensor | None:
    """F.layer_norm's or F.group_norm's output on meta x in the layout torch's CPU kernels
    give it (strides checked against theirs in the tests), so that a later `.view` fails or
    runs as in torch: layer norm's is always contiguous; group norm's follows x's suggested
    layout (channels-last where x is so, else contiguous; torch's meta kernel makes it
    contiguous). None (torch runs) for a group norm on an x whose strides are channels-last
    ordered but not dense, where the layout is not sure. x.detach() where x is contiguous;
    a non-contiguous x asks torch's `suggest_memory_format` (Python, a few µs: rare)."""
    if x.is_contiguous():
        return new_meta(x)
    shape = tuple(x.shape)
    if func is F.layer_norm:
        return torch.empty(shape, dtype=x.dtype, device=META)
    fmt = suggest_memory_format(x)  # torch's rule (a dense channels-last x of one row: not)
    if fmt != torch.contiguous_format and not x.is_contiguous(memory_format=fmt):
        return None
    return torch.empty(shape, dtype=x.dtype, device=META, memory_format=fmt)


# meta kernels written in Python (torch._prims): cat 1.2 ms, mean 10 ms, a broadcast add or
# multiply 1-3 ms a call on this machine; their shapes are made here instead
BINARY = both("add", "sub", "mul", "div", "true_divide") | fns(
    *(f"__{op}__" for op in ("add", "radd", "iadd", "sub", "rsub", "isub", "mul", "rmul")),
    *(f"__{op}__" for op in ("imul", "truediv", "rtruediv", "itruediv")),
    "add_", "sub_", "mul_", "div_", owner=T,
)  # fmt: skip
INPLACE |= fns("__itruediv__", "div_", owner=T)
CAT = both("cat", "concat", "concatenate")


def _shortcut_shape(func: Callable, args: tuple, kwargs: dict, x: Tensor) -> tuple | None:
    """The output shape of a broadcast binary op, a cat, a reduction or a vector norm over
    given dims (`reductions.py`) on meta float tensors of one dtype; None where torch must
    run (and raise its errors)."""
    if func in BINARY and len(args) == 2 and not kwargs:
        y = args[1]
        if isinstance(y, Tensor):
            if not (y.is_meta and y.dtype == x.dtype and x.is_floating_point()):
                return None
            shape = broadcast(tuple(x.shape), tuple(y.shape))
            if shape is None:
                return None
        elif type(y) in (int, float) and x.is_floating_point():
            shape = tuple(x.shape)
        else:
            return None
        return shape if func not in INPLACE or shape == tuple(x.shape) else None
    if func in CAT:
        return _cat_shape(args, kwargs)
    if func in SHAPE_REDUCE:
        return reduced_shape(func, args, kwargs, x)
    if func in VECTOR_NORM:  # meta: 0.7 ms a call (ConvNeXt V2's GRN)
        return norm_shape(func, args, kwargs, x)
    return None


def broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    """The shape of an element-wise op on shapes a and b, aligned from the right (a length
    of 1 stretches to the other's); None where they do not broadcast. torch.broadcast_shapes
    is Python (torch._refs): 50 µs a call, a tenth of MobileNet V3's trace on its gates."""
    if a == b:
        return a
    if len(a) < len(b):
        a, b = b, a
    lead = len(a) - len(b)
    out = list(a[:lead])
    for m, n in zip(a[lead:], b, strict=True):
        if m != n and m != 1 and n != 1:
            return None
        out.append(n if m == 1 else m)
    return tuple(out)


def _cat_shape(args: tuple, kwargs: dict) -> tuple | None:
    """The shape of torch.cat(tensors, dim) on meta tensors of one dtype whose shapes agree
    but along `dim`; None where torch must run (and raise its error)."""
    tensors, dim = arg(args, kwargs, 0, "tensors"), arg(args, kwargs, 1, "dim", 0)
    if kwargs and not _CAT_KEYS.issuperset(kwargs):
        return None
    if not isinstance(tensors, (list, tuple)) or not tensors:
        return None
    first = tensors[0]
    if not isinstance(dim, int) or not isinstance(first, Tensor) or first.dim() == 0:
        return None
    shape, dtype = tuple(first.shape), first.dtype
    if not -len(shape) <= dim < len(shape):  # torch's IndexError, not a wrapped-around dim
        return None
    dim %= len(shape)
    before, after, total = shape[:dim], shape[dim + 1 :], 0
    for t in tensors:  # a loop over plain tuples: torch.Size slices cost 0.3 µs each
        if not (isinstance(t, Tensor) and t.is_meta and t.dtype == dtype):
            return None
        other = tuple(t.shape)
        if other != shape:  # (equal halves, GhostNet's and ShuffleNet's: no slices)
            if len(other) != len(shape) or other[:dim] != before or other[dim + 1 :] != after:
                return None
        total += other[dim]
    return (*before, total, *after)


_CAT_KEYS = frozenset({"tensors", "dim"})


def pad_shape(x: Tensor, pad: Any) -> tuple[int, ...] | None:
    """x's shape after F.pad(x, pad) (pairs from the last axis back); None where the kernel
    must run (and raise torch's error)."""
    if not isinstance(pad, (tuple, list)) or len(pad) % 2 or len(pad) // 2 > x.dim():
        return None
    shape = list(x.shape)
    for i in range(len(pad) // 2):
        shape[-1 - i] += int(pad[2 * i]) + int(pad[2 * i + 1])
    return tuple(shape) if min(shape) >= 1 else None


def attention_shape(q: Tensor, args: tuple, kwargs: dict) -> tuple[int, ...] | None:
    """F.scaled_dot_product_attention(q, k, v)'s output shape, (..., L, Ev), where q, k, v
    are meta tensors of one dtype and one batch shape, k has q's features and v's positions,
    no grouped heads are given, and a mask (Swin's windows and shifts: meta 5 ms a call)
    is a meta one, boolean or of q's dtype, that broadcasts to the scores' (..., L, S) and
    comes without is_causal (else torch must run, and raise its errors)."""
    k, v = arg(args, kwargs, 1, "key"), arg(args, kwargs, 2, "value")
    mask = arg(args, kwargs, 3, "attn_mask")
    if arg(args, kwargs, 7, "enable_gqa"):
        return None
    if mask is not None and not mask_fits(mask, q, k, arg(args, kwargs, 5, "is_causal")):
        return None
    if not q.is_floating_point():
        return None
    if not all(isinstance(t, Tensor) and t.is_meta and t.dtype == q.dtype for t in (k, v)):
        return None
    n = q.dim()
    if n < 2 or k.dim() != n or v.dim() != n or not q.shape[:-2] == k.shape[:-2] == v.shape[:-2]:
        return None
    if k.shape[-1] != q.shape[-1] or k.shape[-2] != v.shape[-2]:
        return None
    return (*q.shape[:-1], v.shape[-1])


_RESAMPLED = ("nearest", "nearest-exact", "bilinear", "bicubic")


def interpolate_shape(x: Tensor, args: tuple, kwargs: dict) -> tuple[int, ...] | None:
    """F.interpolate(x, size, scale_factor, mode, align_corners, recompute_scale_factor,
    antialias)'s output shape on a (B, C, H, W) map: `size`, or ⌊n · scale⌋ per axis as
    torch computes it; None where torch must run (another mode, both or neither of size and
    scale_factor, align_corners with a nearest mode, antialias, an x neither contiguous nor
    channels-last: torch picks the output's layout from x's strides, and a later `.view`
    depends on it)."""
    size, scale = arg(args, kwargs, 1, "size"), arg(args, kwargs, 2, "scale_factor")
    mode, align = arg(args, kwargs, 3, "mode", "nearest"), arg(args, kwargs, 4, "align_corners")
    if x.dim() != 4 or not x.is_floating_point() or mode not in _RESAMPLED:
        return None
    if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
        return None
    if arg(args, kwargs, 6, "antialias") or (align is not None and mode.startswith("nearest")):
        return None
    if size is not None and scale is None:
        if arg(args, kwargs, 5, "recompute_scale_factor"):
            return None
        out = (size, size) if type(size) is int else tuple(size)
        ok = len(out) == 2 and all(type(n) is int and n >= 1 for n in out)
    elif scale is not None and size is None:
        scales = (scale, scale) if type(scale) in (int, float) else tuple(scale)
        if len(scales) != 2 or not all(type(f) in (int, float) and f > 0 for f in scales):
            return None
        out = tuple(int(n * f) for n, f in zip(x.shape[2:], scales, strict=True))
        ok = min(out) >= 1
    else:
        return None
    return (*x.shape[:2], *out) if ok else None


MATMUL = both("matmul") | fns("__matmul__", owner=T)


def matmul_shape(a: Tensor, b: Any) -> tuple[int, ...] | None:
    """a @ b's shape for two meta float tensors of one dtype and at least 2-D, (..., n, k) @
    (..., k, m) -> (broadcast batch, n, m); None where torch must run (1-D operands, inner
    sizes that differ, batch shapes that do not broadcast)."""
    if not (isinstance(b, Tensor) and b.is_meta and b.dtype == a.dtype and a.is_floating_point()):
        return None
    if a.dim() < 2 or b.dim() < 2 or a.shape[-1] != b.shape[-2]:
        return None
    batch = broadcast(tuple(a.shape[:-2]), tuple(b.shape[:-2]))
    return None if batch is None else (*batch, a.shape[-2], b.shape[-1])


def gathered_shape(x: Tensor, key: Any) -> tuple[int, ...] | None:
    """The shape of x[key] where key picks along one dim by a meta integer tensor of indices,
    after whole slices only (`x[idx]`, `x[:, idx]`, `x[:, :, idx]`): that dim replaced by
    the index's shape, on a contiguous x (torch's output is contiguous then); None for any
    other key (slices, masks, several indices, Ellipsis: torch makes those). A meta kernel
    cannot check index values: an index that is the twin of a model's tensor carries its
    values' range (`note_range`) and one out of x's dim is refused (`refusals.Refused`: the
    real forward raises torch's IndexError); other indices' values go unchecked, an upper
    bound of what torch runs. A 0-d index is a select (a view)."""
    if isinstance(key, Tensor):
        at, index = 0, key
    elif type(key) is tuple and key and isinstance(key[-1], Tensor):
        at, index = len(key) - 1, key[-1]
        if not all(type(k) is slice and k == _ALL for k in key[:at]):
            return None
    else:
        return None
    if not (index.is_meta and index.dtype in _INDEX_TYPES and index.dim()) or at >= x.dim():
        return None
    bounds = getattr(index, _RANGE, None)
    if bounds is not None and not -x.shape[at] <= bounds[0] <= bounds[1] < x.shape[at]:
        bad = bounds[1] if bounds[1] >= x.shape[at] else bounds[0]
        raise Refused(f"index {bad} is out of bounds for dimension {at} with size {x.shape[at]}")
    if not x.is_contiguous():
        return None
    shape = x.shape
    return (*shape[:at], *index.shape, *shape[at + 1 :])


_ALL = slice(None)
_INDEX_TYPES = (torch.int64, torch.int32)
_RANGE = "_cnnlab_index_range"
_RANGED = 1 << 18  # at most this many values, read once a trace (LeViT: 14 buffers, 0.2 ms)


def note_range(twin: Tensor, t: Tensor) -> None:
    """Gives the meta twin of a model's integer tensor `t` (LeViT's attention bias indices)
    the range of t's values, read once a trace, for `gathered_shape` to check an index
    against the dim it picks from (which meta cannot)."""
    if t.dtype in _INDEX_TYPES and 0 < t.numel() <= _RANGED and not t.is_meta:
        low, high = torch.aminmax(t)  # one pass: 13 µs on LeViT's 38k, min and max 21
        setattr(twin, _RANGE, (int(low), int(high)))


MADE = (
    CAT | frozenset(SAME_SHAPE_INPLACE_AT) | SAME_SHAPE_BINARY | LINEAR | BINARY | SHAPE_REDUCE
    | VECTOR_NORM | SOFTMAX | PAD | POOL_1D | MATMUL | GETITEM | REARRANGED | RESHAPED
    | {F.layer_norm, F.adaptive_avg_pool2d, F.group_norm, F.scaled_dot_product_attention}
    | {F.interpolate} | frozenset(SLOW_SAME) | frozenset(CONTIGUOUS_SAME)
)  # fmt: skip
