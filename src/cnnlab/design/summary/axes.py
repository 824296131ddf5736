"""Where a map's height and width axes go through calls that move values without computing
(reshape, permute, indexing, split, stack, reductions): pure functions of shapes.

Axes are a pair (height, width) of positions in the tensor, an entry None once that axis has
been merged into channels (flatten) or reduced away: each value then mixes every position
along it. Both at one position: height and width merged into one axis of positions (a
(B, C, H·W) token layout), whose values are still one pixel's each. A channel shuffle,
(B, C, H, W) -> (B, g, C/g, H, W) -> transpose -> (B, C, H, W), keeps both axes: its
receptive field does not grow.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

Axes = tuple[int | None, int | None]


def _norm(dim: int, ndim: int) -> int:
    return dim + ndim if dim < 0 else dim


@functools.lru_cache(1024)  # a net reshapes alike in every block; cleared with calls.py's
def reshape(in_shape: Sequence[int], out_shape: Sequence[int], axes: Axes) -> Axes:
    """An axis survives a reshape where the output has a dimension of its length with the
    same number of elements before it (row-major order); otherwise it was merged or split.
    (Running products and loops, no slices nor generators: a token net's reshapes miss
    this cache a third of the time, 2.4-5.0 -> 1.0-1.6 µs a miss.)"""
    prefix_in, prefix_out = _prefixes(in_shape), _prefixes(out_shape)
    h, w = axes
    if h is not None and h == w:  # tokens: one axis, looked up once
        found_h = found_w = _kept(h, in_shape, prefix_in, out_shape, prefix_out)
    else:
        found_h = None if h is None else _kept(h, in_shape, prefix_in, out_shape, prefix_out)
        found_w = None if w is None else _kept(w, in_shape, prefix_in, out_shape, prefix_out)
    if found_h is None and found_w is None and h is not None and w is not None:
        before = _before(h, in_shape, prefix_in)
        if w == h + 1:  # (..., H, W) -> (..., H·W): one axis of positions, not mixed
            for j, n in enumerate(out_shape):
                if prefix_out[j] == before and n == in_shape[h] * in_shape[w]:
                    return (j, j)
            return (None, None)
        if h == w:  # (..., H·W) -> (..., H, W): split back (the first split that fits)
            for j in range(len(out_shape) - 1):
                if prefix_out[j] == before and out_shape[j] * out_shape[j + 1] == in_shape[h]:
                    if out_shape[j] > 1 and out_shape[j + 1] > 1:
                        return (j, j + 1)
    return (found_h, found_w)


@functools.lru_cache(1024)  # (as `reshape`'s)
def split(in_shape: Sequence[int], out_shape: Sequence[int], a: int) -> tuple[int, int] | None:
    """Where a reshape cut axis a of length n in two, outer first (einops' "(h p)"): output
    dims j, j + 1 of lengths n/p and p (both above 1) with as many elements before j as
    before a, as (j, p); None otherwise."""
    before, prefix_out, n = (
        _before(a, in_shape, _prefixes(in_shape)),
        _prefixes(out_shape),
        in_shape[a],
    )
    for j in range(len(out_shape) - 1):
        if prefix_out[j] == before and out_shape[j] * out_shape[j + 1] == n:
            return (j, out_shape[j + 1]) if out_shape[j] > 1 and out_shape[j + 1] > 1 else None
    return None


def _prefixes(shape: Sequence[int]) -> list[int]:
    """The running products of `shape`: element i is the product of its first i lengths."""
    out, p = [1], 1
    for n in shape:
        p *= n
        out.append(p)
    return out


def _before(a: int, shape: Sequence[int], prefix: list[int]) -> int:
    """The number of elements before axis `a` of `shape` (a negative axis as a slice)."""
    return prefix[a] if 0 <= a < len(prefix) else math.prod(shape[:a])


def _kept(a: int, in_shape, prefix_in: list[int], out_shape, prefix_out: list[int]) -> int | None:
    """The first output dimension of axis a's length with as many elements before it."""
    before = _before(a, in_shape, prefix_in)
    for j, n in enumerate(out_shape):
        if prefix_out[j] == before and n == in_shape[a]:
            return j
    return None


def permute(order: Sequence[int], axes: Axes) -> Axes:
    """out dimension i is input dimension order[i]."""
    n, (h, w) = len(order), axes
    order = [d + n if d < 0 else d for d in order]
    return None if h is None else order.index(h), None if w is None else order.index(w)


def swap(d0: int, d1: int, ndim: int, axes: Axes) -> Axes:
    """Axes after dims d0 and d1 trade places (x.transpose(d0, d1)). (No dict nor generator
    per call: a token net transposes at every attention, 0.8 -> 0.3 µs.)"""
    d0, d1 = d0 + ndim if d0 < 0 else d0, d1 + ndim if d1 < 0 else d1
    h, w = axes
    return (d1 if h == d0 else d0 if h == d1 else h, d1 if w == d0 else d0 if w == d1 else w)


def movedim(source: Any, destination: Any, ndim: int, axes: Axes) -> Axes:
    """torch.movedim's permutation, worked out on index lists."""
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    src, dst = [_norm(d, ndim) for d in src], [_norm(d, ndim) for d in dst]
    order: list[int | None] = [None] * ndim
    for s, d in zip(src, dst, strict=True):
        order[d] = s
    rest = iter(d for d in range(ndim) if d not in src)
    order = [next(rest) if o is None else o for o in order]
    return permute(order, axes)


def removed(dim: int, ndim: int, axes: Axes) -> tuple[Axes, bool]:
    """Axes after dimension `dim` is removed (unbind, select, a reduction without keepdim),
    and whether it was a spatial axis (then that axis is gone: None)."""
    dim = _norm(dim, ndim)
    hit = dim in axes
    return tuple(None if a is None or a == dim else a - (a > dim) for a in axes), hit


def inserted(dim: int, ndim_out: int, axes: Axes) -> Axes:
    """Axes after a new dimension at `dim` of the output (stack, unsqueeze)."""
    dim = _norm(dim, ndim_out)
    return tuple(None if a is None else a + (a >= dim) for a in axes)


def aligned(in_ndim: int, out_ndim: int, axes: Axes) -> Axes:
    """Broadcasting aligns shapes from the right."""
    return tuple(None if a is None else a + out_ndim - in_ndim for a in axes)


def reduced_dims(dim: Any, ndim: int) -> list[int]:
    """The dimensions a reduction's `dim` argument names (None or () : all)."""
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        return list(range(ndim))
    dims = [dim] if isinstance(dim, int) else list(dim)
    return sorted(_norm(d, ndim) for d in dims)


def _slices(key: tuple) -> bool:
    """Every item of `key` is a slice (a loop: all() over a generator costs 1 µs more)."""
    for k in key:
        if type(k) is not slice:
            return False
    return True


def index(key: Any, shape: Sequence[int], axes: Axes) -> tuple[Axes, tuple[int, int]] | None:
    """Axes after x[key] and the step taken along each spatial axis ((1, 1): none); None for
    an index the trace does not follow (tensors, lists: gathers)."""
    key = key if isinstance(key, tuple) else (key,)
    if len(key) <= len(shape) and _slices(key):  # x[:, :n]: every axis stays where it was
        n, (h, w) = len(key), axes
        return axes, (
            1 if h is None or h >= n else key[h].step or 1,
            1 if w is None or w >= n else key[w].step or 1,
        )
    if any(isinstance(k, (Tensor, list)) for k in key):
        return None
    used = sum(1 for k in key if k is not None and k is not Ellipsis)
    if used > len(shape):
        return None
    expanded: list[Any] = []
    for k in key:
        if k is Ellipsis:
            expanded += [slice(None)] * (len(shape) - used)
        else:
            expanded.append(k)
    expanded += [slice(None)] * (len(shape) - sum(1 for k in expanded if k is not None))
    new_pos, steps, dim, out_dim = {}, {}, 0, 0
    for k in expanded:
        if k is None:
            out_dim += 1
            continue
        if isinstance(k, slice):
            new_pos[dim], steps[dim] = out_dim, k.step or 1
            out_dim += 1
        elif not isinstance(k, (int, torch.SymInt)):
            return None
        dim += 1
    new_axes = tuple(None if a is None else new_pos.get(a) for a in axes)
    return new_axes, tuple(1 if a is None else steps.get(a, 1) for a in axes)


def advanced(key: Any, ndim: int, out_ndim: int, axes: Axes) -> tuple[Axes, tuple] | None:
    """Axes after x[key] where index tensors pick along adjacent dims, the rest whole slices
    (x[torch.arange(B)[:, None], ids]: a masked autoencoder's kept tokens), and which
    spatial axes they pick along. The m picked dims become the indices' broadcast dims, in
    their place (torch's rule for adjacent index tensors): a picked spatial axis stays where
    it was where as many dims come back (a token is still a token), else it is gone (None);
    None for any other key (ints, None, steps, bool masks, index tensors apart)."""
    key = key if isinstance(key, tuple) else (key,)
    picks = [i for i, k in enumerate(key) if isinstance(k, (Tensor, list))]
    if not picks or picks != list(range(picks[0], picks[0] + len(picks))) or len(key) > ndim:
        return None
    for k in key:
        if isinstance(k, Tensor) and k.dtype is torch.bool:
            return None
        if not isinstance(k, (Tensor, list)) and k != slice(None):
            return None
    first, m = picks[0], len(picks)
    grown = out_ndim - ndim  # the broadcast dims, less the m picked ones
    new, hit = [], []
    for a in axes:
        picked = a is not None and first <= a < first + m
        hit.append(picked)
        if a is None or (picked and grown != 0):
            new.append(None)
        else:
            new.append(a if a < first + m else a + grown)
    return (new[0], new[1]), tuple(hit)
