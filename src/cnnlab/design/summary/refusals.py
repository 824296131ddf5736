"""Calls torch refuses on real data that its meta kernels (or the trace's shortcuts, which
make an output from shapes) would run: the summary must not describe a model that cannot
run. Found by comparing a real CPU forward of batch 1 with the meta one (torch 2.x):

- a dim out of range for softmax, log_softmax, softmin, sort, argsort (nn.Softmax(dim=5) on
  a 4-D map): the meta kernels wrap it around;
- a transposed conv whose input channels, groups, bias or output_padding do not fit its
  weight: its meta kernel checks none of them;
- a conv's bias of the wrong size, a conv of 0 output channels (nn.Conv2d(3, 0, 3)), a
  transposed conv's empty weight;
- a weight, bias or running statistic of another dtype than the input (one layer left in
  float64): conv, linear, matmul and the norms check dtypes on CPU only;
- an activation or dropout argument torch refuses (dropout p outside [0, 1] or None,
  hardtanh's min above its max, gelu's approximate neither 'none' nor 'tanh', celu's alpha
  0, rrelu's lower above its upper, a string for a number, 10**30): torch's Python checks
  these after the mode has taken the call, and the shape-keeping shortcut (`shapes.made`)
  skipped them; torch judges them on a real 1×1×1×1 zero, once per arguments and summary;
- a shape-keeping module's arguments torch refuses (nn.GELU('bad'), nn.LeakyReLU('a'),
  nn.ELU(alpha='x'), nn.CELU(alpha=0), nn.Hardtanh(2, 1), nn.RReLU(0.5, 0.1), nn.Dropout's p
  set to 2 or nan after construction): the trace makes such a module's output without its
  forward (`shortcuts._same_shape`), so `refused_forward` runs the forward once on a real
  1×1×1×1 zero, per type and argument values, and lets torch judge.

`refusal` says why such a call would fail; the tracer raises `Refused`, a RuntimeError like
a meta failure, so the summary's real forward on a copy takes over and torch raises its own
error there, which the summary names the layer and the shape it got with. Only meta inputs
are checked: on a real input torch checks for itself.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.design.summary.calls import Refused, arg, both, fns

Check = Callable[[Tensor, tuple, dict], "str | None"]


def _dim(x: Tensor, args: tuple, kwargs: dict) -> str | None:
    """softmax, sort...: dim in range; softmax's dtype (keyword) one CPU has a kernel for."""
    dim = arg(args, kwargs, 1, "dim")
    n = max(x.dim(), 1)
    if type(dim) is int and not -n <= dim < n:
        return f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})"
    dtype = kwargs.get("dtype") if kwargs else None
    if isinstance(dtype, torch.dtype) and not dtype.is_floating_point:
        return f'"softmax_kernel_impl" not implemented for {dtype}'
    return None


_REDUCED = (torch.float16, torch.bfloat16)  # CPU kernels take float32 parameters for these


def _dtypes(x: Tensor, tensors: Any, exact: bool) -> str | None:
    """A tensor among `tensors` (None skipped) of another dtype than x; the norms (`exact`
    False) take float32 parameters for a half or bfloat16 input, as torch's CPU kernels do."""
    for t in tensors:
        if isinstance(t, Tensor) and t.dtype != x.dtype:
            if exact or not (x.dtype in _REDUCED and t.dtype == torch.float32):
                return f"expected scalar type {x.dtype} but found {t.dtype}"
    return None


def _bias(bias: Any, size: int) -> str | None:
    if bias is not None and (not isinstance(bias, Tensor) or tuple(bias.shape) != (size,)):
        got = tuple(bias.shape) if isinstance(bias, Tensor) else bias
        return f"expected bias to be 1-dimensional with {size} elements, but got {got}"
    return None


def _conv(x: Tensor, args: tuple, kwargs: dict) -> str | None:
    weight, bias = arg(args, kwargs, 1, "weight"), arg(args, kwargs, 2, "bias")
    if not isinstance(weight, Tensor) or weight.dim() == 0:
        return None  # torch's kernel refuses it itself
    if weight.shape[0] == 0:  # nn.Conv2d(3, 0, 3): meta makes its empty map
        groups = arg(args, kwargs, 6, "groups", 1)
        return (
            f"Given groups={groups}, expected weight to be at least 1 at dimension 0, but got "
            f"weight of size {list(weight.shape)} instead"
        )
    return _dtypes(x, (weight, bias), True) or _bias(bias, weight.shape[0])


