"""Values a forward makes from no input: a mask of ones, position ids from `arange`.

On meta such a tensor has no values, and a model that reads one sends the whole summary to a
real forward: transformers' mask code asks a mask of ones made in the forward whether it is
all ones (`mask.all()`) to skip it. So a small tensor made from nothing (`FACTORIES`, asked on
the meta device or on none) is made for real on the CPU: a constant. A call of constants
alone runs for real, and its tensors are constants too; where a constant meets a traced
(meta) tensor, its meta twin takes its place, as a user's tensor's does (`Tracer.meta_args`).
A constant written in place by such a call (a meta map copied into a buffer) has no known
values after: it stays meta from then on.

A mixin of `trace.Tracer`: `constants` holds the ids of the constants, which `originals`
keeps alive (no id is reused within a trace); None in a real forward, where every tensor
has its values."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

CPU = torch.device("cpu")
# The largest constant made for real (elements): a position grid or a mask of a few thousand
# tokens; a larger tensor made from nothing is a buffer the forward fills, left on meta.
MOST = 1 << 20
# The calls that make a tensor from numbers (a factory of a tensor, `torch.as_tensor(x)`,
# is that tensor or a copy: `made_constant` leaves it to the trace) ...
FROM_NUMBERS = frozenset({
    torch.ones, torch.zeros, torch.full, torch.empty, torch.arange, torch.range,
    torch.linspace, torch.logspace, torch.eye, torch.tensor, torch.as_tensor,
    torch.scalar_tensor, torch.rand, torch.randn, torch.randint, torch.randperm,
    torch.tril_indices, torch.triu_indices,
})  # fmt: skip
# ... and from a tensor only for its dtype and device
NEW = frozenset({
    Tensor.new_ones, Tensor.new_zeros, Tensor.new_full, Tensor.new_empty, Tensor.new_tensor,
})  # fmt: skip
FACTORIES = FROM_NUMBERS | NEW
# Tensor methods that write their first argument, besides the in-place `x.op_(...)` ones.
WRITERS = frozenset({
    Tensor.__setitem__, Tensor.__iadd__, Tensor.__isub__, Tensor.__imul__,
    Tensor.__itruediv__, Tensor.__ifloordiv__, Tensor.__imod__, Tensor.__ipow__,
    Tensor.__iand__, Tensor.__ior__, Tensor.__ixor__, Tensor.__ilshift__, Tensor.__irshift__,
})  # fmt: skip


def writes(func: Any, kwargs: dict) -> bool:
    """Whether func writes its first argument (x.add_(y), x[i] = y) or an `out=` tensor."""
    if func in WRITERS or kwargs.get("out") is not None:
        return True
    name = getattr(func, "__name__", "")
    return name.endswith("_") and not name.endswith("__")


def planned_size(func: Any, args: tuple, kwargs: dict) -> int | None:
    """How many elements a factory call of Python numbers will make, where that follows
    from its arguments alone (None otherwise): torch.arange(start, end, step) makes
    ⌈(end − start) / step⌉ (none below 0), torch.eye(n, m) n·m, torch.zeros(*size) and its
    kind the product of the size."""
    if func is torch.arange:
        if _BOUNDS & kwargs.keys():  # a bound given by name: left to torch
            return None
        if not 1 <= len(args) <= 3 or not all(type(v) in (int, float) for v in args):
            return None
        start, end, step = (0, args[0], 1) if len(args) == 1 else (*args, 1)[:3]
        return max(0, math.ceil((end - start) / step)) if step else None
    if func is torch.eye:
        n = args[0] if args else kwargs.get("n")
        m = args[1] if len(args) > 1 else kwargs.get("m", n)
        return n * m if type(n) is int and type(m) is int else None
    if func in _SHAPED:
        size = args[0] if len(args) == 1 or func is torch.full else args
        size = kwargs.get("size") if not args else size
        size = (size,) if type(size) is int else size
        if type(size) not in (tuple, list, torch.Size) or not all(type(v) is int for v in size):
            return None
        return math.prod(size)
    return None


_BOUNDS = frozenset({"start", "end", "step"})
# the factories whose first arguments are the size they make (torch.full's: its first)
_SHAPED = frozenset({torch.zeros, torch.ones, torch.empty, torch.rand, torch.randn, torch.full})


def _holds_tensor(args: tuple, kwargs: dict) -> bool:
    """Whether a tensor is among args and kwargs, or in a list or tuple of them."""
    for a in (*args, *kwargs.values()):
        for t in a if type(a) in (list, tuple) else (a,):
            if isinstance(t, Tensor):
                return True
    return False


def _meta_device(a: Any) -> bool:
    return (isinstance(a, torch.device) and a.type == "meta") or (
        isinstance(a, str) and a == "meta"
    )


class Constants:
    """The tracer's constants: made (`made_constant`), run (`constant_call`), kept (`keep`)."""

    constants: set[int] | None
    originals: dict[int, Tensor]

    def made_constant(self, func: Any, args: tuple, kwargs: dict) -> Any:
        """A FACTORIES call: on the CPU, for real, where it would make a meta tensor of at
        most MOST elements; kept as a constant where its output is real. None for a call
        of FROM_NUMBERS given a tensor (MONAI's HighResNet's `torch.as_tensor(x)` of its
        traced map): the trace's own."""
        if func in FROM_NUMBERS and _holds_tensor(args, kwargs):
            return None
        size = planned_size(func, args, kwargs) if _meta_device(kwargs.get("device")) else None
        if size is not None and size <= MOST:  # straight to the CPU: the meta kernels of
            out = func(*args, **{**kwargs, "device": CPU})  # arange, eye, randn are Python
        else:
            out = func(*args, **kwargs)
            if isinstance(out, Tensor) and out.is_meta and out.numel() <= MOST:
                out = func(*args, **{**kwargs, "device": CPU})
        self.keep(out)
        return out

    def constant_call(self, func: Any, args: tuple, kwargs: dict) -> Any:
        """A call whose tensors are all constants: run for real, its tensors constants. A
        move to the trace's device (`mask.to(device=x.device)`) stays on the CPU."""
        out = func(*args, **kwargs)
        if func is Tensor.to and isinstance(out, Tensor) and out.is_meta:
            args = tuple(CPU if _meta_device(a) else a for a in args)
            out = func(*args, **{k: CPU if _meta_device(v) else v for k, v in kwargs.items()})
        self.keep(out)
        return out

    def keep(self, out: Any) -> None:
        """Each real tensor of `out` (a tensor, or a tuple or list of them) a constant."""
        for t in (out,) if isinstance(out, Tensor) else out if type(out) in (tuple, list) else ():
            if isinstance(t, Tensor) and not t.is_meta:
                self.originals[id(t)] = t
                self.constants.add(id(t))

    def constants_only(self, args: tuple, kwargs: dict) -> bool:
        """Whether every tensor among args and kwargs (or in a list of them) is a constant,
        and none is a user's."""
        constants = self.constants
        for a in (*args, *kwargs.values()):
            items = a if type(a) in (list, tuple) else (a,)
            for t in items:
                if isinstance(t, Tensor) and id(t) not in constants:
                    return False
        return True

    def unknown_after(self, func: Any, args: tuple, kwargs: dict) -> None:
        """A constant that a call with traced tensors writes has unknown values after it."""
        if writes(func, kwargs):
            for t in (args[0] if args else None, kwargs.get("out")):
                if isinstance(t, Tensor):
                    self.constants.discard(id(t))
