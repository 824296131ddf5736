"""torch calls by what they do to a map: tables of functions by role and the window of a conv
or pool call (`shapes.py` makes outputs on meta where torch's meta kernel is slow; each speed
trick with what it bought, measured on ResNet-50 at 224×224)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab import geometry
from cnnlab.design.summary import axes
from cnnlab.design.summary.blocked import Blocked, window_pair
from cnnlab.design.summary.facts import Field, Window, record


class Refused(RuntimeError):
    """A call torch would refuse on real data, found on meta (`refusals.py`'s docstring):
    here, below `refusals.py` and `shapes.py`, which both raise it."""


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
LP_POOL = fns("lp_pool2d")  # avg_pool2d's window, of x^p (nn.LPPool2d)
SHAPE_ONLY_WINDOWS = CONV | fns("max_pool2d", "avg_pool2d")  # `meta_window` makes their output
WINDOWED = CONV | MAX_POOL | AVG_POOL | LP_POOL  # the calls `window` gives a window
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
ROLL = both("roll")  # a cyclic shift (Swin's shifted windows)
JOIN = both("cat", "concat", "concatenate") | fns("cat", owner=torch)
STACK = both("stack")
# same values (or copies), broadcast from the right: follow each input's axes
SAME = both("contiguous", "clone", "detach", "expand", "expand_as", "repeat", "broadcast_to")
SAME |= fns("to", "type", "float", "double", "half", "bfloat16", "type_as", owner=T)
SAME |= fns("requires_grad_", owner=T)
SAME |= fns("contiguous", "clone", "detach", "to", owner=T)
SAME |= fns("as_tensor", "asarray", owner=torch)  # of a tensor: the tensor (MONAI's HighResNet)
SAME |= both("conj", "real", "resolve_conj", "resolve_neg")  # of a real tensor: itself
REDUCE = both("mean", "sum", "amax", "amin", "max", "min", "std", "var", "logsumexp", "norm")
REDUCE |= both("argmax", "argmin")  # where max is: read from what max reads (a class map)
_SOFTMAXES = both("softmax", "log_softmax") | fns("softmax", "log_softmax", "softmin")
REDUCE |= _SOFTMAXES  # softmin(x) = softmax(−x)
REDUCES_SHAPE = REDUCE - _SOFTMAXES
# calls whose output is probabilities (in [0, 1]; softmax's summing to 1): the
# probabilities-out lint's, where one makes the model's output. Not log_softmax: cross-entropy
# of log-probabilities is unchanged (log_softmax(log_softmax(x)) = log_softmax(x)).
PROBABILITIES = both("softmax", "sigmoid", "sigmoid_") | fns("softmax", "softmin", "sigmoid")
PROBABILITIES |= fns("softmax", "expit", owner=torch.special)
PROBABILITY_MODULES = frozenset({nn.Softmax, nn.Softmax2d, nn.Sigmoid})
# calls that only reshape, copy, cast or broadcast (nn.Flatten's, a `.view`, `.double()`, an
# `.expand`): probabilities stay probabilities through them, as train.guard passes their
# autograd nodes (View, ToCopy, Expand, ...; a detach leaves none for it to read)
KEEP_PROBABILITIES = RESHAPE | both("contiguous", "clone", "detach", "expand", "broadcast_to")
KEEP_PROBABILITIES |= fns("to", "float", "double", "half", "bfloat16", "type", "type_as", owner=T)
KEEP_PROBABILITIES |= fns("expand_as", owner=T)
# ... and post-ops that leave cross-entropy's bound as it is: a clamp or clip keeps them in
# [0, 1] (clamp(p, eps, 1 − eps) before a log); dropout zeros some and scales the rest (none
# at eval); a number added or subtracted moves every value alike, which softmax ignores
# (CE(p + c) = CE(p)), 1 − p stays in [0, 1], and a scale by at most 1 (p · 1, p / 2) only
# narrows the gap of at most 1 the bound rests on (`keeps_probabilities`). Not log or
# log_softmax (log-probabilities: their cross-entropy is the logits'), nor a larger scale (a
# temperature: p · 100 widens the gap past the bound).
KEEP_PROBABILITIES |= both("clamp", "clip", "clamp_", "clip_")
KEEP_PROBABILITIES |= fns("dropout", "dropout1d", "dropout2d", "dropout3d") | both("dropout")
SHIFTS = both("add", "sub", "subtract", "add_", "sub_")
SHIFTS |= fns("__add__", "__radd__", "__iadd__", "__sub__", "__rsub__", "__isub__", owner=T)
SCALES = both("mul", "multiply", "mul_") | fns("__mul__", "__rmul__", "__imul__", owner=T)
DIVIDES = both("div", "divide", "true_divide", "div_") | fns("__truediv__", "__itruediv__", owner=T)
ENDS = PROBABILITIES | KEEP_PROBABILITIES | SHIFTS | SCALES | DIVIDES  # one set to test against
# same shape, each value from the values at its own position (+ statistics: group and
# instance norm's span the map, but the field counts what a unit's value is computed from
# at inference, as for batch norm's running statistics)
NORM_LIKE = fns("batch_norm", "layer_norm", "group_norm", "instance_norm", "dropout")
NORM_LIKE |= fns("dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout")
NORM_LIKE |= fns("normalize")
NORM_LIKE |= fns("rms_norm") | both("layer_norm", "dropout", "where", "clamp", "clip")
NORM_LIKE |= fns("where", "clamp", "clip", "masked_fill", "clamp_", owner=T)
# across channels at one position: AlexNet's nn.LocalResponseNorm, nn.ChannelShuffle
NORM_LIKE |= fns("local_response_norm", "channel_shuffle") | fns("channel_shuffle", owner=torch)
NORM_LIKE |= fns("native_channel_shuffle", owner=torch) | fns("copy_", owner=T)  # x.copy_(y): y
# of a tensor only its shape, dtype and device: values read from no pixel (`Roles._tag`)
LIKE = fns("zeros_like", "ones_like", "full_like", "empty_like", "rand_like", owner=torch)
LIKE |= fns("randn_like", "randint_like", owner=torch)
GRIDS = fns("affine_grid")  # (B, H, W, 2) sampling points from (B, 2, 3) thetas
BILINEAR = fns("bilinear", owner=torch)  # nn.Bilinear: x1ᵀ A x2 over the last axis of each
# Linear in their tensor input (BatchNorm as at inference): a conv/linear pair with only
# these between is one linear map (§4.1). Max pooling is not linear; a sum of two branches
# needs two maps.
COLLAPSIBLE = fns("batch_norm", "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout")
COLLAPSIBLE |= both("contiguous", "flatten", "reshape") | fns("view", owner=T)
# reshapes and permutes out of place of one tensor, which no other role takes
# (`trace.Tracer._view`); their in-place forms and those reading a second tensor go the
# whole way
VIEWS = (RESHAPE | PERMUTE) - SAME - PROBABILITIES - PAD
VIEWS -= {T.squeeze_, T.unsqueeze_, T.transpose_, T.view_as, T.reshape_as}


# the operators aten names otherwise (Tensor.__and__ of two masks is aten.bitwise_and)
_BITWISE = {
    f"__{op}{name}__": f"bitwise_{aten}" for name, aten in (
        ("invert", "not"), ("and", "and"), ("or", "or"), ("xor", "xor"),
        ("lshift", "left_shift"), ("rshift", "right_shift"),
    ) for op in ("", "r", "i")
}  # fmt: skip


@functools.cache
def pointwise(func: Callable) -> bool:
    """torch tags `func`'s aten op pointwise (Tensor.__radd__ -> aten.add): its output at a
    position reads its inputs at that position only, broadcast from the right."""
    name = getattr(func, "__name__", "")
    name = _BITWISE.get(name) or name.strip("_")
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
    if func in LP_POOL:  # (input, norm_type, kernel_size, stride=None, ceil_mode=False)
        kernel = pair(arg(args, kwargs, 2, "kernel_size"), (1, 1))
        stride = pair(arg(args, kwargs, 3, "stride"), kernel)
        return Window(kernel, stride, (0, 0), (1, 1), bool(arg(args, kwargs, 4, "ceil_mode")))
    return None


def field_step(rf: Field, kernel: int, stride: int, padding: int, dilation: int) -> Field:
    """geometry.rf_step (§3.2) without its argument checks, which `window_out` has made on
    the same window (geometry.rf_grow, its formula). (A field grows along the net, so a cache
    of geometry.rf_step's answers missed on most calls: 4 µs a window, now 1.)"""
    new = geometry.rf_grow(*rf, kernel, stride, padding, dilation)
    return tuple.__new__(Field, new)  # Field(*new) without its Python-level __new__ (0.3 µs)


def window_rf(rf: tuple[Field, Field], w: Window) -> tuple[Field, Field]:
    """The receptive field (height, width) after window w: `field_step` per axis, its formula
    written out for both (at every conv and pool: 1.3 -> 0.7 µs); a 1×1 window of stride 1
    without padding (a pointwise conv: half a MobileNet's) keeps it."""
    if w.kernel == w.stride == (1, 1) and w.padding == (0, 0):
        return rf
    r0, r1 = rf
    if type(r0) is Blocked or type(r1) is Blocked:  # after an upsampling (`blocked.py`)
        return window_pair(rf, w)
    (k0, k1), (s0, s1), (p0, p1), (d0, d1) = w.kernel, w.stride, w.padding, w.dilation
    (size0, jump0, start0), (size1, jump1, start1) = r0, r1
    reach0, reach1 = d0 * (k0 - 1), d1 * (k1 - 1)  # extent − 1, in the window's input units
    return (
        record(Field, (size0 + reach0 * jump0, jump0 * s0, start0 + (reach0 / 2 - p0) * jump0)),
        record(Field, (size1 + reach1 * jump1, jump1 * s1, start1 + (reach1 / 2 - p1) * jump1)),
    )


# geometry's functions check every argument; a ResNet-50 trace asks ~1,500 times about a few
# dozen distinct windows, so the answers are cached (2 ms of a 10 ms trace) within one
# summary: `summary` clears these caches when it starts (`clear_caches`), so nothing derived
# from one model makes a later call on it faster than a first call.
@functools.lru_cache(4096)
def window_out(size: tuple[int, int], w: Window) -> tuple[int, int]:
    """(H, W) out of window w over a `size` map (`windows_along` per axis); raises
    geometry's SpecError below 1×1."""
    (k0, k1), (s0, s1), (d0, d1) = w.kernel, w.stride, w.dilation
    (b0, b1), (a0, a1) = w.padding, w.padding if w.after is None else w.after
    ceil = w.ceil_mode  # (no loop over the axes, no w.pads(): a miss 1.4 -> 0.6 µs)
    return (
        windows_along(size[0], k0, s0, d0, b0, a0, ceil),
        windows_along(size[1], k1, s1, d1, b1, a1, ceil),
    )


def windows_along(
    size: int, kernel: int, stride: int, dilation: int, before: int, after: int, ceil_mode: bool
) -> int:
    """The windows along one axis: geometry.conv_output_size, then ceil_mode's extra window
    where it starts inside the map. With ceil_mode, torch's
    ⌈(I + P_before + P_after − D(K − 1) − 1) / S⌉ + 1, less a last window that would start in
    the padding after the map."""
    extent, padded = dilation * (kernel - 1) + 1, size + before + after
    if ceil_mode and extent > padded and stride > extent - padded:
        return 1  # torch allows it: one window, the whole map
    n = geometry.window_length(size, kernel, before, after, stride, dilation)
    if ceil_mode and (padded - extent) % stride and n * stride < size + before:
        n += 1  # a last, partial window that starts inside the map
    return n


def clear_caches() -> None:
    """Forget the windows of the last summary (see `window_out`)."""
    for cached in (window_out, conv_window, axes.reshape, axes.split):
        cached.cache_clear()


def covers(size: int, w: Window, axis: int) -> bool:
    """The window is wider than its padded input (with ceil_mode torch then pools the whole
    map once: Hugging Face's EfficientNet pools with a kernel of 1,280)."""
    return w.dilation[axis] * (w.kernel[axis] - 1) + 1 > size + sum(w.pads(axis))


def keeps_probabilities(func: Callable, args: tuple, kwargs: dict) -> bool:
    """Whether func's output is probabilities: a softmax or sigmoid's always; where its first
    argument is, a call of KEEP_PROBABILITIES, one of SHIFTS by a number (p + 1e-7, 1 − p;
    not p + another tensor), a product by a number of size at most 1 or a division by one of
    at least 1 (p · 1, p / 2; not p · 100)."""
    if func in SHIFTS or func in SCALES or func in DIVIDES:
        c = arg(args, kwargs, 1, "other")
        if not isinstance(c, (int, float)) or isinstance(c, bool) or kwargs.get("rounding_mode"):
            return False
        return func in SHIFTS or (abs(c) <= 1 if func in SCALES else abs(c) >= 1)
    return func in PROBABILITIES or func in KEEP_PROBABILITIES


def one_tensor(args: tuple) -> bool:
    """A tensor, then integers or a torch.Size only (no other tensor, no list to look into):
    the one tagged input of a VIEWS call is its first argument."""
    if not args or not isinstance(args[0], torch.Tensor):
        return False
    for a in args[1:]:
        if type(a) is not int and type(a) is not torch.Size:
            return False
    return True


def reads_on(out: Any) -> bool:
    """Whether a call with this output reads its input's value on (a second reader of a
    layer's output keeps that layer, `Roles._use`): not x.size() or x.dim(), nor a test such
    as torch.isfinite(x).all() (a bool tensor), which no later layer computes with."""
    if type(out) in (tuple, list):
        return True
    return isinstance(out, torch.Tensor) and out.dtype is not torch.bool