def _tuple(value: Any, n: int) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


def _conv_transpose(x: Tensor, args: tuple, kwargs: dict) -> str | None:
    """F.conv_transposeNd(input, weight, bias, stride, padding, output_padding, groups,
    dilation): the checks torch's CPU kernel makes and its meta kernel does not."""
    weight, bias = arg(args, kwargs, 1, "weight"), arg(args, kwargs, 2, "bias")
    if not isinstance(weight, Tensor) or weight.dim() < 3 or x.dim() < weight.dim() - 1:
        return None  # torch's kernel refuses it itself
    if weight.numel() == 0:  # nn.ConvTranspose2d(2, 0, 3)
        return f"non-empty 2D or 4D weight tensor expected, but got: {list(weight.shape)}"
    n, groups = weight.dim() - 2, arg(args, kwargs, 6, "groups", 1)
    if type(groups) is not int or groups < 1:
        return None
    channels = x.shape[-n - 1]
    if weight.shape[0] % groups:
        return f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0"
    if channels != weight.shape[0]:
        return (
            f"Given transposed=1, weight of size {list(weight.shape)}, expected input to have "
            f"{weight.shape[0]} channels, but got {channels} channels instead"
        )
    stride = _tuple(arg(args, kwargs, 3, "stride", 1), n)
    out_pad = _tuple(arg(args, kwargs, 5, "output_padding", 0), n)
    dilation = _tuple(arg(args, kwargs, 7, "dilation", 1), n)
    for p, s, d in zip(out_pad, stride, dilation, strict=False):
        if p >= s and p >= d:
            return "output padding must be smaller than either stride or dilation"
    return _dtypes(x, (weight, bias), True) or _bias(bias, weight.shape[1] * groups)


def _other_operand(x: Tensor, args: tuple, kwargs: dict) -> str | None:
    """linear (weight, bias), matmul, mm, bmm: one dtype throughout."""
    return _dtypes(x, (*args[1:], *kwargs.values()), True)


def _batch_norm(x: Tensor, args: tuple, kwargs: dict) -> str | None:
    """F.batch_norm(input, running_mean, running_var, weight, bias, ...)."""
    names = ("running_mean", "running_var", "weight", "bias")
    tensors = [arg(args, kwargs, i + 1, name) for i, name in enumerate(names)]
    found = _dtypes(x, tensors, False)
    if found or x.dim() < 2:
        return found
    for name, t in zip(names, tensors, strict=True):
        if isinstance(t, Tensor) and t.numel() != x.shape[1]:
            return f"{name} should contain {x.shape[1]} elements not {t.numel()}"
    return None


def _norm_parameters(at: tuple[tuple[int, str], ...]) -> Check:
    def check(x: Tensor, args: tuple, kwargs: dict) -> str | None:
        return _dtypes(x, (arg(args, kwargs, i, name) for i, name in at), False)

    return check


def _prelu(x: Tensor, args: tuple, kwargs: dict) -> str | None:
    """Tensor.prelu(weight): one slope, or one per channel, of x's dtype."""
    weight = arg(args, kwargs, 1, "weight")
    if not isinstance(weight, Tensor):
        return None  # torch refuses it itself
    channels = x.shape[1] if x.dim() > 1 else 1
    if weight.numel() not in (1, channels):
        return f"Mismatch of parameter numbers and input channel size: {weight.numel()}"
    return _dtypes(x, (weight,), True)


def _judged_by_torch(func: Callable) -> Check:
    """An activation's or dropout's arguments after its input, judged by torch on a real
    1×1×1×1 zero of the input's dtype (`_judged`: once per call's arguments and summary).
    Torch's defaults and `inplace` alone (read for its truth) need no judging: F.relu(x)."""

    def check(x: Tensor, args: tuple, kwargs: dict) -> str | None:
        if len(args) < 2 and (not kwargs or kwargs.keys() == {"inplace"}):
            return None
        rest = tuple((type(a), a) for a in args[1:])  # with types: True is not 1 to F.gelu
        named = tuple((k, type(v), v) for k, v in kwargs.items())
        try:
            return _judged(func, rest, named, x.dtype)
        except TypeError:  # an unhashable argument: judged for this call alone
            return _torch_error(lambda z: func(z, *args[1:], **kwargs), x.dtype)

    return check


