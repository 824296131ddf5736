"""torch calls by what they do to a map: tables of functions by role, the window of a conv or
pool call, and output shapes made directly on the meta device where torch's meta kernel is
slow (all speed tricks, each with what it bought, measured on ResNet-50 at 224×224)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from cnnlab import geometry
from cnnlab.design.activations import ACTIVATIONS
from cnnlab.design.summary import axes
from cnnlab.design.summary.facts import Field, Window

T = torch.Tensor
# torch.empty(device="meta") parses the string on every call; sizes given one by one, as
# torch.empty(*shape, ...), cost 0.4 µs less to parse than a tuple (0.87 µs, 1.25) where the
# shape has an axis (torch.empty() of no size is an error)
META = torch.device("meta")


def fns(*names: str, owner: object = F) -> frozenset[Callable]:
    """The torch callables with these names that exist in this torch version."""
    return frozenset(getattr(owner, n) for n in names if hasattr(owner, n))


def both(*names: str) -> frozenset[Callable]:
    """torch.x and Tensor.x for each name."""
    return fns(*names, owner=torch) | fns(*names, owner=T)


def arg(args: tuple, kwargs: dict, i: int, name: str, default: Any = None) -> Any:
    return args[i] if len(args) > i else kwargs.get(name, default)


def pair(value: Any, default: tuple[int, int]) -> tuple[int, int]:
    if type(value) is tuple and len(value) == 2 and type(value[0]) is type(value[1]) is int:
        return value  # nn.Conv2d's own: already a pair of ints
    if value is None or (isinstance(value, (tuple, list)) and len(value) == 0):
        return default
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


# --- roles -----------------------------------------------------------------------------------

CONV = fns("conv2d")
PAD = fns("pad")
MAX_POOL = fns("max_pool2d", "max_pool2d_with_indices") | fns("max_pool2d", owner=torch)
AVG_POOL = fns("avg_pool2d")
SHAPE_ONLY_WINDOWS = CONV | fns("max_pool2d", "avg_pool2d")  # `meta_window` makes their output
ADAPTIVE = fns("adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_max_pool2d_with_indices")
ADAPTIVE_AVG = fns("adaptive_avg_pool2d")
WITH_INDICES = MAX_POOL | fns("adaptive_max_pool2d_with_indices")  # (values, indices)
LINEAR = fns("linear")
# shape changes that keep every value: spatial axes are followed by position
RESHAPE = both("flatten", "reshape", "unflatten", "squeeze", "unsqueeze", "squeeze_", "unsqueeze_")
RESHAPE |= fns("view", "view_as", "reshape_as", owner=T)
PERMUTE = both("permute", "transpose", "swapaxes", "swapdims", "movedim", "moveaxis", "t")
PERMUTE |= fns("transpose_", owner=T) | fns("T", "mT", owner=T)
SPLIT = both("chunk", "split", "tensor_split", "unbind", "narrow", "select", "split_with_sizes")
GETITEM = fns("__getitem__", owner=T)
JOIN = both("cat", "concat", "concatenate") | fns("cat", owner=torch)
STACK = both("stack")
# same values (or copies), broadcast from the right: follow each input's axes
SAME = both("contiguous", "clone", "detach", "expand", "expand_as", "repeat", "broadcast_to")
SAME |= fns("to", "type", "float", "double", "half", "bfloat16", "type_as", "requires_grad_")
SAME |= fns("contiguous", "clone", "detach", "to", owner=T)
REDUCE = both("mean", "sum", "amax", "amin", "max", "min", "std", "var", "logsumexp", "norm")
REDUCE |= both("softmax", "log_softmax") | fns("softmax", "log_softmax")
REDUCES_SHAPE = REDUCE - (both("softmax", "log_softmax") | fns("softmax", "log_softmax"))
# same shape, each value from the values at its own position (+ statistics: group and
# instance norm's span the map, but the field counts what a unit's value is computed from
# at inference, as for batch norm's running statistics)
NORM_LIKE = fns("batch_norm", "layer_norm", "group_norm", "instance_norm", "dropout")
NORM_LIKE |= fns("dropout1d", "dropout2d", "alpha_dropout", "feature_alpha_dropout", "normalize")
NORM_LIKE |= fns("rms_norm") | both("layer_norm", "dropout", "where", "clamp", "clip")
NORM_LIKE |= fns("where", "clamp", "clip", "masked_fill", "clamp_", owner=T)
# Linear in their tensor input (BatchNorm as at inference): a conv/linear pair with only
# these between is one linear map (§4.1). Max pooling is not linear; a sum of two branches
# needs two maps.
COLLAPSIBLE = fns("batch_norm", "dropout", "dropout1d", "dropout2d", "alpha_dropout")
COLLAPSIBLE |= both("contiguous", "flatten", "reshape") | fns("view", owner=T)


@functools.cache
def pointwise(func: Callable) -> bool:
    """torch tags `func`'s aten op pointwise (Tensor.__radd__ -> aten.add): its output at a
    position reads its inputs at that position only, broadcast from the right."""
    name = getattr(func, "__name__", "").strip("_")
    if name.startswith("r") and not hasattr(torch.ops.aten, name):  # __rmul__ -> mul
        name = name[1:]
    if name.startswith("i") and not hasattr(torch.ops.aten, name):  # __iadd__ -> add
        name = name[1:]
    name = name.rstrip("_")  # in place: relu_ -> relu
    packet = getattr(torch.ops.aten, name, None) if name else None
    if packet is None:
        return False
    try:
        return any(
            torch.Tag.pointwise in getattr(packet, overload).tags for overload in packet.overloads()
        )
    except (AttributeError, RuntimeError):
        return False


# --- windows ---------------------------------------------------------------------------------


@functools.lru_cache(4096)
def conv_window(kernel: tuple[int, int], stride: Any, padding: Any, dilation: Any) -> Window | None:
    """The Window of a conv2d call's kernel size and arguments (as F.conv2d takes them: an
    int or a pair, padding also "same" or "valid"; None for one torch refuses: it must run
    to raise). Cached within one summary: a net has a few distinct conv settings, asked
    about at every conv (1.3 µs, 0.3 from the cache)."""
    stride, dilation = pair(stride, (1, 1)), pair(dilation, (1, 1))
    if isinstance(padding, str):
        same = padding == "same"
        if padding not in ("same", "valid") or (same and stride != (1, 1)):  # torch refuses
            return None
        pads = list(map(geometry.same_padding, kernel, dilation)) if same else [(0, 0)] * 2
        before, after = tuple(p[0] for p in pads), tuple(p[1] for p in pads)
        return Window(kernel, stride, before, dilation, same=same, after=after)
    return Window(kernel, stride, pair(padding, (0, 0)), dilation)


def conv_window_of(
    kernel: tuple[int, int], stride: Any, padding: Any, dilation: Any
) -> Window | None:
    """conv_window, from its cache where the arguments can be a key (a list cannot)."""
    try:
        return conv_window(kernel, stride, padding, dilation)
    except TypeError:  # a list: not a cache key
        return conv_window.__wrapped__(kernel, stride, padding, dilation)


def window(func: Callable, args: tuple, kwargs: dict) -> Window | None:
    """The window of a conv/pool call, None for any other call (adaptive pools included)."""
    if func in CONV:
        if len(args) == 7:  # as nn.Conv2d calls it (`leaves.py`): 2 µs less than `arg`s
            _, weight, _, stride, padding, dilation, _ = args
        else:
            weight, stride = arg(args, kwargs, 1, "weight"), arg(args, kwargs, 3, "stride", 1)
            padding, dilation = (
                arg(args, kwargs, 4, "padding", 0),
                arg(args, kwargs, 5, "dilation", 1),
            )
        shape = weight.shape
        kernel = (shape[-2], shape[-1])
        return conv_window_of(kernel, stride, padding, dilation)
    if func in MAX_POOL or func in AVG_POOL:
        kernel = pair(arg(args, kwargs, 1, "kernel_size"), (1, 1))
        stride = pair(arg(args, kwargs, 2, "stride"), kernel)
        padding = pair(arg(args, kwargs, 3, "padding", 0), (0, 0))
        if func in AVG_POOL:
            return Window(kernel, stride, padding, (1, 1), bool(arg(args, kwargs, 4, "ceil_mode")))
        dilation = pair(arg(args, kwargs, 4, "dilation", 1), (1, 1))
        return Window(kernel, stride, padding, dilation, bool(arg(args, kwargs, 5, "ceil_mode")))
    return None


def field_step(rf: Field, kernel: int, stride: int, padding: int, dilation: int) -> Field:
    """geometry.rf_step (§3.2) without its argument checks, which `window_out` has made on
    the same window (geometry.rf_grow, its formula). (A field grows along the net, so a cache
    of geometry.rf_step's answers missed on most calls: 4 µs a window, now 1.)"""
    new = geometry.rf_grow(*rf, kernel, stride, padding, dilation)
    return tuple.__new__(Field, new)  # Field(*new) without its Python-level __new__ (0.3 µs)


def window_rf(rf: tuple[Field, Field], w: Window) -> tuple[Field, Field]:
    """The receptive field (height, width) after window w (`field_step` per axis); a 1×1
    window of stride 1 without padding (a pointwise conv: half a MobileNet's) keeps it."""
    if w.kernel == w.stride == (1, 1) and w.padding == (0, 0):
        return rf
    (k0, k1), (s0, s1), (p0, p1), (d0, d1) = w.kernel, w.stride, w.padding, w.dilation
    return field_step(rf[0], k0, s0, p0, d0), field_step(rf[1], k1, s1, p1, d1)


# geometry's functions check every argument; a ResNet-50 trace asks ~1,500 times about a few
# dozen distinct windows, so the answers are cached (2 ms of a 10 ms trace) within one
# summary: `summary` clears these caches when it starts (`clear_caches`), so nothing derived
# from one model makes a later call on it faster than a first call.
@functools.lru_cache(4096)
def window_out(size: tuple[int, int], w: Window) -> tuple[int, int]:
    """(H, W) out of window w over a `size` map (geometry.conv_output_size per axis, then
    ceil_mode's extra window where it starts inside the map); raises geometry's SpecError
    below 1×1. With ceil_mode, torch's ⌈(I + P_before + P_after − D(K − 1) − 1) / S⌉ + 1,
    less a last window that would start in the padding after the map."""
    out = []
    for i in (0, 1):
        k, s, d, pads = w.kernel[i], w.stride[i], w.dilation[i], w.pads(i)
        short = d * (k - 1) + 1 - size[i] - sum(pads)  # how much wider than the padded map
        if w.ceil_mode and short > 0 and s > short:  # torch allows it: one window, the whole map
            out.append(1)
            continue
        n = geometry.conv_output_size(size[i], k, pads, s, d)
        partial = (size[i] + sum(pads) - d * (k - 1) - 1) % s
        if w.ceil_mode and partial and n * s < size[i] + pads[0]:
            n += 1  # a last, partial window that starts inside the map
        out.append(n)
    return tuple(out)


def clear_caches() -> None:
    """Forget the windows of the last summary (see `window_out`)."""
    for cached in (window_out, conv_window, axes.reshape):
        cached.cache_clear()


def covers(size: int, w: Window, axis: int) -> bool:
    """The window is wider than its padded input (with ceil_mode torch then pools the whole
    map once: Hugging Face's EfficientNet pools with a kernel of 1,280)."""
    return w.dilation[axis] * (w.kernel[axis] - 1) + 1 > size + sum(w.pads(axis))


# --- meta outputs made from known shapes ------------------------------------------------------


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
    return torch.empty(shape[0], channels, *out_map, dtype=x.dtype, device=META)


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
    if x.dim() != 4 or min(x.shape) < 1 or not x.is_floating_point():
        return None
    size = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * 2
    if len(size) != 2:
        return None
    size = tuple(x.shape[2 + i] if s is None else s for i, s in enumerate(size))
    if not all(type(s) is int and s >= 1 for s in size):
        return None
    return (*x.shape[:2], *size)


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
    if func in PAD:  # first: Hugging Face's MobileNets pad before every conv
        if arg(args, kwargs, 2, "mode", "constant") != "constant":
            return None
        shape = pad_shape(x, arg(args, kwargs, 1, "pad", ()))  # meta F.pad: 270 µs a call
        return None if shape is None else torch.empty(*shape, dtype=x.dtype, device=META)
    at = SAME_SHAPE_INPLACE_AT.get(func, -1)
    if at != -1 and (func is not F.batch_norm or (x.dim() > 1 and _bn_fits(x, args, kwargs))):
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
    if func is F.layer_norm and _ln_fits(x, args, kwargs):  # meta: 60 ms a call (ConvNeXt)
        return new_meta(x)
    if func is F.adaptive_avg_pool2d and len(args) + len(kwargs) == 2:
        shape = adaptive_shape(x, arg(args, kwargs, 1, "output_size"))
        if shape is not None:
            return torch.empty(shape, dtype=x.dtype, device=META)
    return None


# meta kernels written in Python (torch._prims): cat 1.2 ms, mean 10 ms, a broadcast add or
# multiply 1-3 ms a call on this machine; their shapes are made here instead
BINARY = both("add", "sub", "mul", "div", "true_divide") | fns(
    *(f"__{op}__" for op in ("add", "radd", "iadd", "sub", "rsub", "isub", "mul", "rmul")),
    *(f"__{op}__" for op in ("imul", "truediv", "rtruediv", "itruediv")),
    "add_", "sub_", "mul_", "div_", owner=T,
)  # fmt: skip
INPLACE |= fns("__itruediv__", "div_", owner=T)
SHAPE_REDUCE = both("mean", "sum", "amax", "amin")
CAT = both("cat", "concat", "concatenate")


def _shortcut_shape(func: Callable, args: tuple, kwargs: dict, x: Tensor) -> tuple | None:
    """The output shape of a broadcast binary op, a cat or a reduction over given dims on
    meta float tensors of one dtype; None where torch must run (and raise its errors)."""
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
    if func in SHAPE_REDUCE and len(args) + len(kwargs) >= 2 and x.is_floating_point():
        if set(kwargs) - {"dim", "keepdim"}:
            return None
        dim, keep = arg(args, kwargs, 1, "dim"), arg(args, kwargs, 2, "keepdim", False)
        if not isinstance(dim, (int, tuple, list)) or isinstance(dim, bool):
            return None
        dims = _reduced(dim, x.dim())
        if not dims:
            return None
        return tuple(1 if i in dims else n for i, n in enumerate(x.shape) if keep or i not in dims)
    return None


def _reduced(dim: int | tuple | list, ndim: int) -> set[int]:
    """The axes a reduction's `dim` names, each once and in range; empty where torch must
    run: it raises on an axis out of range or named twice (x.mean(4), x.sum((2, -2)))."""
    dims = [dim] if isinstance(dim, int) else list(dim)
    if not ndim or not all(type(d) is int and -ndim <= d < ndim for d in dims):
        return set()
    found = {d % ndim for d in dims}
    return found if len(found) == len(dims) else set()


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
    if set(kwargs) - {"tensors", "dim"} or not isinstance(tensors, (list, tuple)) or not tensors:
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
        if len(other) != len(shape) or other[:dim] != before or other[dim + 1 :] != after:
            return None
        total += other[dim]
    return (*before, total, *after)


def pad_shape(x: Tensor, pad: Any) -> tuple[int, ...] | None:
    """x's shape after F.pad(x, pad) (pairs from the last axis back); None where the kernel
    must run (and raise torch's error)."""
    if not isinstance(pad, (tuple, list)) or len(pad) % 2 or len(pad) // 2 > x.dim():
        return None
    shape = list(x.shape)
    for i in range(len(pad) // 2):
        shape[-1 - i] += int(pad[2 * i]) + int(pad[2 * i + 1])
    return tuple(shape) if min(shape) >= 1 else None


def _ln_fits(x: Tensor, args: tuple, kwargs: dict) -> bool:
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


def _bn_fits(x: Tensor, args: tuple, kwargs: dict) -> bool:
    """F.batch_norm's running mean has x's channel count (else torch must raise)."""
    mean = arg(args, kwargs, 1, "running_mean")
    return mean is None or tuple(mean.shape) == (x.shape[1],)


# every function `made` may make the output of (a set lookup sends the others on at once)
MADE = (
    CAT
    | frozenset(SAME_SHAPE_INPLACE_AT)
    | SAME_SHAPE_BINARY
    | LINEAR
    | BINARY
    | SHAPE_REDUCE
    | PAD
    | {F.layer_norm, F.adaptive_avg_pool2d}
)
