"""Output shapes of reductions on meta tensors, made from the input's shape: mean, sum, amax
and amin over given dims, vector norms and softmax, whose meta kernels torch writes in
Python (mean 190 µs, sum 70 µs, `torch.linalg.vector_norm` 680 µs a call on this machine: 8
of the 17 ms of a ConvNeXt V2 trace, its GRN layers). Each returns None where torch must
run (and raise its own error)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from cnnlab.design.summary.calls import arg, both, fns

SHAPE_REDUCE = both("mean", "sum", "amax", "amin")
# torch.norm, Tensor.norm (x, p, dim, keepdim) and torch.linalg.vector_norm (x, ord, dim,
# keepdim): a p-norm over the dims, keepdim as a reduction's
VECTOR_NORM = both("norm") | fns("vector_norm", owner=torch.linalg)


# softmax and log_softmax: torch.x, Tensor.x, F.x (meta: a Python decomposition, 30-150 µs)
SOFTMAX = both("softmax", "log_softmax") | fns("softmax", "log_softmax")


def softmax_fits(args: tuple, kwargs: dict, x: Tensor) -> bool:
    """A softmax (log_softmax) of a float x over one dim in range, no dtype: its output
    has x's shape and is contiguous (torch's CPU kernel makes it so whatever x's strides)."""
    if len(args) > 2 or not x.is_floating_point() or not x.dim():
        return False
    if kwargs and (set(kwargs) - _SOFTMAX_KW or kwargs.get("dtype") is not None):
        return False  # (F.softmax passes _stacklevel and dtype on by keyword)
    dim = arg(args, kwargs, 1, "dim")
    return type(dim) is int and -x.dim() <= dim < x.dim()


def reduced_shape(func: Callable, args: tuple, kwargs: dict, x: Tensor) -> tuple | None:
    """The shape of x.mean(dim, keepdim) (sum, amax, amin) over given dims of a float x."""
    if len(args) + len(kwargs) < 2 or not x.is_floating_point() or set(kwargs) - _REDUCE_KW:
        return None
    return _kept(x, arg(args, kwargs, 1, "dim"), arg(args, kwargs, 2, "keepdim", False))


def norm_shape(func: Callable, args: tuple, kwargs: dict, x: Tensor) -> tuple | None:
    """The shape of a vector p-norm of a float x over given dims (`VECTOR_NORM`): ord / p a
    number, or torch.norm's Frobenius ('fro', its default) over one or two dims; a
    contiguous x; no dtype or out (else None: torch runs, the nuclear norm and matrix norms
    too)."""
    if not x.is_floating_point() or len(args) > 4 or set(kwargs) - _NORM_KW:
        return None  # (a fifth positional: torch.norm's out, Tensor.norm's dtype)
    if not x.is_contiguous():  # torch's output strides follow the input's
        return None
    if kwargs.get("dtype") is not None or kwargs.get("out") is not None:
        return None
    name = "ord" if func is torch.linalg.vector_norm else "p"
    p, dim = arg(args, kwargs, 1, name, 2 if name == "ord" else "fro"), arg(args, kwargs, 2, "dim")
    fro = type(p) is str and p == "fro" and name == "p"
    if dim is None or not (type(p) in (int, float) or fro):
        return None
    if fro and not (isinstance(dim, int) or len(dim) in (1, 2)):
        return None
    return _kept(x, dim, arg(args, kwargs, 3, "keepdim", False))


def _kept(x: Tensor, dim: Any, keep: Any) -> tuple | None:
    """x's shape with the dims `dim` names reduced (to 1 if keep)."""
    if not isinstance(dim, (int, tuple, list)) or isinstance(dim, bool) or type(keep) is not bool:
        return None
    dims = _reduced(dim, x.dim())
    if not dims:
        return None
    return tuple(1 if i in dims else n for i, n in enumerate(x.shape) if keep or i not in dims)


def _reduced(dim: int | tuple | list, ndim: int) -> set[int]:
    """The axes a reduction's `dim` names, each once and in range; empty where torch must
    run: it raises on an axis out of range or named twice (x.mean(4), x.sum((2, -2)))."""
    dims = [dim] if isinstance(dim, int) else list(dim)
    if not ndim or not all(type(d) is int and -ndim <= d < ndim for d in dims):
        return set()
    found = {d % ndim for d in dims}
    return found if len(found) == len(dims) else set()


_REDUCE_KW = frozenset({"dim", "keepdim"})
_SOFTMAX_KW = frozenset({"dim", "_stacklevel", "dtype"})
_NORM_KW = frozenset({"ord", "p", "dim", "keepdim", "dtype", "out"})