@functools.lru_cache(1024)  # cleared with the trace's caches at each summary's start
def _judged(func: Callable, rest: tuple, named: tuple, dtype: torch.dtype) -> str | None:
    kwargs = {k: v for k, _, v in named}
    return _torch_error(lambda z: func(z, *(a for _, a in rest), **kwargs), dtype)


def _torch_error(run: Callable[[Tensor], Any], dtype: torch.dtype) -> str | None:
    """torch's error for `run` on a real 1×1×1×1 zero of `dtype` (it needs no grad: no
    autograd graph), None where it runs; outside the trace's mode. Its warnings are the real
    forward's to give."""
    try:
        with torch._C.DisableTorchFunction(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run(torch.zeros(1, 1, 1, 1, dtype=dtype))
    except Exception as err:  # noqa: BLE001 - whatever torch raises, the call must run
        return f"{type(err).__name__}: {err}"
    return None


def clear_judged() -> None:
    """Forget the last summary's judged arguments (see `calls.clear_caches`)."""
    _judged.cache_clear()


def _activations() -> dict[Callable, Check]:
    """The shape-keeping calls `shapes.made` makes the output of, with their argument checks."""
    from cnnlab.design.summary.shapes import SAME_SHAPE_INPLACE_AT

    found: dict[Callable, Check] = {f: _judged_by_torch(f) for f in SAME_SHAPE_INPLACE_AT}
    del found[F.batch_norm]
    found.update({f: _prelu for f in fns("prelu", owner=Tensor) if f in found})
    return found


CHECKS: dict[Callable, Check] = {
    **_activations(),
    **dict.fromkeys(both("softmax", "log_softmax", "sort", "argsort"), _dim),
    **dict.fromkeys(fns("softmax", "log_softmax", "softmin"), _dim),
    **dict.fromkeys(fns("conv1d", "conv2d", "conv3d"), _conv),
    **dict.fromkeys(fns(*(f"conv_transpose{n}d" for n in (1, 2, 3))), _conv_transpose),
    **dict.fromkeys(both("matmul", "mm", "bmm"), _other_operand),
    **dict.fromkeys(fns("linear") | fns("__matmul__", "__rmatmul__", owner=Tensor), _other_operand),
    F.batch_norm: _batch_norm,
    F.layer_norm: _norm_parameters(((2, "weight"), (3, "bias"))),
    F.group_norm: _norm_parameters(((2, "weight"), (3, "bias"))),
    F.instance_norm: _norm_parameters(
        ((1, "running_mean"), (2, "running_var"), (3, "weight"), (4, "bias"))
    ),
}  # fmt: skip


def refusal(check: Check, args: tuple, kwargs: dict) -> str | None:
    """Why torch would refuse the call on real data (`check`: CHECKS[func]), None where it
    would not or where the input is not meta (torch then checks for itself)."""
    x = args[0] if args else next(iter(kwargs.values()), None)
    if not isinstance(x, Tensor) or not x.is_meta:
        return None
    return check(x, args, kwargs)


def refused_forward(module: nn.Module, dtype: torch.dtype) -> str | None:
    """torch's error for a shape-keeping module's forward on a real 1×1×1×1 zero of `dtype`,
    None where it runs: its arguments judged by torch itself (its type's forward, as the
    module's own is the trace's wrapper; no parameters, so it runs on CPU)."""
    return _torch_error(lambda z: type(module).forward(module, z), dtype)


def refuse_meta(why: str, module: nn.Module, x: Any) -> None:
    """The trace's shortcut for a module whose arguments torch refuses (`refused_forward`):
    on a meta input it raises, for the real forward to take over and torch to raise its own
    error there; on a real one the forward runs and raises."""
    if isinstance(x, Tensor) and x.is_meta:
        raise Refused(why)
