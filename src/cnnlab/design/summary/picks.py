"""Calls that move or pick values along one axis (or read where a grid says), and their tag
rules: pure functions of the call, its input's tag and the map's lengths
(`roles.Roles._tag` applies them). Along channels or batch none changes a field.

- flips (torch.flip, Tensor.flip, fliplr, flipud) put a map's positions in reverse order:
  neighbours stay neighbours, so field and jump stay (the units' order is reversed; a Field
  has no direction, its start is kept).
- repeat_interleave by an int S along height or width repeats each unit S times: nearest
  upsampling by S (`products.upsampled_field`, as F.interpolate's).
- F.lp_pool1d (nn.LPPool1d) pools windows of the last axis: a 1-D window of kernel K,
  stride K by default, no padding (F.lp_pool2d is a window as avg_pool2d's: `calls.window`).
- torch.gather / take_along_dim along a spatial axis with an index tensor (a masked
  autoencoder's random choice of tokens) and orderings along one (sort, topk, argsort,
  msort): an output may come from any position of that axis, so each sees the whole axis
  (as a global pool over it, `tags.global_rf`).
- indexing with tensors (x[torch.arange(B)[:, None], ids]: MONAI's masked autoencoder keeps
  random tokens so) picks along the indexed axes as gather does (`axes.advanced`).
- F.grid_sample reads where its grid says, anywhere in the input: every unit sees the whole
  map (a spatial transformer).
- 1-D windows (F.conv1d, avg_pool1d, max_pool1d, lp_pool1d; nn.Conv1d, the 1-D pools) of a
  (B, C, L) or (C, L) x slide along L and a conv mixes C: along an image axis at L the field
  grows by geometry.rf_step (§3.2: a strip conv over the width of a (B·H, C, W) reshape,
  whose rows are a batch and stay), an image axis at C sees its whole length (as F.linear's),
  channels at L (ECA's conv across neighbouring channels) change no field (`slid`).
- F.glu(x, dim) multiplies each half of x along dim by the other's sigmoid: along an image
  axis of n units, unit j reads units j and j + n/2, a window of 2 dilated n/2.
- cumulative sums and products (cumsum, cumprod, cummax, cummin, logcumsumexp) along an image
  axis: unit j reads units 0..j, so the last sees the whole axis, the layer's field (its
  largest unit's); the units keep their spacing.
- Tensor.unfold(dim, size, step) (patches cut by hand: x.unfold(2, p, p).unfold(3, p, p))
  along an image axis: its positions become windows of `size` at stride `step`, the offsets
  inside one a new last axis; as F.unfold's, each window position gets the window's field,
  an upper bound for its values, each one pixel until something mixes them.
- a recurrent layer (torch.lstm, gru, rnn_tanh, rnn_relu: nn.LSTM, nn.GRU, nn.RNN) of a
  (B, T, F) or (T, B, F) sequence (a CRNN's columns): along T a step reads the steps before
  it (after it too, bidirectional), so as a cumulative sum the layer sees the whole axis;
  along F it mixes features as F.linear does. Its final states (h, c) have no T: they see
  it all. A PackedSequence's data is not followed.

Height and width merged into one axis of tokens (axes.py) under any of these but a
pointwise window: an output may read tokens of other rows, and the trace takes it to see the
whole map (an upper bound: a window of k tokens spans at most two rows unless k > W).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from cnnlab.design.summary import axes as ax
from cnnlab.design.summary.calls import arg, both, field_step, fns
from cnnlab.design.summary.facts import Field
from cnnlab.design.summary.products import upsampled_field, windowed
from cnnlab.design.summary.tags import Tag, global_rf, replaced

FLIP = both("flip", "fliplr", "flipud")
INTERLEAVE = both("repeat_interleave")
GATHER = both("gather", "take_along_dim")
ORDERS = both("sort", "topk", "argsort", "msort")  # (values, indices): both tagged alike
SAMPLE = fns("grid_sample")
LP_POOL_1D = fns("lp_pool1d")
CONV_1D = fns("conv1d", owner=torch)  # F.conv1d is torch.conv1d (nn.Conv1d calls it)
MAX_POOL_1D = fns("max_pool1d", "max_pool1d_with_indices") | fns("max_pool1d", owner=torch)
WINDOW_1D = CONV_1D | MAX_POOL_1D | fns("avg_pool1d", owner=torch) | LP_POOL_1D
GLU = fns("glu")
CUMULATIVE = both("cumsum", "cumprod", "cummax", "cummin", "logcumsumexp")
CUMULATIVE |= fns("cumsum_", "cumprod_", owner=Tensor)
GETITEM = fns("__getitem__", owner=Tensor)  # with index tensors (`tags.moved` takes the rest)
RECURRENT = fns("lstm", "gru", "rnn_tanh", "rnn_relu", owner=torch)
WINDOWS = fns("unfold", owner=Tensor)  # Tensor.unfold(dim, size, step), not F.unfold
# where each call's `dim` argument is (without one, repeat_interleave and take_along_dim
# flatten the tensor first, which the trace does not follow)
_DIM_AT: dict[Callable, int] = {
    **dict.fromkeys(both("flip"), 1),
    **dict.fromkeys(INTERLEAVE, 2),
    **dict.fromkeys(both("gather"), 1),
    **dict.fromkeys(both("take_along_dim"), 2),
    **dict.fromkeys(both("sort", "argsort"), 1),
    **dict.fromkeys(both("topk"), 2),
    **dict.fromkeys(CUMULATIVE, 1),
}
_LAST = ORDERS  # their dim's default: the last
_FIXED = {**dict.fromkeys(both("fliplr"), 1), **dict.fromkeys(both("flipud", "msort"), 0)}
ROLES = FLIP | INTERLEAVE | GATHER | ORDERS | SAMPLE | WINDOW_1D | GETITEM | GLU | CUMULATIVE
ROLES |= RECURRENT | WINDOWS
SEES_AXIS = GATHER | ORDERS  # an output may come from any position along the dim


def dims(func: Callable, args: tuple, kwargs: dict, ndim: int) -> list[int] | None:
    """The dims a call moves values along, each in [0, ndim); None where it flattens the
    tensor first (no dim) or the dims are no ints (torch then decides)."""
    if func in _FIXED:
        found: Any = _FIXED[func]
    elif func is Tensor.flip and len(args) > 2:  # x.flip(2, 3)
        found = list(args[1:])
    else:
        default = -1 if func in _LAST else None
        found = arg(args, kwargs, _DIM_AT[func], "dims" if func in FLIP else "dim", default)
    if found is None:
        return None
    found = [found] if isinstance(found, int) else list(found)
    if not all(type(d) is int and -ndim <= d < ndim for d in found):
        return None
    return [ax._norm(d, ndim) for d in found]


def picked(func, args, kwargs, x: Tensor, tag: Tag, out: Tensor, lengths, image) -> Tag | None:
    """The tag of func's output (one of `ROLES`) from its input x's; None where the trace
    does not follow it. `lengths`: the map's (height, width) in x; `image`: the input's."""
    if func in SAMPLE:
        if x.dim() != 4 or tag.axes != (2, 3) or out.dim() != 4:
            return None
        rf = tuple(global_rf(r, n, e) for r, n, e in zip(tag.rf, lengths, image, strict=True))
        return Tag(rf, (2, 3), None)
    if func in WINDOW_1D:
        return _window_1d(func, args, kwargs, x, tag, lengths, image)
    if func in GLU:
        return _glu(args, kwargs, x, tag, lengths, image)
    if func in GETITEM:
        return _indexed(args[1], x, tag, out, lengths, image)
    if func in RECURRENT:
        return _recurrent(args, x, tag, out, lengths, image)
    if func in WINDOWS:
        return _windows(args, kwargs, x, tag)
    moved = dims(func, args, kwargs, x.dim())
    if moved is None or out.dim() != x.dim():
        return None
    hits = [i for i, a in enumerate(tag.axes) if a in moved]
    shape_kept = all(out.shape[a] == x.shape[a] for a in tag.axes if a is not None)
    chain = tag.chain if shape_kept else None
    if not hits:  # channels or batch: no position moves
        return replaced(tag, chain=chain)
    rf = list(tag.rf)
    if func in INTERLEAVE:
        times = arg(args, kwargs, 1, "repeats")
        if type(times) is not int or len(hits) == 2:  # merged tokens: no grid of positions
            return None
        for i in hits:
            rf[i] = upsampled_field(rf[i], x.shape[tag.axes[i]], out.shape[tag.axes[i]], "nearest")
        if None in rf:
            return None
    elif func in SEES_AXIS:
        for i in hits:
            rf[i] = global_rf(rf[i], lengths[i], image[i])
    elif func in CUMULATIVE:  # the last unit reads all n units; merged tokens: the whole map
        for i in hits:
            rf[i] = whole(rf[i], lengths[i], image[i])
    return replaced(tag, rf=tuple(rf), chain=chain, pad=None, linear=None)


def _indexed(key: Any, x: Tensor, tag: Tag, out: Tensor, lengths, image) -> Tag | None:
    """x[key] with index tensors: along a picked spatial axis each output may be any
    position's (the whole axis, as gather's); the others keep their fields."""
    found = ax.advanced(key, x.dim(), out.dim(), tag.axes)
    if found is None:
        return None
    axes, hit = found
    if not any(hit):
        return replaced(tag, axes=axes, chain=None)
    rf = tuple(
        global_rf(r, n, e) if h else r
        for r, n, e, h in zip(tag.rf, lengths, image, hit, strict=True)
    )
    return replaced(tag, rf=rf, axes=axes, chain=None, pad=None, linear=None)


def _window_1d(func, args, kwargs, x: Tensor, tag: Tag, lengths, image) -> Tag | None:
    """A 1-D window of a (B, C, L) or (C, L) x: a step along L, C mixed by a conv (`slid`);
    None for arguments the trace cannot read (torch then decides)."""
    window = _window_args(func, args, kwargs)
    if window is None or x.dim() not in (2, 3):
        return None
    last = x.dim() - 1
    mixes = func in CONV_1D and arg(args, kwargs, 1, "weight").shape[1] > 1  # C / groups
    rf = slid(tag, x.shape, {last: window}, last - 1 if mixes else None, lengths, image)
    hit = last in tag.axes or (mixes and last - 1 in tag.axes)
    return replaced(tag, rf=rf, chain=None if hit else tag.chain, pad=None, linear=None)


def _window_args(func, args: tuple, kwargs: dict) -> tuple[int, int, int, int] | None:
    """(kernel, stride, padding before, dilation) of a 1-D window call: F.conv1d(input,
    weight, bias, stride, padding, dilation, groups) ("same": D(K − 1) // 2 before, torch's
    split), avg_pool1d / max_pool1d(input, kernel_size, stride=kernel_size, padding,
    dilation (max only)), lp_pool1d(input, norm_type, kernel_size, stride=kernel_size)."""
    if func in CONV_1D:
        k = arg(args, kwargs, 1, "weight").shape[-1]
        s, d = _one(arg(args, kwargs, 3, "stride", 1)), _one(arg(args, kwargs, 5, "dilation", 1))
        p = arg(args, kwargs, 4, "padding", 0)
        if isinstance(p, str):
            p = {"same": (d or 1) * (k - 1) // 2, "valid": 0}.get(p)
            if p is None:
                return None
        return k, s or 1, _one(p) or 0, d or 1
    at = 2 if func in LP_POOL_1D else 1
    k = _one(arg(args, kwargs, at, "kernel_size"))
    if k is None:
        return None
    s = _one(arg(args, kwargs, at + 1, "stride")) or k
    if func in LP_POOL_1D:
        return k, s, 0, 1
    d = _one(arg(args, kwargs, 4, "dilation", 1)) if func in MAX_POOL_1D else 1
    return k, s, _one(arg(args, kwargs, 3, "padding", 0)) or 0, d or 1


def slid(tag: Tag, shape, steps: dict, mixed: int | None, lengths, image) -> tuple:
    """The fields after a window whose axes are tensor dims `steps` ({dim: (kernel, stride,
    padding before, dilation)}), which also mixes dim `mixed` (a conv's channels; None: a
    pool): an image axis at a window dim grows by geometry.rf_step (§3.2), one at `mixed`
    sees its whole length, its units still as far apart (`whole`: n of them stay n, where
    a pool to one, `global_rf`, spaces its unit n apart), any other stays (a batch).
    Merged tokens (both axes at one dim) of more than one position under a window or a mix:
    the whole map (an upper bound: a window of tokens crosses rows)."""
    (a0, a1), rf = tag.axes, tag.rf
    if a0 is not None and a0 == a1:
        step = steps.get(a0)
        if shape[a0] > 1 and (a0 == mixed or (step is not None and step != (1, 1, 0, 1))):
            return whole(rf[0], lengths[0], image[0]), whole(rf[1], lengths[1], image[1])
        return rf
    new = []
    for i, a in enumerate((a0, a1)):
        r = rf[i]
        if a in steps:
            r = field_step(r, *steps[a])
        elif a is not None and a == mixed and shape[a] > 1 and r.size < image[i]:
            r = whole(r, lengths[i], image[i])  # (one that spans the image already stays)
        new.append(r)
    return new[0], new[1]


def whole(rf: Field, n: int, extent: int) -> Field:
    """The field of units that each may read all n units of an axis (at least the image's
    `extent`, as `tags.global_rf`'s), still `rf.jump` apart: the axis keeps its positions.
    A field that spans the image already stays (it would grow at every such call)."""
    if rf.size >= extent:
        return rf
    return Field(max(extent, rf.size + (max(n, 1) - 1) * rf.jump), rf.jump, rf.start)


def _glu(args: tuple, kwargs: dict, x: Tensor, tag: Tag, lengths, image) -> Tag | None:
    """F.glu(x, dim=-1): x's first half along dim times the sigmoid of its second; along an
    image axis of n units a window of 2 dilated n/2 (the field grows by n/2 units)."""
    dim = arg(args, kwargs, 1, "dim", -1)
    if type(dim) is not int or not -x.dim() <= dim < x.dim() or x.shape[dim] % 2:
        return None
    dim = ax._norm(dim, x.dim())
    rf = slid(tag, x.shape, {dim: (2, 1, 0, x.shape[dim] // 2)}, None, lengths, image)
    chain = None if dim in tag.axes else tag.chain  # the axis halves
    return replaced(tag, rf=rf, chain=chain, pad=None, linear=None)


def _windows(args: tuple, kwargs: dict, x: Tensor, tag: Tag) -> Tag | None:
    """x.unfold(dimension, size, step): along an image axis a window of `size` at stride
    `step` (geometry.rf_step's formula); None where height and width are merged (tokens)."""
    dim, size, step = (
        arg(args, kwargs, i, k) for i, k in ((1, "dimension"), (2, "size"), (3, "step"))
    )
    if not all(type(v) is int for v in (dim, size, step)) or not -x.dim() <= dim < x.dim():
        return None
    dim = ax._norm(dim, x.dim())
    if dim not in tag.axes:  # channels: no position moves
        return replaced(tag, linear=None)
    if tag.axes[0] == tag.axes[1]:
        return None
    rf = list(tag.rf)
    r = rf[tag.axes.index(dim)]
    rf[tag.axes.index(dim)] = windowed(r, size, step)
    return replaced(tag, rf=tuple(rf), chain=None, linear=None, pad=None)


def _recurrent(args: tuple, x: Tensor, tag: Tag, out: Tensor, lengths, image) -> Tag | None:
    """torch.lstm(input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
    batch_first) and its kin: along the time axis and the features an image axis sees its
    whole length; the output keeps x's axes, the final states (other shape) none. None for
    a packed sequence (torch.lstm(data, batch_sizes, ...): its steps are no axis)."""
    if len(args) < 9 or isinstance(args[1], Tensor) and not args[1].is_floating_point():
        return None
    steps = 1 if args[8] and x.dim() == 3 else 0
    mixed = (steps, x.dim() - 1)
    rf = tuple(
        global_rf(r, n, e) if a in mixed else r
        for a, r, n, e in zip(tag.axes, tag.rf, lengths, image, strict=True)
    )
    if out.shape[:-1] == x.shape[:-1]:  # the output sequence
        return Tag(rf, tag.axes, tag.chain, last_pool=tag.last_pool)
    return Tag(rf, (None, None), None)


def _one(value: Any) -> int | None:
    """A 1-D pool's kernel or stride, given as an int or a one-element list."""
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    return None if value is None else int(value)
