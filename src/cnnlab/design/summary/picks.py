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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from cnnlab.design.summary import axes as ax
from cnnlab.design.summary.calls import arg, both, field_step, fns
from cnnlab.design.summary.products import upsampled_field
from cnnlab.design.summary.tags import Tag, global_rf, replaced

FLIP = both("flip", "fliplr", "flipud")
INTERLEAVE = both("repeat_interleave")
GATHER = both("gather", "take_along_dim")
ORDERS = both("sort", "topk", "argsort", "msort")  # (values, indices): both tagged alike
SAMPLE = fns("grid_sample")
LP_POOL_1D = fns("lp_pool1d")
GETITEM = fns("__getitem__", owner=Tensor)  # with index tensors (`tags.moved` takes the rest)
# where each call's `dim` argument is (without one, repeat_interleave and take_along_dim
# flatten the tensor first, which the trace does not follow)
_DIM_AT: dict[Callable, int] = {
    **dict.fromkeys(both("flip"), 1),
    **dict.fromkeys(INTERLEAVE, 2),
    **dict.fromkeys(both("gather"), 1),
    **dict.fromkeys(both("take_along_dim"), 2),
    **dict.fromkeys(both("sort", "argsort"), 1),
    **dict.fromkeys(both("topk"), 2),
}
_LAST = ORDERS  # their dim's default: the last
_FIXED = {**dict.fromkeys(both("fliplr"), 1), **dict.fromkeys(both("flipud", "msort"), 0)}
ROLES = FLIP | INTERLEAVE | GATHER | ORDERS | SAMPLE | LP_POOL_1D | GETITEM
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
    if func in LP_POOL_1D:
        return _pooled_1d(args, kwargs, x, tag)
    if func in GETITEM:
        return _indexed(args[1], x, tag, out, lengths, image)
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


def _pooled_1d(args: tuple, kwargs: dict, x: Tensor, tag: Tag) -> Tag | None:
    """F.lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False) of a (B, C, L)
    or (C, L) x: a window of K, stride S (K by default), no padding, along L; None where L is
    height and width merged (a window of tokens crosses rows)."""
    last = x.dim() - 1
    hits = [i for i, a in enumerate(tag.axes) if a == last]
    if not hits:
        return replaced(tag, linear=None)
    if len(hits) == 2:
        return None
    k = _one(arg(args, kwargs, 2, "kernel_size"))
    s = _one(arg(args, kwargs, 3, "stride")) or k
    rf = list(tag.rf)
    rf[hits[0]] = field_step(rf[hits[0]], k, s, 0, 1)
    return replaced(tag, rf=tuple(rf), chain=None, pad=None, linear=None)


def _one(value: Any) -> int | None:
    """A 1-D pool's kernel or stride, given as an int or a one-element list."""
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    return None if value is None else int(value)
