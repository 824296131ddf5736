"""Leaf modules whose forward is one torch call: that call's function and arguments, so the
tracer can make the module's output (and its tag) from them without running the forward.

Skipping the forward saves nn.Conv2d.forward, `_conv_forward` and torch's dispatch of the
call back into the tracer's mode (with the module stack no longer reading each input's
shape through the mode: 1.06× on the geometric mean of 9 families, same-run alternated
calls). A module whose type overrides the forward (or `_conv_forward`) is not recognised:
its own code runs, through the mode, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

Call = tuple[Callable, tuple]  # (torch function, positional arguments)


def _conv2d(m: nn.Conv2d, x: Tensor) -> Call | None:
    p = m._parameters  # not m.weight: nn.Module.__getattr__ costs 1 µs
    # padding_mode: pads with F.pad first; no weight parameter: a parametrization makes it
    if m.padding_mode != "zeros" or p.get("weight") is None:
        return None
    return F.conv2d, (x, p["weight"], p.get("bias"), m.stride, m.padding, m.dilation, m.groups)


conv2d_call = _conv2d  # `Shortcuts._conv` makes its output in one step


def _linear(m: nn.Linear, x: Tensor) -> Call | None:
    p = m._parameters
    return None if p.get("weight") is None else (F.linear, (x, p["weight"], p.get("bias")))


linear_call = _linear  # `Shortcuts._linear` makes its output in one step


def _max_pool2d(m: nn.MaxPool2d, x: Tensor) -> Call:
    return F.max_pool2d, (
        x, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, m.return_indices,
    )  # fmt: skip


def _avg_pool2d(m: nn.AvgPool2d, x: Tensor) -> Call:
    return F.avg_pool2d, (
        x, m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
        m.divisor_override,
    )  # fmt: skip


def _adaptive_avg_pool2d(m: nn.AdaptiveAvgPool2d, x: Tensor) -> Call:
    return F.adaptive_avg_pool2d, (x, m.output_size)


def _constant_pad(m: nn.ConstantPad2d, x: Tensor) -> Call:
    return F.pad, (x, m.padding, "constant", m.value)


def _conv_transpose2d(m: nn.ConvTranspose2d, x: Tensor) -> Call | None:
    p = m._parameters  # with no output_size given, its output_padding is its own
    if m.padding_mode != "zeros" or p.get("weight") is None or type(m.padding) is not tuple:
        return None
    return F.conv_transpose2d, (
        x, p["weight"], p.get("bias"), m.stride, m.padding, m.output_padding, m.groups,
        m.dilation,
    )  # fmt: skip


conv_transpose2d_call = _conv_transpose2d  # `Shortcuts._conv_transpose`: in one step too

# type -> (the methods its forward is made of, the call it makes)
_LEAVES: dict[type, tuple[tuple[str, ...], Callable[[Any, Tensor], Call | None]]] = {
    nn.Conv2d: (("forward", "_conv_forward"), _conv2d),
    nn.Linear: (("forward",), _linear),
    nn.MaxPool2d: (("forward",), _max_pool2d),
    nn.AvgPool2d: (("forward",), _avg_pool2d),
    nn.AdaptiveAvgPool2d: (("forward",), _adaptive_avg_pool2d),
    nn.ConstantPad2d: (("forward",), _constant_pad),  # and nn.ZeroPad2d, a subclass
    nn.ConvTranspose2d: (("forward", "_output_padding"), _conv_transpose2d),
}


def leaf_call(kind: type) -> Callable[[Any, Tensor], Call | None] | None:
    """How a module of type `kind` calls torch, where its forward is torch's own (the type
    or a subclass that overrides none of the forward's methods); None for any other type."""
    for base in kind.__mro__:
        found = _LEAVES.get(base)
        if found is not None:
            methods, call = found
            same = all(getattr(kind, n) is getattr(base, n) for n in methods)
            return call if same else None
    return None
