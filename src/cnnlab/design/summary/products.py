"""Calls that sum over an axis of two maps or move pixels between positions and channels, and
where each operand's axes go: the pure half of their tag rules (`roles.Roles._product_tag`
applies them).

- matrix products (matmul, bmm, mm, @) and scaled dot-product attention: an axis summed over
  (a product's inner axis, attention's keys and values positions) mixes every position along
  it, so where it is a spatial axis each output value sees the whole map along it (§3.2: an
  attention layer's field is the whole input, as a global pool's). Attention's query
  positions stay where they are: its output is the queries' map, each unit seeing it all.
- F.unfold (im2col) cuts a (B, C, H, W) map into windows, (B, C·kh·kw, L): a window step
  (`calls.window_rf`) whose positions are one merged axis; F.fold sews the windows back.
- norms whose `dim` comes after `ord` / `p` (torch.norm, Tensor.norm, linalg.vector_norm),
  and adaptive 1-D pooling (a (B, C, H·W) token map pooled to one value: a global pool).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from cnnlab.design.summary.calls import T, arg, both, fns, pair
from cnnlab.design.summary.facts import Field, Window

MATMUL = both("matmul", "bmm", "mm") | fns("__matmul__", owner=T)
RMATMUL = fns("__rmatmul__", owner=T)  # x.__rmatmul__(y) is y @ x
ATTENTION = fns("scaled_dot_product_attention")
UNFOLD, FOLD = fns("unfold"), fns("fold")  # F.unfold / F.fold, not Tensor.unfold
NORMS = both("norm") | fns("vector_norm", owner=torch.linalg)  # dim at 2: (x, ord, dim)
ADAPTIVE_1D = fns("adaptive_avg_pool1d") | fns("adaptive_avg_pool1d", owner=torch)
ROLES = MATMUL | RMATMUL | ATTENTION | UNFOLD | FOLD | NORMS | ADAPTIVE_1D

Dims = list  # per input dimension, the output dimension it becomes (None: summed over)


def _batch(n_in: int, n_out: int, inner: int) -> Dims:
    """The leading (batch) dimensions of an operand, broadcast from the right."""
    return [d + n_out - n_in for d in range(n_in - inner)]


def operands(func: Callable, args: tuple, kwargs: dict, out: Any) -> list | None:
    """[(operand, Dims)] of a matrix product or attention call; None where the trace does not
    follow it (a 1-D operand: a dot product or a matrix-vector one)."""
    if func in ATTENTION:
        q, k, v = (arg(args, kwargs, i, name) for i, name in enumerate(("query", "key", "value")))
        n = out.dim()
        if not all(isinstance(t, T) and t.dim() == n and n >= 2 for t in (q, k, v)):
            return None
        return [
            (q, [*range(n - 1), None]),  # query positions stay; its features are summed over
            (k, [*range(n - 2), None, None]),  # keys: positions and features summed over
            (v, [*range(n - 2), None, n - 1]),  # values: positions summed over
        ]
    a = arg(args, kwargs, 0, "input")
    b = args[1] if len(args) > 1 else kwargs.get("other", kwargs.get("mat2"))
    if func in RMATMUL:
        a, b = b, a
    if not (isinstance(a, T) and isinstance(b, T)) or a.dim() < 2 or b.dim() < 2:
        return None
    n = out.dim()
    return [
        (a, [*_batch(a.dim(), n, 2), n - 2, None]),  # (..., n, k): rows stay, k summed over
        (b, [*_batch(b.dim(), n, 2), None, n - 1]),  # (..., k, m): k summed over, columns stay
    ]


def unfold_window(args: tuple, kwargs: dict) -> Window:
    """F.unfold(input, kernel_size, dilation=1, padding=0, stride=1)'s window."""
    kernel = pair(arg(args, kwargs, 1, "kernel_size"), (1, 1))
    dilation = pair(arg(args, kwargs, 2, "dilation", 1), (1, 1))
    padding = pair(arg(args, kwargs, 3, "padding", 0), (0, 0))
    stride = pair(arg(args, kwargs, 4, "stride", 1), (1, 1))
    return Window(kernel, stride, padding, dilation)


def fold_field(rf: Field, args: tuple, kwargs: dict, axis: int) -> Field | None:
    """A pixel's field after F.fold(input, output_size, kernel_size, dilation, padding,
    stride) of windows whose units have field `rf` (one axis): the windows that cover it
    (⌈D(K − 1) + 1 / S⌉ of them at most, `rf.jump` apart), at S times finer spacing, centred
    back as unfold's window moved them (geometry.rf_grow's start, undone). None where the
    windows' spacing is no multiple of the stride (no whole-pixel spacing)."""
    k = pair(arg(args, kwargs, 2, "kernel_size"), (1, 1))[axis]
    d = pair(arg(args, kwargs, 3, "dilation", 1), (1, 1))[axis]
    p = pair(arg(args, kwargs, 4, "padding", 0), (0, 0))[axis]
    s = pair(arg(args, kwargs, 5, "stride", 1), (1, 1))[axis]
    if rf.jump % s:
        return None
    covering, jump = math.ceil((d * (k - 1) + 1) / s), rf.jump // s
    return Field(rf.size + (covering - 1) * rf.jump, jump, rf.start - (d * (k - 1) / 2 - p) * jump)


def reduce_dim_at(func: Callable) -> int:
    """Where a reduction's `dim` argument is: after `ord` / `p` for the norms."""
    return 2 if func in NORMS else 1


def pools_all(func: Callable, out: Any) -> bool:
    """An adaptive 1-D pool to one value (over the last axis, as a reduction over it)."""
    return func in ADAPTIVE_1D and out.dim() >= 1 and out.shape[-1] == 1
